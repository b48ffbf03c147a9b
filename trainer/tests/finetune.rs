//! `genecompass-train finetune` end to end on real cells (tiny model, CPU).

mod common_util;
use common_util::*;

use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};

fn base_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "finetune",
        "--data",
        BARON,
        "--label-column",
        "cell_type",
        "--output",
        out,
        "--config",
        "tiny",
        "--max-cells",
        "200",
        "--batch-size",
        "16",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "5",
        "--max-genes",
        "128",
        "--seed",
        "7",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn finetune_writes_metrics_baseline_and_a_loadable_classifier() {
    let dir = tmp("ft_full");
    let out = dir.join("run");
    let stdout = ok(train(&base_args(out.to_str().unwrap(), &["--epochs", "2"])));
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"event\":\"step\"") && l.contains("eta_s"))
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in ["accuracy", "macro_f1"] {
        let v = m["test"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "test.{key} = {v}");
    }
    // The baseline is a real classifier on these cells: far above chance.
    assert!(
        m["baseline"]["test"]["accuracy"].as_f64().unwrap() > 0.6,
        "{}",
        m["baseline"]
    );
    assert!(m["baseline"]["test"]["macro_f1"].as_f64().is_some());
    let labels = m["label_map"].as_array().unwrap().len();
    assert!(labels >= 3);
    assert_eq!(m["tokenizer_dictionary_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        m["split"]["train"].as_u64().unwrap()
            + m["split"]["val"].as_u64().unwrap()
            + m["split"]["test"].as_u64().unwrap(),
        200
    );
    assert!(out.join("model_card.md").is_file());
    let ck = load_checkpoint(
        &out.join("model"),
        WeightsFormat::Auto,
        &burn::prelude::Device::flex(),
    )
    .unwrap();
    let LoadedModel::Classifier(c) = &ck.model else {
        panic!("not a classifier")
    };
    assert_eq!(c.num_labels(), labels);
    assert_eq!(ck.config.genecompass_truncate_values, Some(false));
    assert_eq!(ck.config.genecompass_trained_with_species, Some(false));
}

#[test]
fn resume_reproduces_the_uninterrupted_loss_curve() {
    let dir = tmp("ft_resume");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let extra = ["--epochs", "2", "--checkpoint-every", "4"];
    ok(train(&base_args(a.to_str().unwrap(), &extra)));
    let mut first = extra.to_vec();
    first.extend(["--max-steps", "6"]);
    let stdout = ok(train(&base_args(b.to_str().unwrap(), &first)));
    assert!(stdout.contains("\"event\":\"stopped\""));
    assert!(!b.join("metrics.json").exists());
    assert_eq!(step_losses(&b).len(), 6);
    ok(train(&["finetune", "--resume", b.to_str().unwrap()]));
    let (la, lb) = (step_losses(&a), step_losses(&b));
    assert_eq!(la.len(), lb.len());
    assert!(la.len() > 6);
    for ((sa, x), (sb, y)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {sa}: {x} vs {y}"
        );
    }
    let ma: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("metrics.json")).unwrap()).unwrap();
    let mb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(ma["test"]["accuracy"], mb["test"]["accuracy"]);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tmp("ft_errors");
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let err = |args: Vec<&str>| {
        let r = train(&args);
        assert!(!r.status.success());
        String::from_utf8(r.stderr).unwrap()
    };
    let mut a = base_args(o, &[]);
    a[4] = "no_such_column";
    let e = err(a);
    assert!(
        e.contains("no_such_column") && e.contains("cell_type"),
        "{e}"
    );
    let mut a = base_args(o, &[]);
    a[2] = "/nonexistent/cells.h5ad";
    assert!(err(a).contains("does not exist"));
    let vocab = dir.join("vocab.json");
    std::fs::write(
        &vocab,
        r#"{"<pad>": 0, "<mask>": 1, "ENSMUSG00000000001": 2}"#,
    )
    .unwrap();
    let e = err(vec![
        "finetune",
        "--data",
        BARON,
        "--label-column",
        "cell_type",
        "--output",
        o,
        "--max-cells",
        "50",
        "--checkpoint",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/reference-tiny"
        ),
        "--token-dict",
        vocab.to_str().unwrap(),
    ]);
    assert!(e.contains("vocabulary mismatch") && e.contains("40"), "{e}");
    let bare = dir.join("ckpt_without_vocab");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures/reference-tiny"
            ))
            .join(f),
            bare.join(f),
        )
        .unwrap();
    }
    let e = err(vec![
        "finetune",
        "--data",
        BARON,
        "--output",
        o,
        "--checkpoint",
        bare.to_str().unwrap(),
    ]);
    assert!(e.contains("--token-dict"), "{e}");
}

