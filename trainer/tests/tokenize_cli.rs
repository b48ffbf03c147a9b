//! `genecompass-train tokenize / medians / vocab` on the real files of `shared/data`, run as the
//! built binary. They need `../shared` beside the checkout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::checkpoint::TensorMap;

fn data(rel: &str) -> Option<PathBuf> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");
    let p = Path::new(root).join(rel);
    assert!(
        p.exists(),
        "{} not found: the tests need ../shared beside the checkout",
        p.display()
    );
    Some(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gc-tokenize-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genecompass-train"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The number from a summary line such as `  kept, > 6 expressed genes: 815`.
fn summary_number(out: &str, key: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no line {key:?} in:\n{out}"));
    line.rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn baron_mouse_build_vocab_safetensors() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("baron");
    let out = dir.join("baron.safetensors");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--build-vocab",
        "--label-column",
        "cell_type",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The report, up front.
    for want in [
        "format:",
        "matrix:           X",
        "cells x genes:    822 x 14878",
        "species:          mouse",
        "symbol tables",
        "gene identifiers: symbols",
        "genes in vocab:",
        "count share:",
        "NOT compatible with official",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    assert_eq!(summary_number(&t, "cells in:"), 822);
    let kept = summary_number(&t, "written:");
    assert!(kept > 700 && kept <= 822, "{kept} cells kept\n{t}");

    // The dictionary written beside the output.
    let vocab_path = dir.join("baron.token_dict.json");
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&vocab_path).unwrap()).unwrap();
    assert_eq!(vocab["<pad>"], 0);
    assert_eq!(vocab["<mask>"], 1);
    assert!(vocab.len() > 10_000, "{} tokens", vocab.len());
    assert!(vocab.keys().skip(2).all(|k| k.starts_with("ENSMUSG")));

    // Read back: shapes, padding, order.
    let map = TensorMap::read_safetensors(&out).unwrap();
    let ids_t = &map.tensors["input_ids"];
    let (n, l) = (ids_t.shape[0], ids_t.shape[1]);
    assert_eq!(n, kept);
    assert!(l <= 2048);
    assert_eq!(map.tensors["values"].shape, vec![n, l]);
    assert_eq!(map.tensors["attention_mask"].shape, vec![n, l]);
    assert_eq!(map.tensors["species"].shape, vec![n, 1]);
    assert_eq!(map.tensors["lengths"].shape, vec![n]);
    let ids = ids_t.to_i64().unwrap();
    let vals = map.tensors["values"].to_f32().unwrap();
    let mask = map.tensors["attention_mask"].to_i64().unwrap();
    let lens = map.tensors["lengths"].to_i64().unwrap();
    assert!(
        map.tensors["species"]
            .to_i64()
            .unwrap()
            .iter()
            .all(|&v| v == 1)
    );
    for i in 0..n {
        let len = lens[i] as usize;
        let row = &ids[i * l..(i + 1) * l];
        let v = &vals[i * l..(i + 1) * l];
        assert!(len > 6);
        assert!(
            row[..len]
                .iter()
                .all(|&t| t > 1 && (t as usize) < vocab.len())
        );
        assert!(row[len..].iter().all(|&t| t == 0));
        assert!(v[len..].iter().all(|&x| x == 0.0));
        assert!(mask[i * l..i * l + len].iter().all(|&m| m == 1));
        assert!(mask[i * l + len..(i + 1) * l].iter().all(|&m| m == 0));
        // Ranked by value, descending.
        assert!(
            v[..len].windows(2).all(|w| w[0] >= w[1]),
            "cell {i} not sorted"
        );
        assert!(v[..len].iter().all(|&x| x > 0.0));
    }

    // Labels in the metadata: one per written cell, from the 13 Baron types.
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let labels: Vec<String> = serde_json::from_str(&meta["labels"]).unwrap();
    assert_eq!(labels.len(), n);
    assert!(labels.iter().any(|l| l == "beta"));
    assert_eq!(meta["label_column"], "cell_type");
    assert_eq!(meta["medians_sha256"], "none");
    assert_eq!(meta["vocab_sha256"].len(), 64);
    let summary: serde_json::Value = serde_json::from_str(&meta["summary"]).unwrap();
    assert_eq!(summary["qc"]["cells_in"], 822);
    assert_eq!(summary["cells_out"], n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn medians_then_tokenize_hf_format_reads_back() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("hf");
    let vocab = dir.join("token_dict.json");
    let o = run(&["vocab", "--species", "human,mouse", "--output", s(&vocab)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("human") && text(&o).contains("mouse"));

    let medians = dir.join("medians.json");
    let o = run(&[
        "medians",
        s(&input),
        "--token-dict",
        s(&vocab),
        "--output",
        s(&medians),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&medians).unwrap()).unwrap();
    assert!(m.len() > 5000, "{} medians", m.len());
    assert!(m.keys().all(|k| k.starts_with("ENSMUSG")));
    assert!(m.values().all(|v| v.as_f64().unwrap() > 0.0));

    // Approximate mode lands within the histogram's bound of the exact medians.
    let approx = dir.join("medians_approx.json");
    let o = run(&[
        "medians",
        s(&input),
        "--token-dict",
        s(&vocab),
        "--output",
        s(&approx),
        "--approx",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let a: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&approx).unwrap()).unwrap();
    assert_eq!(a.len(), m.len());
    for (k, v) in &m {
        let (e, x) = (v.as_f64().unwrap(), a[k].as_f64().unwrap());
        // Even counts average two bins, so allow twice the per-bin bound.
        assert!((x / e - 1.0).abs() < 0.011, "{k}: exact {e}, approx {x}");
    }

    let out = dir.join("baron_hf");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&vocab),
        "--medians",
        s(&medians),
        "--label-column",
        "cell_type",
        "--format",
        "hf",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let kept = summary_number(&t, "written:");
    let cells = read_hf_dataset(&out, Some("cell_type")).unwrap();
    assert_eq!(cells.len(), kept);
    assert_eq!(cells.padded_len, Some(2048));
    for c in &cells.cells {
        assert!(c.len() <= 2048 && c.len() > 6);
        assert!(c.values.windows(2).all(|w| w[0] >= w[1]));
        assert!(c.label.is_some());
    }
    assert!(out.join("genecompass_tokenize.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ragged_layout_holds_the_same_cells_smaller() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("ragged");
    let mut sets = Vec::new();
    for layout in ["padded", "ragged"] {
        let out = dir.join(format!("{layout}.safetensors"));
        let o = run(&[
            "tokenize",
            s(&input),
            "--output",
            s(&out),
            "--build-vocab",
            "--label-column",
            "cell_type",
            "--layout",
            layout,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let size = std::fs::metadata(&out).unwrap().len();
        let (cells, _) = genecompass_trainer::cells_io::read_cells_file(&out).unwrap();
        sets.push((cells, size));
    }
    let ((padded, padded_size), (ragged, ragged_size)) = (&sets[0], &sets[1]);
    assert_eq!(padded.len(), ragged.len());
    for (a, b) in padded.cells.iter().zip(&ragged.cells) {
        assert_eq!(
            (&a.input_ids, &a.values, a.species, &a.label),
            (&b.input_ids, &b.values, b.species, &b.label)
        );
    }
    assert!(
        ragged_size * 2 < *padded_size,
        "ragged {ragged_size} B vs padded {padded_size} B"
    );

    // The dataset-folder format is always padded.
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&dir.join("hf")),
        "--build-vocab",
        "--format",
        "hf",
        "--layout",
        "ragged",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--layout ragged applies to safetensors"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_normalised_file_says_what_to_do() {
    let Some(input) = data("h5ad/spectra_immune_1000.h5ad") else {
        return;
    };
    let dir = tmpdir("lognorm");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&dir.join("x.safetensors")),
        "--build-vocab",
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("does not hold raw counts"), "{t}");
    assert!(
        t.contains("--matrix raw") && t.contains("layer:"),
        "no advice in:\n{t}"
    );
    assert!(!dir.join("x.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tmpdir("bad");
    let out = dir.join("x.safetensors");

    // Missing file.
    let o = run(&[
        "tokenize",
        s(&dir.join("missing.h5ad")),
        "--output",
        s(&out),
        "--build-vocab",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no such file"), "{}", text(&o));

    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    // No dictionary and no --build-vocab.
    let o = run(&["tokenize", s(&input), "--output", s(&out)]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("--token-dict") && t.contains("--build-vocab") && t.contains("vocab"),
        "{t}"
    );

    // A Git LFS pointer instead of the pickle.
    let lfs = dir.join("human_mouse_tokens.pickle");
    std::fs::write(
        &lfs,
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 1144041\n",
    )
    .unwrap();
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&lfs),
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("Git LFS pointer"), "{t}");

    // No known genes: a mouse file against a human-only dictionary.
    let human = dir.join("human.json");
    let o = run(&["vocab", "--species", "human", "--output", s(&human)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&human),
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("no known genes"), "{t}");

    // A label column that does not exist lists the available ones.
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--build-vocab",
        "--label-column",
        "celltype",
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("cell_type"), "{t}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
