//! Gene-name resolution and a whole perturbation of baron cells with the `reference-tiny`
//! classifier, natively, with the code the worker runs.

use std::path::PathBuf;

use burn::prelude::Device;
use genecompass_core::tasks::pca::pca_2d_fit;

use super::*;
use crate::engine::{ModelFiles, open_file};
use genecompass_core::tokenize::gene_tables::SymbolHit;

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
}

fn tiny() -> Annotator {
    let tiny = shared().join("fixtures/reference-tiny");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let files = ModelFiles {
        config_json: read(tiny.join("classifier/config.json")),
        weights: read(tiny.join("classifier/model.safetensors")),
        weights_name: "model.safetensors".into(),
        token_dict: read(tiny.join("token_dict.json")),
        token_dict_name: "token_dict.json".into(),
        medians: None,
    };
    Annotator::load("tiny", "k", &files, &Device::flex()).expect("tiny classifier loads")
}

#[test]
fn gene_lists_split_on_commas_and_spaces_without_repeats() {
    assert_eq!(
        parse_gene_list(" Ins2, Trp53;Ins2\tGcg ,, "),
        vec!["Ins2", "Trp53", "Gcg"]
    );
    assert!(parse_gene_list(" , ").is_empty());
}

#[test]
fn names_resolve_to_the_models_tokens() {
    let a = tiny();
    let v = &a.vocab;
    let mouse = Some(Species::Mouse);
    let ins2 = resolve_gene("ENSMUSG00000000215", v, mouse).unwrap();
    assert_eq!(ins2.token, 38);
    assert_eq!(ins2.symbol.as_deref(), Some("Ins2"));
    assert_eq!(
        resolve_gene("ENSMUSG00000000215.4", v, None).unwrap().token,
        38
    );
    let by_symbol = resolve_gene("Ins2", v, mouse).unwrap();
    assert_eq!((by_symbol.token, by_symbol.query.as_str()), (38, "Ins2"));
    assert_eq!(
        resolve_gene("Trp53", v, mouse).unwrap().ensembl,
        "ENSMUSG00000059552"
    );
    // The human symbol resolves to the human token, whatever the file's species.
    assert_eq!(
        resolve_gene("TP53", v, mouse).unwrap().ensembl,
        "ENSG00000141510"
    );

    let e = resolve_gene("NOTAGENE1", v, mouse).unwrap_err();
    assert!(e.contains("unknown gene \"NOTAGENE1\""), "{e}");
    let e = resolve_gene("Cd19", v, mouse).unwrap_err();
    assert!(
        e.contains("not in the model's token dictionary (40 tokens)"),
        "{e}"
    );
    assert!(e.contains("ENSMUSG"), "names the id it resolved to: {e}");

    // An ambiguous previous/alias symbol is refused with the candidate ids, never guessed.
    let table = GeneTable::embedded(Species::Mouse);
    let ambiguous = table
        .records()
        .flat_map(|r| r.previous().chain(r.aliases()))
        .find(|s| {
            matches!(table.resolve_symbol(s), SymbolHit::Ambiguous(_))
                && !matches!(
                    GeneTable::embedded(Species::Human).resolve_symbol(s),
                    SymbolHit::Found(..)
                )
        })
        .expect("the MGI table has an ambiguous alias");
    let e = resolve_gene(ambiguous, v, mouse).unwrap_err();
    assert!(
        e.contains("ambiguous symbol") && e.contains("ENSMUSG"),
        "{e}"
    );

    // All errors at once; a gene named twice is perturbed once.
    let names = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let e = resolve_genes(&names(&["Ins2", "XX1", "YY2"]), v, mouse).unwrap_err();
    assert!(e.contains("XX1") && e.contains("YY2"), "{e}");
    let g = resolve_genes(&names(&["Ins2", "ENSMUSG00000000215"]), v, mouse).unwrap();
    assert_eq!(g.len(), 1);
    assert!(resolve_genes(&[], v, mouse).is_err());
}

