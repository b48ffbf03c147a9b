//! Rows, label columns and the labelled h5ad, on real files from `shared/data`.

use std::path::PathBuf;

use burn::prelude::Device;
use genecompass_core::data::{
    CONFIDENCE_COLUMN, FILTERED_LABEL, LABEL_COLUMN, ObsColumn, add_obs_columns, open_bytes,
};

use super::*;
use crate::engine::{Annotator, ModelFiles, open_file};

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

fn h5ad(name: &str) -> Vec<u8> {
    std::fs::read(shared().join("data/h5ad").join(name)).expect("h5ad")
}

/// Mouse genes of the tiny vocabulary (Ensembl ids, so no symbol table is involved).
const GENES: [&str; 8] = [
    "ENSMUSG00000059552",
    "ENSMUSG00000057666",
    "ENSMUSG00000029580",
    "ENSMUSG00000022346",
    "ENSMUSG00000030265",
    "ENSMUSG00000023274",
    "ENSMUSG00000026395",
    "ENSMUSG00000021944",
];

#[test]
fn cells_keep_their_file_row_when_names_repeat() {
    let a = tiny();
    // Six cells, three named `a`; row 2 has no count (dropped). Each kept row has its own most
    // expressed gene (gene `row`), so a cell's first token tells which row it came from.
    let mut csv = format!("cell,{}\n", GENES.join(","));
    let names = ["a", "a", "b", "a", "c", "a"];
    for (row, name) in names.iter().enumerate() {
        let counts: Vec<String> = (0..GENES.len())
            .map(|g| match (row, g) {
                (2, _) => 0,
                (r, g) if r == g => 50,
                _ => 1 + (g % 3),
            })
            .map(|c| c.to_string())
            .collect();
        csv.push_str(&format!("{name},{}\n", counts.join(",")));
    }
    let t = open_file("dups.csv", csv.into_bytes(), &a)
        .unwrap()
        .tokenize(&a)
        .expect("tokenizes");
    assert!(
        !t.rows.contains(&2),
        "the empty row is dropped: {:?}",
        t.rows
    );
    assert_eq!(t.rows, [0, 1, 3, 4, 5], "every other row is kept");
    for (i, &row) in t.rows.iter().enumerate() {
        assert_eq!(t.names[i], names[row]);
        let top = a.vocab.get(GENES[row]).expect("in the vocabulary");
        assert_eq!(
            t.cells.cells[i].input_ids[0], top,
            "cell {i} came from row {row}"
        );
    }
    assert_eq!(t.n_obs, 6);
    let truth = truth_values(&t.obs, "cell_type", &t.rows);
    assert!(truth.unwrap_err().contains("no obs column"));
}

#[test]
fn predictions_are_laid_out_by_row() {
    let labels = vec!["x".to_string(), "y".to_string()];
    let by_row =
        predictions_by_row(4, &[0, 2, 3], &[(1, 0.9), (0, 0.6), (1, 0.7)], &labels).expect("fits");
    assert_eq!(
        by_row,
        vec![Some(("y", 0.9)), None, Some(("x", 0.6)), Some(("y", 0.7))]
    );
    assert!(predictions_by_row(2, &[0, 2], &[(0, 1.0), (0, 1.0)], &labels).is_err());
    assert!(predictions_by_row(2, &[0], &[], &labels).is_err());
    assert!(predictions_by_row(2, &[0], &[(5, 1.0)], &labels).is_err());
}

#[test]
fn labelled_h5ad_has_each_prediction_on_its_row() {
    let a = tiny();
    let bytes = h5ad("baron_mouse_pancreas_822.h5ad");
    let t = open_file("baron.h5ad", bytes.clone(), &a)
        .unwrap()
        .tokenize(&a)
        .unwrap();
    // Made-up predictions that name their row: label row % 5, probability row / 1000.
    let predicted: Vec<(usize, f32)> = t.rows.iter().map(|&r| (r % 5, r as f32 / 1000.0)).collect();
    let by_row = predictions_by_row(t.n_obs, &t.rows, &predicted, &a.labels).unwrap();
    let out = labelled_h5ad(&bytes, "baron.h5ad", &by_row, false).expect("written");
    // The same core call the CLI makes, on the same columns.
    assert_eq!(
        out,
        add_obs_columns(&bytes, "baron.h5ad", &prediction_columns(&by_row)).unwrap()
    );

    let back = open_bytes("labelled.h5ad", out.clone()).expect("reads back");
    let cells = back.cells();
    let Some(ObsColumn::Text(label)) = cells.column(LABEL_COLUMN) else {
        panic!("no text column {LABEL_COLUMN}");
    };
    let Some(ObsColumn::Number(conf)) = cells.column(CONFIDENCE_COLUMN) else {
        panic!("no number column {CONFIDENCE_COLUMN}");
    };
    assert_eq!((label.len(), conf.len()), (822, 822));
    let mut filtered = 0;
    for r in 0..822 {
        if t.rows.contains(&r) {
            assert_eq!(label[r], a.labels[r % 5], "row {r}");
            assert_eq!(conf[r] as f32, r as f32 / 1000.0, "row {r}");
        } else {
            assert_eq!(label[r], FILTERED_LABEL, "row {r}");
            assert!(conf[r].is_nan());
            filtered += 1;
        }
    }
    assert_eq!(filtered, 13);
    // The file's own columns are untouched and the truth column reads the same rows.
    let truth = truth_values(&t.obs, "cell_type", &t.rows).unwrap();
    let Some(ObsColumn::Text(ct)) = cells.column("cell_type") else {
        panic!("cell_type kept");
    };
    for (i, &r) in t.rows.iter().enumerate() {
        assert_eq!(truth[i], ct[r]);
    }

    // Again on the labelled file: refused unless replacing, as in the CLI.
    let e = labelled_h5ad(&out, "labelled.h5ad", &by_row, false).unwrap_err();
    assert!(e.to_string().contains("already has a column"), "{e}");
    assert!(labelled_h5ad(&out, "labelled.h5ad", &by_row, true).is_ok());
}

#[test]
fn old_layouts_get_cores_message() {
    // obs as one compound dataset (anndata < 0.7).
    let bytes = h5ad("pbmc68k_reduced.h5ad");
    let e = labelled_h5ad(&bytes, "pbmc.h5ad", &vec![None; 700], false).unwrap_err();
    assert!(
        e.to_string().contains("pre-0.7") && e.to_string().contains("pbmc.h5ad"),
        "{e}"
    );
}

#[test]
fn label_columns_are_the_text_columns() {
    let t = genecompass_core::data::CellTable {
        names: vec!["a".into(), "b".into(), "c".into()],
        columns: vec![
            ("n_counts".into(), ObsColumn::Number(vec![1.0, 2.0, 3.0])),
            (
                "cell_type".into(),
                ObsColumn::Text(vec!["x".into(), "".into(), "x".into()]),
            ),
        ],
    };
    assert_eq!(
        label_columns(&t),
        vec![LabelColumn {
            name: "cell_type".into(),
            distinct: 1
        }]
    );
    assert_eq!(
        truth_values(&t, "cell_type", &[2, 1]).unwrap(),
        vec!["x".to_string(), String::new()]
    );
    assert!(
        truth_values(&t, "n_counts", &[0])
            .unwrap_err()
            .contains("numbers")
    );
    assert_eq!(
        labelled_file_name("dir/baron.h5ad"),
        "baron_genecompass.h5ad"
    );
    assert_eq!(labelled_file_name("x"), "x_genecompass.h5ad");
}
