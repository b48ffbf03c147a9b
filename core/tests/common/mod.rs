//! Shared helpers for integration tests: fixture paths and tensor comparison.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use genecompass_core::checkpoint::TensorMap;

/// `../shared` beside the checkout (CI lays it there).
pub fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
}

/// The reference-tiny fixture folder.
pub fn tiny() -> PathBuf {
    shared().join("fixtures/reference-tiny")
}

/// A safetensors file as `name → (shape, f32 values)`.
pub fn read_f32(path: PathBuf) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let map = TensorMap::read_safetensors(&path).expect("fixture safetensors");
    map.tensors
        .into_iter()
        .map(|(k, t)| {
            let v = t.to_f32().expect("numeric");
            (k, (t.shape.clone(), v))
        })
        .collect()
}

/// A safetensors file as `name → i64 values` (integer tensors only).
pub fn read_i64(path: PathBuf) -> HashMap<String, Vec<i64>> {
    let map = TensorMap::read_safetensors(&path).expect("fixture safetensors");
    map.tensors
        .into_iter()
        .filter_map(|(k, t)| t.to_i64().map(|v| (k, v)))
        .collect()
}

/// Asserts `|a - b| <= atol` elementwise, naming the tensor and the worst index.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], atol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: length {} vs {}",
        got.len(),
        want.len()
    );
    let (mut worst, mut at) = (0f32, 0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let d = (a - b).abs();
        if d > worst || d.is_nan() {
            worst = d;
            at = i;
        }
    }
    assert!(
        worst <= atol,
        "{name}: max |diff| {worst} at {at} (got {}, want {}) exceeds {atol}",
        got[at],
        want[at]
    );
}

/// Human genes of the hand-computed tokenizer tests: (HGNC symbol, Ensembl id), all
/// protein-coding; `MT-ND1` is mitochondrial by its `MT-` prefix.
pub const HUMAN_GENES: [(&str, &str); 8] = [
    ("TP53", "ENSG00000141510"),
    ("GAPDH", "ENSG00000111640"),
    ("ACTB", "ENSG00000075624"),
    ("MYC", "ENSG00000136997"),
    ("KRAS", "ENSG00000133703"),
    ("PTEN", "ENSG00000171862"),
    ("CD4", "ENSG00000010610"),
    ("MT-ND1", "ENSG00000198888"),
];
