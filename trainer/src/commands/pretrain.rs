//! `pretrain`: masked-LM pretraining as a resumable job.

use std::path::PathBuf;

use clap::Args;
use genecompass_trainer::train::pretrain::{PretrainSpec, run_pretrain};

use super::finetune::{parse_backend, read_json, set, set_opt};
use crate::device::{Backend, device};

/// Arguments of `pretrain` (each overrides the same key of `--spec`).
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Job file (JSON with the flag names in snake_case).
    #[arg(long, value_name = "job.json")]
    pub spec: Option<PathBuf>,
    /// Continue the run in this folder.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Count matrix, tokenized-dataset folder, or cells .safetensors (`tokenize` output).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder.
    #[arg(long, value_name = "RUN_DIR")]
    pub output: Option<PathBuf>,
    /// MLM model directory to continue from.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// From-scratch config: tiny, small, base.
    #[arg(long)]
    pub config: Option<String>,
    /// Token dictionary.
    #[arg(long)]
    pub token_dict: Option<PathBuf>,
    /// Gene medians.
    #[arg(long)]
    pub medians: Option<PathBuf>,
    /// Epochs (default 1).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop (checkpointed) after this many optimiser steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Seed (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cells per micro-batch (default 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimiser step (default 1).
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Peak learning rate (default 5e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay (default 0.01).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Warm-up steps (default 10% of the run).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Genes per cell (default 2048).
    #[arg(long)]
    pub max_genes: Option<usize>,
    /// Random subsample of cells.
    #[arg(long)]
    pub max_cells: Option<usize>,
    /// Checkpoint every N steps (default 1000).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Prior-knowledge store for a model from scratch (`priors build-* --vocab` output whose
    /// rows are the token dictionary's); the kinds it holds are switched on.
    #[arg(long, value_name = "DIR")]
    pub priors: Option<PathBuf>,
    /// Round each batch's length up to a multiple of N (loss unchanged; GPUs compile and
    /// autotune kernels per shape). Default: 64 on a GPU backend, 1 on the CPU.
    #[arg(long, value_name = "N")]
    pub pad_multiple: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// GPU index.
    #[arg(long)]
    pub gpu: Option<usize>,
}

/// Runs the job.
pub fn run(args: PretrainArgs) -> anyhow::Result<()> {
    let resume = args.resume.is_some();
    let mut spec: PretrainSpec = match (&args.resume, &args.spec) {
        (Some(dir), _) => read_json(&dir.join("job.json"))?,
        (None, Some(p)) => read_json(p)?,
        (None, None) => PretrainSpec::default(),
    };
    set!(
        spec,
        args,
        data,
        output,
        epochs,
        seed,
        batch_size,
        grad_accum,
        lr,
        weight_decay,
        max_genes,
        checkpoint_every,
        gpu
    );
    set_opt!(
        spec,
        args,
        checkpoint,
        config,
        token_dict,
        medians,
        max_steps,
        warmup_steps,
        max_cells,
        priors,
        pad_multiple
    );
    if let Some(dir) = &args.resume {
        spec.output = dir.clone();
        if args.max_steps.is_none() {
            spec.max_steps = None;
        }
    }
    if let Some(b) = args.backend {
        spec.backend = format!("{b:?}").to_lowercase();
    }
    anyhow::ensure!(
        !spec.data.as_os_str().is_empty(),
        "--data is required (or a --spec with `data`)"
    );
    anyhow::ensure!(!spec.output.as_os_str().is_empty(), "--output is required");
    let dev = device(parse_backend(&spec.backend)?, spec.gpu)?;
    run_pretrain(spec, dev, resume)?;
    Ok(())
}
