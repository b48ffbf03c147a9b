//! `classify --input cells.h5ad --write-h5ad out.h5ad` on real cells (Baron mouse pancreas, a
//! tiny classifier fine-tuned here): the written file, read with core's h5ad reader, holds the
//! printed predictions per file row, "filtered" for the cells the tokenizer dropped, and the
//! input's own columns and matrix unchanged.

mod common_util;
use common_util::*;

use std::path::Path;

use genecompass_core::data::{
    CONFIDENCE_COLUMN, CellSource, FILTERED_LABEL, LABEL_COLUMN, MatrixChoice, ObsColumn, open_h5ad,
};

/// A tiny classifier fine-tuned on 100 Baron cells (vocabulary and medians beside it).
fn classifier(dir: &Path) -> String {
    let run = dir.join("run");
    ok(train(&[
        "finetune",
        "--data",
        BARON,
        "--label-column",
        "cell_type",
        "--output",
        s(&run),
        "--config",
        "tiny",
        "--max-cells",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-genes",
        "64",
        "--seed",
        "7",
    ]));
    s(&run.join("model")).to_string()
}

fn classify(model: &str, input: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let pred = out.with_extension("safetensors");
    let mut args = vec!["classify", "--checkpoint", model, "--input", input];
    args.extend([
        "--output",
        s(&pred),
        "--write-h5ad",
        s(out),
        "--show",
        "100000",
    ]);
    args.extend(extra);
    train(&args)
}

fn text(src: &dyn CellSource, name: &str) -> Vec<String> {
    match src.cells().column(name) {
        Some(ObsColumn::Text(v)) => v.clone(),
        other => panic!("obs `{name}` is {other:?}"),
    }
}

fn numbers(src: &dyn CellSource, name: &str) -> Vec<f64> {
    match src.cells().column(name) {
        Some(ObsColumn::Number(v)) => v.clone(),
        other => panic!("obs `{name}` is {other:?}"),
    }
}