#[test]
fn perturbing_baron_cells_moves_them_on_the_original_axes() {
    let dev = Device::flex();
    let a = tiny();
    let bytes = std::fs::read(shared().join("data/h5ad/baron_mouse_pancreas_822.h5ad")).unwrap();
    let t = open_file("baron.h5ad", bytes, &a)
        .unwrap()
        .tokenize(&a)
        .unwrap();
    let n = t.cells.len();
    let runner = BatchClassifier::new(&a.model, &a.options(16));
    let (mut pooled, mut before, mut width) = (Vec::new(), vec![0; n], 0);
    for idx in runner.plan(&t.cells) {
        let b = runner.run(&t.cells, &idx, &dev);
        width = b.pooled.len() / idx.len();
        pooled.resize(n * width, 0.0);
        for (row, &ci) in idx.iter().enumerate() {
            pooled[ci * width..(ci + 1) * width]
                .copy_from_slice(&b.pooled[row * width..(row + 1) * width]);
            before[ci] = argmax(&b.probabilities[row * 5..row * 5 + 5]).0;
        }
    }
    let (pca, basis) = pca_2d_fit(&pooled, n, width);
    let last = LastRun {
        annotated: t.cells.len(),
        cells: t.cells,
        species: Some(Species::Mouse),
        before,
        basis,
    };
    let holders = last
        .cells
        .cells
        .iter()
        .filter(|c| c.input_ids.contains(&38))
        .count();
    assert!(holders > 0, "baron cells express Ins2");
    let req = |genes: &[&str], mode| PerturbRequest {
        genes: genes.iter().map(|g| g.to_string()).collect(),
        mode,
        batch_size: 16,
    };
    let mut calls = Vec::new();
    let (res, notes) = run_perturbation(
        &a,
        &last,
        &req(&["Ins2"], PerturbMode::Delete),
        &dev,
        |s, d, t| calls.push((s.to_string(), d, t)),
    )
    .expect("perturbs");
    assert!(notes.is_empty(), "{notes:?}");
    let g = &res[0];
    assert_eq!(
        (g.ensembl.as_str(), g.symbol.as_deref()),
        ("ENSMUSG00000000215", Some("Ins2"))
    );
    assert_eq!(g.cells, holders);
    assert_eq!(g.points.len(), holders);
    let shift = g.cls_shift.expect("the classifier has a CLS token");
    assert!(shift > 0.0 && shift < 2.0, "{shift}");
    assert!(!g.top.is_empty() && g.top.len() <= TOP_AFFECTED);
    assert!(g.top.windows(2).all(|w| w[0].mean_cos <= w[1].mean_cos));
    assert!(
        g.top.iter().all(|r| r.ensembl != "ENSMUSG00000000215"),
        "deleted gene not listed"
    );
    assert!(g.points.iter().all(|p| p.before == last.before[p.index]));
    // Perturbed points live on the original axes: near the original cloud, and some moved.
    let moved = g
        .points
        .iter()
        .filter(|p| p.point != pca.points[p.index])
        .count();
    assert!(moved > 0);
    assert_eq!(
        calls.last().unwrap(),
        &(STAGE_CLASSIFY.to_string(), holders, holders)
    );

    // Over-expression of two genes, one of which no cell holds (a human gene): a note.
    let (res, notes) = run_perturbation(
        &a,
        &last,
        &req(&["Ins2, TP53"], PerturbMode::Overexpress),
        &dev,
        |_, _, _| {},
    )
    .expect("perturbs");
    assert_eq!(res.len(), 1);
    assert!(
        notes[0].contains("TP53") && notes[0].contains("none of the"),
        "{notes:?}"
    );
    // Only unexpressed genes, or unknown ones: errors.
    let e = run_perturbation(
        &a,
        &last,
        &req(&["TP53"], PerturbMode::Delete),
        &dev,
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.contains("expressed in none of the"), "{e}");
    let e = run_perturbation(
        &a,
        &last,
        &req(&["Nope9"], PerturbMode::Delete),
        &dev,
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.contains("unknown gene"), "{e}");
}