const CIDER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/cider_pancreas_human_mouse_3donors.h5ad"
);

/// Train on the mouse cells, test on the human cells: the test split is exactly the human cells
/// of the cell types the mouse donor has (no alpha), duplicates are dropped, and the baseline
/// is fitted on the same split.
#[test]
fn split_by_column_trains_on_one_species_and_tests_the_other() {
    let dir = tmp("ft_cross_species");
    let out = dir.join("run");
    let run_in = |out: &std::path::Path, extra: &[&str]| {
        let mut a = vec![
            "finetune",
            "--data",
            CIDER,
            "--label-column",
            "cell_type",
            "--output",
            out.to_str().unwrap(),
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--max-genes",
            "64",
            "--seed",
            "3",
        ];
        a.extend_from_slice(extra);
        train(&a)
    };
    let o = run_in(
        &out,
        &[
            "--train-where",
            "species=mouse",
            "--test-where",
            "species=human",
            "--exclude-where",
            "is_duplicate_column=true",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(
        stderr.contains("\"alpha\": 18"),
        "alpha test cells reported: {stderr}"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let split = &m["split"];
    let (train, val, test) = (
        split["train"].as_u64().unwrap(),
        split["val"].as_u64().unwrap(),
        split["test"].as_u64().unwrap(),
    );
    // 59 mouse cells − 8 duplicates = 51; human cells of the 4 shared types: 17+5+13+22 = 57.
    // QC drops 2 of the 134 cells.
    assert!((49..=51).contains(&(train + val)), "{split}");
    assert!((55..=57).contains(&test), "{split}");
    assert_eq!(train + val + test, 106, "{split}");
    let labels: Vec<&str> = m["label_map"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    assert!(!labels.contains(&"alpha"));
    assert!(
        m["baseline"]["test"]["accuracy"].as_f64().is_some(),
        "{}",
        m["baseline"]
    );

    let run = |extra: &[&str]| run_in(&dir.join("never"), extra);
    let e = run(&[
        "--train-where",
        "species=zebrafish",
        "--test-where",
        "species=human",
    ]);
    assert!(!e.status.success());
    let e = String::from_utf8_lossy(&e.stderr).into_owned();
    assert!(
        e.contains("no cell has species=zebrafish") && e.contains("mouse"),
        "{e}"
    );
    let e = run(&["--train-where", "species"]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("COLUMN=VALUE"));
}

/// The human T cells (symbols, 16 subtypes, some with 1-3 cells): the fine-tune completes and
/// reports its metrics beside the baseline's on the same split.
#[test]
fn finetune_on_wu2020_t_cells_reports_model_and_baseline() {
    let dir = tmp("ft_wu2020");
    let out = dir.join("run");
    ok(train(&[
        "finetune",
        "--data",
        WU,
        "--label-column",
        "cluster_orig",
        "--output",
        out.to_str().unwrap(),
        "--config",
        "tiny",
        "--epochs",
        "1",
        "--max-genes",
        "64",
        "--batch-size",
        "16",
        "--seed",
        "42",
    ]));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for part in ["test", "baseline"] {
        let t = if part == "test" {
            &m["test"]
        } else {
            &m["baseline"]["test"]
        };
        for key in ["accuracy", "macro_f1"] {
            let v = t[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{part}.{key} missing: {t}"));
            assert!((0.0..=1.0).contains(&v), "{part}.{key} = {v}");
        }
    }
    let labels = m["label_map"].as_array().unwrap();
    assert!(labels.iter().any(|l| l == "8.1-Teff"), "{labels:?}");
    let split = &m["split"];
    let total = ["train", "val", "test"]
        .iter()
        .map(|k| split[k].as_u64().unwrap())
        .sum::<u64>();
    assert!(
        (190..=200).contains(&total),
        "QC keeps nearly all 200 cells: {split}"
    );
}