#[test]
fn write_h5ad_adds_the_printed_predictions_and_filtered_cells_to_obs() {
    let dir = tmp("classify_write_h5ad");
    let model = classifier(&dir);
    let out = dir.join("annotated.h5ad");
    let stdout = ok(classify(&model, BARON, &out, &[]));

    // Printed: `cell ROW\tLABEL\tPROBABILITY`, ROW the file row.
    let printed: Vec<(usize, String, f64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cell "))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    let mut input = open_h5ad(Path::new(BARON), MatrixChoice::X).unwrap();
    let mut written = open_h5ad(&out, MatrixChoice::X).unwrap();
    let n = input.info().n_cells;
    let labels = text(&written, LABEL_COLUMN);
    let conf = numbers(&written, CONFIDENCE_COLUMN);
    assert_eq!((labels.len(), conf.len()), (n, n));
    let mut classified = vec![false; n];
    for (row, label, p) in &printed {
        classified[*row] = true;
        assert_eq!(&labels[*row], label, "row {row}");
        assert!(
            (conf[*row] - p).abs() <= 5e-5,
            "row {row}: {} vs {p}",
            conf[*row]
        );
    }
    let filtered: Vec<usize> = (0..n).filter(|&r| !classified[r]).collect();
    assert!(!filtered.is_empty(), "QC drops some Baron cells");
    assert_eq!(printed.len() + filtered.len(), n);
    for &r in &filtered {
        assert_eq!(labels[r], FILTERED_LABEL, "row {r}");
        assert!(conf[r].is_nan(), "row {r}");
    }

    // The safetensors output maps back through its `rows` metadata, to the exact float.
    let bytes = std::fs::read(out.with_extension("safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let rows: Vec<usize> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["rows"]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let probs = st.tensor("probabilities").unwrap();
    let k = probs.shape()[1];
    let probs: Vec<f32> = probs
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(rows.len(), printed.len());
    for (i, &r) in rows.iter().enumerate() {
        let best = probs[i * k..(i + 1) * k]
            .iter()
            .copied()
            .fold(f32::MIN, f32::max);
        assert_eq!(conf[r], f64::from(best), "row {r}");
    }

    // The input's own data is unchanged.
    assert_eq!(written.cells().names, input.cells().names);
    assert_eq!(text(&written, "cell_type"), text(&input, "cell_type"));
    assert_eq!(written.genes(), input.genes());
    let m = |src: &mut dyn CellSource| src.next_chunk(n).unwrap().unwrap();
    assert_eq!(m(&mut written), m(&mut input));
}

#[test]
fn write_h5ad_refuses_existing_columns_unless_replaced_and_non_h5ad_inputs() {
    let dir = tmp("classify_write_h5ad_again");
    let model = classifier(&dir);
    let once = dir.join("once.h5ad");
    ok(classify(&model, BARON, &once, &[]));
    let twice = dir.join("twice.h5ad");
    let refused = classify(&model, s(&once), &twice, &[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains(LABEL_COLUMN)
            && err.contains("--replace-columns"),
        "{err}"
    );
    assert!(!twice.exists());
    ok(classify(&model, s(&once), &twice, &["--replace-columns"]));
    let src = open_h5ad(&twice, MatrixChoice::X).unwrap();
    let names: Vec<&str> = src
        .cells()
        .columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["cell_type", LABEL_COLUMN, CONFIDENCE_COLUMN]);

    let tokenized = once.with_extension("safetensors");
    let bad = classify(&model, s(&tokenized), &dir.join("x.h5ad"), &[]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("needs an .h5ad --input"),
        "{err}"
    );
}

/// Prediction lines (`cell ROW\tLABEL\tPROBABILITY`) by file row.
fn predictions(stdout: &str) -> std::collections::HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cell "))
        .filter_map(|l| l.split_once('\t'))
        .map(|(row, rest)| (row.to_string(), rest.to_string()))
        .collect()
}

/// A CSV count table goes through the same tokenizer as the h5ad it came from: the cells both
/// keep get the same label and probability (QC's z-scores see other cells, so which cells are
/// kept may differ).
#[test]
fn classify_tokenizes_a_csv_count_table_like_the_h5ad() {
    let dir = tmp("classify_csv_input");
    let model = classifier(&dir);
    let mut src = open_h5ad(Path::new(BARON), MatrixChoice::X).unwrap();
    let genes = src.genes().names.clone();
    let n = 60;
    let chunk = src.next_chunk(n).unwrap().unwrap();
    let mut csv = format!("cell,{}\n", genes.join(","));
    for i in 0..n {
        let mut row = vec!["0".to_string(); genes.len()];
        for k in chunk.indptr[i]..chunk.indptr[i + 1] {
            row[chunk.indices[k] as usize] = format!("{}", chunk.data[k]);
        }
        csv.push_str(&format!("{},{}\n", src.cells().names[i], row.join(",")));
    }
    let table = dir.join("first60.csv");
    std::fs::write(&table, csv).unwrap();

    let run = |input: &Path, out: &str| {
        let pred = dir.join(out);
        let args = ["classify", "--checkpoint", &model, "--input", s(input)];
        ok(train(
            &[&args[..], &["--output", s(&pred), "--show", "100000"]].concat(),
        ))
    };
    let from_csv = predictions(&run(&table, "csv.safetensors"));
    let from_h5ad = predictions(&run(Path::new(BARON), "h5ad.safetensors"));
    assert!(
        from_csv.len() >= 50,
        "{} of 60 CSV cells classified",
        from_csv.len()
    );
    for (row, line) in &from_csv {
        assert!(row.parse::<usize>().unwrap() < n, "row {row} is in the CSV");
        if let Some(want) = from_h5ad.get(row) {
            assert_eq!(line, want, "cell row {row}");
        }
    }
    let shared = from_csv
        .keys()
        .filter(|r| from_h5ad.contains_key(*r))
        .count();
    assert!(shared >= 50, "{shared} cells classified from both files");
}
