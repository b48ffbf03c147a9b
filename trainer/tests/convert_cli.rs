//! `convert` round trips: official → native (f32) → official gives a directory that
//! `classify` reads to the same logits, with the vocabulary beside it; f16 native stays close.

mod common_util;
use common_util::*;

use std::path::Path;

const CLASSIFIER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/reference-tiny/classifier"
);
const CELLS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/reference-tiny/inputs.safetensors"
);

fn logits(model: &Path, out: &Path) -> Vec<f32> {
    ok(train(&[
        "classify",
        "--checkpoint",
        model.to_str().unwrap(),
        "--input",
        CELLS,
        "--output",
        out.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
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
fn official_native_official_round_trip_classifies_identically() {
    let dir = tmp("convert_round_trip");
    let (native, half, official) = (dir.join("native"), dir.join("half"), dir.join("official"));
    let run = |args: &[&str]| ok(train(args));
    run(&[
        "convert",
        "--checkpoint",
        CLASSIFIER,
        "--output",
        native.to_str().unwrap(),
    ]);
    run(&[
        "convert",
        "--checkpoint",
        CLASSIFIER,
        "--output",
        half.to_str().unwrap(),
        "--f16",
    ]);
    // A fine-tuned run's vocabulary travels with the model.
    std::fs::write(native.join("token_dict.json"), "{\"<pad>\": 0}").unwrap();
    run(&[
        "convert",
        "--checkpoint",
        native.to_str().unwrap(),
        "--output",
        official.to_str().unwrap(),
        "--format",
        "official",
    ]);
    assert!(official.join("model.safetensors").is_file());
    assert!(official.join("token_dict.json").is_file());

    let reference = logits(Path::new(CLASSIFIER), &dir.join("ref.safetensors"));
    let native_l = logits(&native, &dir.join("native.safetensors"));
    let official_l = logits(&official, &dir.join("official.safetensors"));
    let half_l = logits(&half, &dir.join("half.safetensors"));
    assert_eq!(max_diff(&reference, &native_l), 0.0);
    assert_eq!(max_diff(&reference, &official_l), 0.0);
    let d = max_diff(&reference, &half_l);
    assert!(d < 1e-2, "f16 logits differ by {d}");

    // f16 is for the native layout only: refused with a reason, nothing written.
    let bad = train(&[
        "convert",
        "--checkpoint",
        CLASSIFIER,
        "--output",
        dir.join("bad").to_str().unwrap(),
        "--format",
        "official",
        "--f16",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--f16 applies to --format native"));
    assert!(!dir.join("bad").exists());
}
