//! `finetune --data cells.safetensors`: a `tokenize --label-column` output trains directly (its
//! labels travel in the file), and asking for another label column says which one it holds.

mod common_util;

use common_util::{BARON, ok, s, tiny, tmp, train};

#[test]
fn a_tokenized_cells_file_fine_tunes_and_names_its_label_column() {
    let dir = tmp("finetune-cells-file");
    let cells = dir.join("baron.safetensors");
    ok(train(&[
        "tokenize",
        BARON,
        "--label-column",
        "cell_type",
        "--token-dict",
        s(&tiny().join("token_dict.json")),
        "--output",
        s(&cells),
    ]));
    let run = |label: &str, out: &str| {
        train(&[
            "finetune",
            "--data",
            s(&cells),
            "--label-column",
            label,
            "--checkpoint",
            s(&tiny()),
            "--epochs",
            "1",
            "--max-cells",
            "100",
            "--batch-size",
            "16",
            "--output",
            s(&dir.join(out)),
        ])
    };
    let o = run("tissue", "wrong");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("carries the labels of column `cell_type`")
            && e.contains("--label-column cell_type"),
        "{e}"
    );
    ok(run("cell_type", "run"));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/metrics.json")).unwrap())
            .unwrap();
    assert!(m["test"]["accuracy"].as_f64().is_some(), "{m}");
    assert!(m["baseline"]["test"]["accuracy"].as_f64().is_some(), "{m}");
}
