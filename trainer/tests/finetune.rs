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
