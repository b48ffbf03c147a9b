//! `genecompass-train extend-vocab` on the reference-tiny model: new genes get rows at the end
//! of every table (word embedding seeded, priors from a store, homolog index), existing weights
//! and outputs are unchanged, cells holding the new genes run through the new model, and bad
//! requests say what to do.

mod common_util;

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use common_util::{ok, s, tiny, tmp, train};
use genecompass_core::cells::{CellSet, Species, TokenizedCell};
use genecompass_core::checkpoint::{TensorMap, WeightsFormat, load_checkpoint};
use genecompass_core::model::PriorKind;
use genecompass_core::priors::store::{PriorEntry, write_prior};

fn table(dir: &Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let m = TensorMap::read_safetensors(&dir.join("model.safetensors")).unwrap();
    let t = &m.tensors[key];
    (t.shape.clone(), t.to_f32().unwrap())
}

fn embeddings(model: &Path, cells: &Path, out: &Path) -> Vec<f32> {
    ok(train(&[
        "embed",
        "--checkpoint",
        s(model),
        "--input",
        s(cells),
        "--output",
        s(out),
    ]));
    let m = TensorMap::read_safetensors(out).unwrap();
    m.tensors["cell_embedding"].to_f32().unwrap()
}

#[test]
fn new_genes_extend_every_table_and_keep_old_outputs() {
    let dir = tmp("extend-vocab");
    let k = table(&tiny(), "bert.embeddings.promoter_knowledge").0[1];
    // A prior store with a gene-family vector for PDX1's mouse gene only.
    let store = dir.join("priors");
    let genes = vec![
        "ENSMUSG00000029644".to_string(),
        "ENSG00000999999".to_string(),
    ];
    let vec_pdx1: Vec<f32> = (0..k).map(|i| i as f32 / 10.0 + 1.0).collect();
    let mut data = vec_pdx1.clone();
    data.extend(vec![9.0; k]);
    write_prior(
        &store,
        &genes,
        k,
        &data,
        PriorEntry {
            kind: PriorKind::GeneFamily,
            file: String::new(),
            sha256: String::new(),
            rows: 0,
            width: 0,
            builder: "test".into(),
            seed: None,
            parameters: serde_json::json!({}),
            inputs: Vec::new(),
            stats: serde_json::json!({}),
        },
    )
    .unwrap();
    let out = dir.join("extended");
    let o = train(&[
        "extend-vocab",
        "--model",
        s(&tiny()),
        "--genes",
        "Pdx1,ENSG00000105329,TP53",
        "--priors",
        s(&store),
        "--output",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        err.contains("already in the vocabulary, skipped: ENSG00000141510"),
        "{err}"
    );
    assert!(err.contains("added 2 genes (ids 40..41)"), "{err}");

    // Dictionary: the old 40 tokens, then the new ones.
    let dict: HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(out.join("token_dict.json")).unwrap())
            .unwrap();
    let old: HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("token_dict.json")).unwrap())
            .unwrap();
    assert_eq!(dict.len(), 42);
    assert!(old.iter().all(|(t, i)| dict[t] == *i));
    assert_eq!(dict["ENSMUSG00000029644"], 40);
    assert_eq!(dict["ENSG00000105329"], 41);

    // Tables: old rows identical, new rows as specified.
    for key in [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.gene_family_knowledge",
        "bert.embeddings.promoter_knowledge",
    ] {
        let (s0, a) = table(&tiny(), key);
        let (s1, b) = table(&out, key);
        assert_eq!(s1[0], s0[0] + 2, "{key}");
        assert_eq!(&b[..a.len()], &a[..], "{key}: existing rows unchanged");
    }
    let (_, fam) = table(&out, "bert.embeddings.gene_family_knowledge");
    assert_eq!(
        &fam[40 * k..41 * k],
        &vec_pdx1[..],
        "Pdx1's vector from the store"
    );
    assert!(
        fam[41 * k..].iter().all(|&x| x == 0.0),
        "no vector: zero row"
    );
    let (_, prom) = table(&out, "bert.embeddings.promoter_knowledge");
    assert!(prom[40 * k..].iter().all(|&x| x == 0.0));
    let (_, word) = table(&out, "bert.embeddings.word_embeddings.weight");
    let h = word.len() / 42;
    let new_rows = &word[40 * h..];
    assert!(new_rows.iter().all(|x| x.is_finite()) && new_rows.iter().any(|&x| x != 0.0));
    let (_, bias) = table(&out, "cls.predictions.bias");
    assert_eq!(bias.len(), 42);
    assert_eq!(&bias[40..], &[0.0, 0.0]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab_extension.json")).unwrap())
            .unwrap();
    assert_eq!(record["priors"]["gene_family"], 1);
    // PDX1 (the human ortholog of Pdx1) is not in the vocabulary: Pdx1 looks itself up.
    assert_eq!(record["added"][0]["homolog_index"], 40);

    // The fixture cells embed exactly as before.
    let inputs = tiny().join("inputs.safetensors");
    let before = embeddings(&tiny(), &inputs, &dir.join("before.safetensors"));
    let after = embeddings(&out, &inputs, &dir.join("after.safetensors"));
    assert_eq!(before, after, "no old output changes");

    // A cell holding a new gene runs through the new model and is refused by the old one.
    let cells = CellSet {
        cells: vec![TokenizedCell {
            input_ids: vec![40, 2, 41, 7],
            values: vec![3.0, 2.0, 1.5, 1.0],
            species: Species::Mouse,
            label: None,
        }],
        padded_len: None,
    };
    let path = dir.join("new_cells.safetensors");
    genecompass_trainer::cells_io::write_cells_safetensors(
        &path,
        &cells,
        genecompass_trainer::cells_io::CellsLayout::Padded,
        HashMap::new(),
    )
    .unwrap();
    let e = embeddings(&out, &path, &dir.join("new.safetensors"));
    assert!(e.iter().all(|x| x.is_finite()));
    let o = train(&[
        "embed",
        "--checkpoint",
        s(&tiny()),
        "--input",
        s(&path),
        "--output",
        s(&dir.join("old.safetensors")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("41") || err.contains("vocabulary"), "{err}");

    // The extended model loads with the larger vocabulary.
    let ck = load_checkpoint(&out, WeightsFormat::Auto, &Device::flex()).unwrap();
    assert_eq!(ck.config.vocab_size, 42);
}

#[test]
fn bad_extension_requests_are_refused() {
    let dir = tmp("extend-vocab-errors");
    let run = |genes: &str, out: &Path| {
        let o = train(&[
            "extend-vocab",
            "--model",
            s(&tiny()),
            "--genes",
            genes,
            "--output",
            s(out),
        ]);
        assert!(!o.status.success(), "{genes}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run("NOT_A_GENE_XYZ", &dir.join("a"));
    assert!(e.contains("unknown gene"), "{e}");
    let e = run("TP53", &dir.join("b"));
    assert!(e.contains("no new gene"), "{e}");
    std::fs::create_dir_all(dir.join("c")).unwrap();
    let e = run("Pdx1", &dir.join("c"));
    assert!(e.contains("already exists"), "{e}");
}
