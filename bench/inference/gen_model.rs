//! Benchmark helper: writes a random GeneCompass model in the official key layout.
//!
//! `cargo run --release -p genecompass-trainer --example bench_gen_model -- small|base OUT_DIR`
//!
//! The model is `init_mlm` (HF init) with random prior-knowledge tables (N(0, 1)), a
//! non-trivial homolog index and non-trivial LayerNorm affine parameters, so every term of
//! the forward pass is exercised when the PyTorch peer and the Rust side are compared.

use std::path::PathBuf;

use burn::module::{Param, ParamId};
use burn::prelude::*;
use burn::tensor::Distribution;
use genecompass_core::checkpoint::{EmbWarmup, LoadedModel, export_official_safetensors};
use genecompass_core::model::{GeneCompassConfig, init_mlm};

const VOCAB: usize = 50_558;

fn random_ln(ln: &mut burn::nn::LayerNorm, device: &Device) {
    let d = ln.gamma.dims()[0];
    ln.gamma = Param::from_tensor(Tensor::random([d], Distribution::Uniform(0.5, 1.5), device));
    ln.beta = Some(Param::from_tensor(Tensor::random(
        [d],
        Distribution::Normal(0.0, 0.1),
        device,
    )));
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: bench_gen_model small|base OUT_DIR");
    let config = match args[1].as_str() {
        "small" => GeneCompassConfig::small(VOCAB),
        "base" => GeneCompassConfig::base(VOCAB),
        other => anyhow::bail!("unknown shape {other}; expected small or base"),
    };
    let out = PathBuf::from(&args[2]);
    let device = Device::flex();
    let k = config.knowledge_width();
    let mut mlm = init_mlm(&config, &device);
    let emb = &mut mlm.bert.embeddings;
    for p in &mut emb.priors {
        p.knowledge = Param::from_tensor(Tensor::random(
            [VOCAB, k],
            Distribution::Normal(0.0, 1.0),
            &device,
        ))
        .set_require_grad(false);
    }
    // Mouse tokens (upper half) map to a human token (lower half); pad/mask stay identity.
    let half = VOCAB / 2;
    let hom: Vec<i64> = (0..VOCAB)
        .map(|i| {
            if i >= half {
                ((i - half) % (half - 2) + 2) as i64
            } else {
                i as i64
            }
        })
        .collect();
    emb.homologous_index = Param::initialized(
        ParamId::new(),
        Tensor::from_data(TensorData::new(hom, [VOCAB]), &device),
    );
    random_ln(&mut emb.concat_embeddings.cat_ln, &device);
    random_ln(&mut emb.layer_norm, &device);
    for layer in &mut mlm.bert.encoder.layer {
        random_ln(&mut layer.attention.output.layer_norm, &device);
        random_ln(&mut layer.output.layer_norm, &device);
    }
    let model = LoadedModel::MaskedLm(
        mlm,
        EmbWarmup {
            alpha: 1.0,
            steps: 0,
        },
    );
    export_official_safetensors(&model, &config, &out)?;
    eprintln!(
        "wrote {} ({} layers, H {})",
        out.display(),
        config.num_hidden_layers,
        config.hidden_size
    );
    Ok(())
}
