//! Checkpoint import errors and the native format round trip.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::{assert_close, read_f32, read_i64, tiny};
use genecompass_core::CheckpointError;
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint, save_native};
use genecompass_core::model::{ForwardOptions, ModelInput};

/// An empty directory, removed when dropped.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("gc-ckpt-{name}-"))
        .tempdir()
        .unwrap()
}

/// A copy of the fixture directory with `config.json` edited and one weights file, optionally cut.
fn variant(
    name: &str,
    weights: &str,
    cut_to: Option<usize>,
    edit: impl Fn(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = scratch(name);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("config.json")).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let mut bytes = std::fs::read(tiny().join(weights)).unwrap();
    if let Some(n) = cut_to {
        bytes.truncate(n);
    }
    std::fs::write(dir.path().join(weights), bytes).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match load_checkpoint(dir, WeightsFormat::Auto, &Device::flex()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_safetensors_is_reported_as_corrupt() {
    let dir = variant("cut-st", "model.safetensors", Some(50_000), |_| {});
    let msg = load_err(dir.path());
    assert!(msg.contains("corrupt or truncated"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn truncated_pytorch_bin_is_reported_as_corrupt() {
    let dir = variant("cut-bin", "pytorch_model.bin", Some(400_000), |_| {});
    let msg = load_err(dir.path());
    assert!(msg.contains("pytorch_model.bin"), "{msg}");
    assert!(msg.contains("corrupt or truncated"), "{msg}");
}

#[test]
fn garbage_weights_file_is_reported_as_corrupt() {
    let dir = scratch("garbage");
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"version https://git-lfs.github.com/spec/v1\n",
    )
    .unwrap();
    assert!(load_err(dir.path()).contains("corrupt or truncated"));
}

#[test]
fn config_with_other_hidden_size_names_the_key_and_field() {
    let dir = variant("h64", "model.safetensors", None, |c| {
        c["hidden_size"] = 64.into()
    });
    let msg = load_err(dir.path());
    // The first tensor whose shape depends on H is named, with both shapes and the field.
    assert!(msg.contains("tensor `bert.embeddings."), "{msg}");
    assert!(
        msg.contains("[64, 768]") && msg.contains("[32, 768]"),
        "{msg}"
    );
    assert!(msg.contains("hidden_size"), "{msg}");
}

#[test]
fn config_with_fewer_layers_refuses_the_extra_layer() {
    let dir = variant("l1", "model.safetensors", None, |c| {
        c["num_hidden_layers"] = 1.into()
    });
    let msg = load_err(dir.path());
    assert!(msg.contains("num_hidden_layers"), "{msg}");
}

#[test]
fn config_with_a_prior_switched_off_refuses_unused_tensors() {
    let dir = variant("noco", "model.safetensors", None, |c| {
        c["use_co_exp"] = false.into()
    });
    let msg = load_err(dir.path());
    // cat_fc is narrower without the prior: the shape check fires first and names the flags.
    assert!(msg.contains("cat_fc") && msg.contains("use_"), "{msg}");
}

#[test]
fn config_with_other_vocab_size_is_a_shape_mismatch() {
    let dir = variant("v41", "pytorch_model.bin", None, |c| {
        c["vocab_size"] = 41.into()
    });
    let msg = load_err(dir.path());
    assert!(msg.contains("vocab_size"), "{msg}");
}

#[test]
fn missing_config_and_missing_weights_say_what_to_do() {
    let dir = scratch("empty");
    assert!(load_err(dir.path()).contains("config.json"));
    std::fs::copy(tiny().join("config.json"), dir.path().join("config.json")).unwrap();
    let msg = load_err(dir.path());
    assert!(matches!(
        load_checkpoint(dir.path(), WeightsFormat::Auto, &Device::flex()),
        Err(CheckpointError::NoWeights { .. })
    ));
    assert!(msg.contains("--checkpoint"), "{msg}");
}

#[test]
fn malformed_config_is_a_config_error() {
    let dir = scratch("badjson");
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": \"big\"}").unwrap();
    std::fs::copy(
        tiny().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    assert!(load_err(dir.path()).contains("not a GeneCompass/BERT config"));
}

fn hidden(ck_dir: &Path) -> Vec<f32> {
    let dev = Device::flex();
    let ck = load_checkpoint(ck_dir, WeightsFormat::Auto, &dev).unwrap();
    let ints = read_i64(tiny().join("inputs.safetensors"));
    let vals = read_f32(tiny().join("inputs.safetensors"));
    let mask: Vec<f32> = ints["attention_mask"].iter().map(|&m| m as f32).collect();
    let input = ModelInput::from_host(
        &ints["input_ids"],
        &vals["values"].1,
        Some(&ints["species"]),
        Some(&mask),
        6,
        16,
        &dev,
    );
    let out = ck.bert().forward(&input, ForwardOptions::default());
    out.last_hidden_state
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn native_round_trip_is_exact_in_f32_and_close_in_f16() {
    let dev = Device::flex();
    let ck = load_checkpoint(&tiny(), WeightsFormat::Pytorch, &dev).unwrap();
    let want = read_f32(tiny().join("outputs.safetensors"))["bert_last_hidden_state_masked"]
        .1
        .clone();
    let f32_dir = scratch("native32");
    save_native(&ck, f32_dir.path(), false).unwrap();
    let reloaded = load_checkpoint(f32_dir.path(), WeightsFormat::Auto, &dev).unwrap();
    let LoadedModel::MaskedLm(_, w) = reloaded.model else {
        panic!("kind lost")
    };
    assert_eq!((w.alpha, w.steps), (1.0, 250_000));
    assert_close("native f32", &hidden(f32_dir.path()), &want, 1e-4);
    let f16_dir = scratch("native16");
    save_native(&ck, f16_dir.path(), true).unwrap();
    let size32 = std::fs::metadata(f32_dir.path().join("model.bpk"))
        .unwrap()
        .len();
    let size16 = std::fs::metadata(f16_dir.path().join("model.bpk"))
        .unwrap()
        .len();
    assert!(
        size16 * 10 < size32 * 6,
        "f16 file {size16} not about half of {size32}"
    );
    assert_close("native f16", &hidden(f16_dir.path()), &want, 5e-2);
}
