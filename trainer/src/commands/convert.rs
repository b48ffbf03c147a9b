//! `convert`: official directory → native burnpack directory.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::*;
use clap::Args;
use genecompass_core::checkpoint::{WeightsFormat, load_checkpoint, save_native};

/// Arguments of `convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Source model directory (official or native).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Destination directory (config.json, genecompass.json, model.bpk).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Store weights as f16 (half the size; loads back as f32).
    #[arg(long)]
    pub f16: bool,
}

/// Loads (validating every tensor) and writes the native format.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let ck = load_checkpoint(&args.checkpoint, WeightsFormat::Auto, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    save_native(&ck, &args.output, args.f16)?;
    let size = std::fs::metadata(args.output.join("model.bpk"))?.len();
    eprintln!(
        "wrote {} ({:.1} MB, {})",
        args.output.display(),
        size as f64 / 1e6,
        if args.f16 { "f16" } else { "f32" }
    );
    Ok(())
}
