//! `convert`: official directory → native burnpack directory, or any model directory →
//! official layout (`config.json` + `model.safetensors`), which the browser and the PyTorch
//! code read.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::*;
use clap::Args;
use genecompass_core::checkpoint::{
    WeightsFormat, export_official_safetensors, load_checkpoint, save_native,
};

/// Layout written by `convert`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertFormat {
    /// Burnpack (`model.bpk`, optionally f16) + `genecompass.json`: fastest to load here.
    Native,
    /// Official Hugging Face layout (`model.safetensors`, f32): for the browser and PyTorch.
    Official,
}

/// Files beside the weights that travel with a model (vocabulary, medians, card).
const COMPANIONS: [&str; 4] = [
    "token_dict.json",
    "gene_medians.json",
    "human_mouse_tokens.pickle",
    "model_card.md",
];

/// Arguments of `convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Source model directory (official or native).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Destination directory (config.json, genecompass.json, model.bpk).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = ConvertFormat::Native)]
    pub format: ConvertFormat,
    /// Store weights as f16 (half the size; loads back as f32). Native format only.
    #[arg(long)]
    pub f16: bool,
}

/// Loads (validating every tensor) and writes the native format.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let ck = load_checkpoint(&args.checkpoint, WeightsFormat::Auto, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let weights = match args.format {
        ConvertFormat::Native => {
            save_native(&ck, &args.output, args.f16)?;
            "model.bpk"
        }
        ConvertFormat::Official => {
            anyhow::ensure!(
                !args.f16,
                "--f16 applies to --format native only; official safetensors are written as f32"
            );
            export_official_safetensors(&ck.model, &ck.config, &args.output)?;
            "model.safetensors"
        }
    };
    for name in COMPANIONS {
        let from = args.checkpoint.join(name);
        if from.is_file() {
            std::fs::copy(&from, args.output.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let size = std::fs::metadata(args.output.join(weights))?.len();
    eprintln!(
        "wrote {} ({weights}, {:.1} MB, {})",
        args.output.display(),
        size as f64 / 1e6,
        if args.f16 { "f16" } else { "f32" }
    );
    Ok(())
}
