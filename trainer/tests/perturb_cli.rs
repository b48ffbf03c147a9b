//! `genecompass-train perturb` and `embed-genes` on the reference-tiny model, run as the built
//! binary: the official dict of fixture §6.5, a file tokenized from `shared/data`, agreement with
//! `embed`, and the error messages.

mod common_util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common_util::{ok, s, tiny, tmp, train, tsv};
use genecompass_core::checkpoint::TensorMap;
use genecompass_core::npy::from_npy_f32;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    TensorMap::read_safetensors(path)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| {
            let v = t.to_f32().unwrap();
            (k, (t.shape.clone(), v))
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn official_alignment_reproduces_the_fixture_dict() {
    let dir = tmp("perturb-official");
    let out = dir.join("tp53");
    let inputs = tiny().join("inputs.safetensors");
    ok(train(&[
        "perturb",
        "--model",
        s(&tiny()),
        "--cells",
        s(&inputs),
        "--genes",
        "ENSG00000141510",
        "--mode",
        "delete",
        "--align",
        "official",
        "--output",
        s(&out),
    ]));
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tp53.official.json")).unwrap())
            .unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny().join("perturbation_official.json")).unwrap(),
    )
    .unwrap();
    let (got, want) = (
        got["entries"].as_array().unwrap(),
        want["entries"].as_array().unwrap(),
    );
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g[0], &g[1]), (&w[0], &w[1]), "key order and labels");
        let f = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let d = max_diff(&f(&g[2]), &f(&w[2]));
        assert!(d < 1e-4, "entry {}: max |diff| {d}", w[1]);
    }
    let rows = tsv(&dir.join("tp53.tsv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["symbol"], "TP53");
    assert_eq!(rows[0]["cells"], "1");
    let cell_cos: f32 = rows[0]["mean_gene_cos"].parse().unwrap();
    assert!((cell_cos - 0.950_333_6).abs() < 1e-4, "{cell_cos}");
    let jsonl = std::fs::read_to_string(dir.join("tp53.cells.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 1);
}

/// Tokenizes 200 T cells with the tiny model's 40-token dictionary (20 of their genes are in it).
fn tokenized_wu(dir: &Path) -> Option<PathBuf> {
    let h5ad = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/h5ad/wu2020_tcells_200.h5ad"
    ));
    assert!(
        h5ad.exists(),
        "{} is missing: tests need ../shared beside the checkout",
        h5ad.display()
    );
    let out = dir.join("wu.safetensors");
    ok(train(&[
        "tokenize",
        s(h5ad),
        "--token-dict",
        s(&tiny().join("token_dict.json")),
        "--output",
        s(&out),
    ]));
    Some(out)
}

#[test]
fn identity_perturbation_on_a_tokenized_file() {
    let dir = tmp("perturb-identity");
    let Some(cells) = tokenized_wu(&dir) else {
        return;
    };
    // How many cells hold each gene, straight from the tokenized file.
    let t = tensors(&cells);
    let (shape, ids) = &t["input_ids"];
    let holders = |token: f32| ids.chunks(shape[1]).filter(|r| r.contains(&token)).count();
    let out = dir.join("del");
    // Symbols resolve through the embedded HGNC table; a list perturbs one gene at a time.
    let o = train(&[
        "perturb",
        "--model",
        s(&tiny()),
        "--cells",
        s(&cells),
        "--genes",
        "TP53,GAPDH",
        "--genes",
        "ENSG00000081237",
        "--mode",
        "delete",
        "--batch-size",
        "7",
        "--per-gene",
        "--output",
        s(&out),
    ]);
    let err = stderr(&o);
    ok(o);
    assert!(err.contains("TP53 -> ENSG00000141510"), "{err}");
    let rows = tsv(&dir.join("del.tsv"));
    let want: Vec<(&str, usize)> = vec![
        ("ENSG00000141510", holders(2.0)),
        ("ENSG00000111640", holders(4.0)),
        ("ENSG00000081237", holders(12.0)),
    ];
    let got: Vec<(&str, usize)> = rows
        .iter()
        .map(|r| (r["gene"].as_str(), r["cells"].parse().unwrap()))
        .collect();
    assert_eq!(got, want);
    for r in &rows {
        let c: f64 = r["mean_cls_cos"].parse().unwrap();
        let shift: f64 = r["mean_cls_shift"].parse().unwrap();
        assert!(c > 0.0 && c <= 1.0 + 1e-6 && (c + shift - 1.0).abs() < 1e-5);
    }
    // One JSON line per perturbed cell; the deleted gene is never among the compared genes.
    let jsonl = std::fs::read_to_string(dir.join("del.cells.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), want.iter().map(|w| w.1).sum::<usize>());
    for r in &records {
        let token = r["token"].as_u64().unwrap();
        let genes = r["genes"].as_array().unwrap();
        assert!(genes.iter().all(|g| g.as_u64().unwrap() != token));
        assert_eq!(genes.len(), r["cos"].as_array().unwrap().len());
    }
    // Affected genes: most affected (lowest mean cosine) first within each perturbation.
    let aff = tsv(&dir.join("del.affected.tsv"));
    for w in aff.windows(2) {
        if w[0]["perturbed"] == w[1]["perturbed"] {
            let (a, b): (f64, f64) = (
                w[0]["mean_cos"].parse().unwrap(),
                w[1]["mean_cos"].parse().unwrap(),
            );
            assert!(a <= b);
        }
    }

    // Joint over-expression: one row, cells holding either gene.
    ok(train(&[
        "perturb",
        "--model",
        s(&tiny()),
        "--cells",
        s(&cells),
        "--genes",
        "ENSG00000141510,ENSG00000136997",
        "--mode",
        "overexpress",
        "--factor",
        "100",
        "--joint",
        "--output",
        s(&dir.join("over")),
    ]));
    let rows = tsv(&dir.join("over.tsv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["gene"], "ENSG00000141510+ENSG00000136997");
    let either = ids
        .chunks(shape[1])
        .filter(|r| r.contains(&2.0) || r.contains(&7.0))
        .count();
    assert_eq!(rows[0]["cells"], either.to_string());
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("over.cells.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["new_positions"].is_array() && first["self_cos"].is_array());
}

/// `embed-genes` agrees with `embed`: same cell embeddings, and each gene's vector is the mean
/// of the `last_hidden_state` rows that hold it.
#[test]
fn embed_genes_matches_embed() {
    let dir = tmp("embed-genes");
    let inputs = tiny().join("inputs.safetensors");
    let emb = dir.join("embed.safetensors");
    ok(train(&[
        "embed",
        "--checkpoint",
        s(&tiny()),
        "--input",
        s(&inputs),
        "--output",
        s(&emb),
    ]));
    ok(train(&[
        "embed-genes",
        "--model",
        s(&tiny()),
        "--cells",
        s(&inputs),
        "--output",
        s(&dir.join("g")),
    ]));
    let e = tensors(&emb);
    let read = |name: &str| from_npy_f32(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    let (cls_shape, cls) = read("g.cells_cls.npy");
    assert_eq!(cls_shape, vec![6, 32]);
    assert!(max_diff(&cls, &e["cell_embedding"].1) < 1e-5);
    assert!(max_diff(&read("g.cells_mean.npy").1, &e["mean_embedding"].1) < 1e-5);

    let (shape, genes) = read("g.npy");
    let ids: Vec<String> = std::fs::read_to_string(dir.join("g.genes.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // The 38 gene tokens minus GATA4 (token 14), which no cell holds.
    assert_eq!(shape, vec![37, 32]);
    assert_eq!(ids.len(), 37);
    let row = |id: &str| {
        let i = ids.iter().position(|x| x == id).unwrap();
        &genes[i * 32..(i + 1) * 32]
    };
    let (lshape, last) = &e["last_hidden_state"];
    let (s_, h) = (lshape[1], lshape[2]);
    let hidden = |cell: usize, pos: usize| &last[(cell * s_ + 1 + pos) * h..][..h];
    // TP53 (token 2) is only in cell 0, at rank 3.
    assert!(max_diff(row("ENSG00000141510"), hidden(0, 3)) < 1e-5);
    // NANOG (token 20): cell 0 rank 10, cell 2 rank 0, cell 5 rank 0.
    let mean: Vec<f32> = (0..32)
        .map(|k| (hidden(0, 10)[k] + hidden(2, 0)[k] + hidden(5, 0)[k]) / 3.0)
        .collect();
    assert!(max_diff(row("ENSG00000111704"), &mean) < 1e-5);
    let tsv_rows = tsv(&dir.join("g.genes.tsv"));
    let nanog = tsv_rows
        .iter()
        .find(|r| r["ensembl_id"] == "ENSG00000111704")
        .unwrap();
    assert_eq!(
        (nanog["symbol"].as_str(), nanog["occurrences"].as_str()),
        ("NANOG", "3")
    );
}

#[test]
fn errors_name_the_problem() {
    let dir = tmp("perturb-errors");
    let inputs = tiny().join("inputs.safetensors");
    let out = dir.join("x");
    let run = |extra: &[&str], model: &Path| {
        let mut a = vec![
            "perturb",
            "--model",
            s(model),
            "--cells",
            s(&inputs),
            "--output",
            s(&out),
        ];
        a.extend_from_slice(extra);
        let o = train(&a);
        assert!(!o.status.success(), "should fail: {extra:?}");
        stderr(&o)
    };
    let m = tiny();
    let e = run(&["--genes", "NOTAGENE", "--mode", "delete"], &m);
    assert!(
        e.contains("unknown gene \"NOTAGENE\"") && e.contains("look it up"),
        "{e}"
    );
    let e = run(&["--genes", "ENSG00000000003", "--mode", "delete"], &m);
    assert!(e.contains("not in the model's token dictionary"), "{e}");
    // GATA4 is in the vocabulary but in none of the cells.
    let e = run(&["--genes", "GATA4", "--mode", "delete"], &m);
    assert!(e.contains("is expressed in any of the 6 cells"), "{e}");
    let e = run(
        &[
            "--genes",
            "TP53",
            "--mode",
            "overexpress",
            "--align",
            "official",
        ],
        &m,
    );
    assert!(e.contains("only defined for --mode delete"), "{e}");
    let e = run(
        &["--genes", "TP53", "--mode", "overexpress", "--factor", "0"],
        &m,
    );
    assert!(e.contains("must be finite and > 0"), "{e}");
    // The classifier folder has no token dictionary.
    let e = run(
        &["--genes", "TP53", "--mode", "delete"],
        &m.join("classifier"),
    );
    assert!(
        e.contains("no token dictionary") && e.contains("--token-dict"),
        "{e}"
    );
}
