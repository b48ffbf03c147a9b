//! `finetune`: cell-type fine-tuning as a resumable job.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use genecompass_trainer::train::finetune::{FinetuneSpec, run_finetune};

use crate::device::{Backend, device};

/// Arguments of `finetune` (each overrides the same key of `--spec`).
#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Job file (JSON with the flag names in snake_case).
    #[arg(long, value_name = "job.json")]
    pub spec: Option<PathBuf>,
    /// Continue the run in this folder exactly where its checkpoint left it.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// h5ad (raw counts) or an official tokenized-dataset folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Cell-type column.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Run folder.
    #[arg(long, value_name = "RUN_DIR")]
    pub output: Option<PathBuf>,
    /// Pretrained model directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// From-scratch config: tiny, small, base.
    #[arg(long)]
    pub config: Option<String>,
    /// Epochs (default 10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cells per step (default 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (default 5e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay (default 0.001).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Warm-up steps (default 100).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Freeze the first N encoder layers (default 0).
    #[arg(long)]
    pub freeze_layers: Option<usize>,
    /// Token dictionary.
    #[arg(long)]
    pub token_dict: Option<PathBuf>,
    /// Gene medians.
    #[arg(long)]
    pub medians: Option<PathBuf>,
    /// Validation fraction (default 0.1).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Test fraction (default 0.2).
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// Genes per cell (default 2048).
    #[arg(long)]
    pub max_genes: Option<usize>,
    /// Random subsample of cells.
    #[arg(long)]
    pub max_cells: Option<usize>,
    /// Stop (checkpointed) after this many steps in total.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Checkpoint every N steps (default 100).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Pass the cells' species to the model.
    #[arg(long)]
    pub with_species: bool,
    /// Train and validate only on cells where COLUMN=VALUE[,VALUE] (e.g. species=mouse).
    #[arg(long, value_name = "COLUMN=VALUES")]
    pub train_where: Option<String>,
    /// Test only on cells where COLUMN=VALUE[,VALUE] (e.g. species=human); replaces the random
    /// test split. Test cells with a label the training cells lack are dropped.
    #[arg(long, value_name = "COLUMN=VALUES", requires = "train_where")]
    pub test_where: Option<String>,
    /// Drop cells where COLUMN=VALUE[,VALUE] (repeatable; e.g. is_duplicate_column=true).
    #[arg(long, value_name = "COLUMN=VALUES")]
    pub exclude_where: Vec<String>,
    /// Round each batch's length up to a multiple of N (results unchanged; GPUs compile and
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

macro_rules! set {
    ($spec:ident, $args:ident, $($f:ident),*) => { $( if let Some(v) = $args.$f.clone() { $spec.$f = v; } )* };
}
macro_rules! set_opt {
    ($spec:ident, $args:ident, $($f:ident),*) => { $( if $args.$f.is_some() { $spec.$f = $args.$f.clone(); } )* };
}
pub(crate) use {set, set_opt};

/// Runs the job; exit code 0 also when interrupted (the checkpoint says where).
pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    let resume = args.resume.is_some();
    let mut spec: FinetuneSpec = match (&args.resume, &args.spec) {
        (Some(dir), _) => read_json(&dir.join("job.json"))?,
        (None, Some(p)) => read_json(p)?,
        (None, None) => FinetuneSpec::default(),
    };
    set!(
        spec,
        args,
        data,
        label_column,
        output,
        epochs,
        seed,
        batch_size,
        lr,
        weight_decay,
        warmup_steps
    );
    set!(
        spec,
        args,
        freeze_layers,
        val_fraction,
        test_fraction,
        max_genes,
        checkpoint_every,
        gpu
    );
    set_opt!(
        spec, args, checkpoint, config, token_dict, medians, max_cells, max_steps
    );
    set_opt!(spec, args, train_where, test_where, pad_multiple);
    if !args.exclude_where.is_empty() {
        spec.exclude_where = args.exclude_where.clone();
    }
    if let Some(dir) = &args.resume {
        spec.output = dir.clone();
        if args.max_steps.is_none() {
            spec.max_steps = None;
        }
    }
    spec.with_species |= args.with_species;
    if let Some(b) = args.backend {
        spec.backend = format!("{b:?}").to_lowercase();
    }
    anyhow::ensure!(
        !spec.data.as_os_str().is_empty(),
        "--data is required (or a --spec with `data`)"
    );
    anyhow::ensure!(!spec.output.as_os_str().is_empty(), "--output is required");
    let dev = device(parse_backend(&spec.backend)?, spec.gpu)?;
    run_finetune(spec, dev, resume)?;
    Ok(())
}

/// Parses a backend name from a job file.
pub fn parse_backend(name: &str) -> anyhow::Result<Backend> {
    <Backend as clap::ValueEnum>::from_str(name, true)
        .map_err(|e| anyhow::anyhow!("backend {name:?}: {e}"))
}

/// Reads a JSON job file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid job file", path.display()))
}
