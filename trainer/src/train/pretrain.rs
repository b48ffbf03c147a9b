//! Masked-LM pretraining (spec §7): official masking, loss `0.2·CE + 0.8·MSE` at masked
//! positions, AdamW (decay 0.01 except biases and LayerNorm), linear warm-up and decay,
//! gradient accumulation and global-norm clipping, resumable checkpoints.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use genecompass_core::batch::validate_cells;
use genecompass_core::cells::CellSet;
use genecompass_core::checkpoint::{Checkpoint, EmbWarmup, LoadedModel, save_native};
use genecompass_core::model::{ForwardOptions, GeneCompassForMaskedLm, init_mlm};
use genecompass_core::tokenize::{GeneMedians, TokenDictionary, TokenizeOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::data::{MemCells, is_tokenized_folder, read_tokenized};
use super::masking::{MaskedBatch, MaskingOptions, mask_batch};
use super::model_setup::{check_vocab, checkpoint_vocab, freeze_knowledge, named_config};
use super::optim::{OptimOptions, build_optimizer, clip_grad_norm, scale_grads, scheduled_lr};
use super::progress::Progress;
use super::rng::Rng;
use super::run_dir::{
    RunDir, TrainState, emit, install_stop_handler, stop_requested, write_atomic,
};

/// A pretraining job (`--spec job.json` or the flags; same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainSpec {
    /// Count matrix (tokenized here), an official tokenized-dataset folder, or a cells
    /// `.safetensors` file (`genecompass-train tokenize` output).
    pub data: PathBuf,
    /// Run folder.
    pub output: PathBuf,
    /// Continue from a model directory (official or native MLM).
    pub checkpoint: Option<PathBuf>,
    /// Config name from scratch: tiny, small, base.
    pub config: Option<String>,
    /// Token dictionary.
    pub token_dict: Option<PathBuf>,
    /// Gene medians.
    pub medians: Option<PathBuf>,
    /// Epochs.
    pub epochs: usize,
    /// Stop (checkpointed, resumable) after this many optimiser steps.
    pub max_steps: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Cells per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Peak learning rate (official 5e-5).
    pub lr: f64,
    /// Weight decay (official 0.01).
    pub weight_decay: f32,
    /// Warm-up steps (official 10000); default 10 % of the run.
    pub warmup_steps: Option<usize>,
    /// Global gradient-norm clip (HF default 1.0).
    pub max_grad_norm: Option<f64>,
    /// Genes per cell.
    pub max_genes: usize,
    /// Random subsample of cells.
    pub max_cells: Option<usize>,
    /// Masking probability (official 0.15).
    pub mlm_probability: f64,
    /// Checkpoint every N optimiser steps.
    pub checkpoint_every: usize,
    /// Pass species to the model (the official pretraining does).
    pub use_species: bool,
    /// A prior-knowledge store (`priors build-*` / `load-official` output) whose tables a model
    /// from scratch takes as its frozen knowledge tables (only the kinds the store has).
    pub priors: Option<PathBuf>,
    /// Compute backend: cpu, cuda, wgpu.
    pub backend: String,
    /// GPU index.
    pub gpu: usize,
    /// Round batch lengths up to a multiple of this (default: 64 on a GPU, 1 on the CPU).
    pub pad_multiple: Option<usize>,
}

impl Default for PretrainSpec {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            output: PathBuf::new(),
            checkpoint: None,
            config: None,
            token_dict: None,
            medians: None,
            epochs: 1,
            max_steps: None,
            seed: 42,
            batch_size: 8,
            grad_accum: 1,
            lr: 5e-5,
            weight_decay: 0.01,
            warmup_steps: None,
            max_grad_norm: Some(1.0),
            max_genes: 2048,
            max_cells: None,
            mlm_probability: 0.15,
            checkpoint_every: 1000,
            use_species: true,
            priors: None,
            backend: "cpu".into(),
            gpu: 0,
            pad_multiple: None,
        }
    }
}

fn load_cells(
    spec: &PretrainSpec,
) -> anyhow::Result<(CellSet, Option<TokenDictionary>, Option<GeneMedians>)> {
    let mut vocab = match &spec.token_dict {
        Some(p) => Some(
            TokenDictionary::load(p)
                .with_context(|| format!("reading --token-dict {}", p.display()))?,
        ),
        None => None,
    };
    if vocab.is_none()
        && let Some(dir) = &spec.checkpoint
    {
        vocab = checkpoint_vocab(dir)?;
    }
    if !spec.data.exists() {
        bail!("--data {} does not exist", spec.data.display());
    }
    let cells_file =
        spec.data.is_file() && spec.data.extension().is_some_and(|e| e == "safetensors");
    if is_tokenized_folder(&spec.data) || cells_file {
        let mut cells = if cells_file {
            crate::cells_io::read_cells(&spec.data, None)?
        } else {
            read_tokenized(&spec.data, None)?
        };
        for c in &mut cells.cells {
            c.input_ids.truncate(spec.max_genes);
            c.values.truncate(spec.max_genes);
        }
        return Ok((cells, vocab, None));
    }
    if spec.checkpoint.is_some() && vocab.is_none() {
        bail!(
            "the checkpoint has no token_dict.json; pass --token-dict (and --medians) it was trained with"
        );
    }
    let mem = MemCells::read(&spec.data)?;
    let vocab = match vocab {
        Some(v) => v,
        None => mem.build_vocab()?,
    };
    let opts = TokenizeOptions {
        max_len: Some(spec.max_genes),
        ..Default::default()
    };
    let medians = match &spec.medians {
        Some(p) => GeneMedians::load(p)?,
        None => {
            let (_, kept) = mem.tokenize_rows(None, &vocab, &GeneMedians::default(), &opts)?;
            mem.medians(&kept, &vocab, &opts)?
        }
    };
    let (cells, _) = mem.tokenize_rows(None, &vocab, &medians, &opts)?;
    Ok((cells, Some(vocab), Some(medians)))
}

/// One micro-batch: forward, loss, backward. Returns (loss, id_loss, value_loss) and the grads.
pub fn mlm_micro_step(
    model: &GeneCompassForMaskedLm,
    batch: &MaskedBatch,
    use_species: bool,
    device: &Device,
) -> ([f64; 3], GradientsParams) {
    let (input, targets) = batch.to_device(use_species, device);
    let l = model.loss(&input, &targets, ForwardOptions::default());
    let v = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
    let values = [v(&l.loss), v(&l.id_loss), v(&l.value_loss)];
    (
        values,
        GradientsParams::from_grads(l.loss.backward(), model),
    )
}

/// Runs (or continues) a pretraining job.
pub fn run_pretrain(
    spec: PretrainSpec,
    device: Device,
    resume: bool,
) -> anyhow::Result<super::finetune::Outcome> {
    use super::finetune::Outcome;
    install_stop_handler();
    let run = RunDir::create(&spec.output)?;
    if !resume && run.file("checkpoint").exists() {
        bail!(
            "{} already holds a run; use --resume {0} to continue it or pick another --output",
            spec.output.display()
        );
    }
    write_atomic(&run.file("job.json"), &serde_json::to_string_pretty(&spec)?)?;
    let (mut cells, vocab, medians) = load_cells(&spec)?;
    if let Some(m) = spec.max_cells.filter(|&m| m < cells.len()) {
        Rng::new(spec.seed, 0xCE11).shuffle(&mut cells.cells);
        cells.cells.truncate(m);
    }
    if cells.is_empty() {
        bail!("no cells to train on");
    }
    let ad = device.clone().autodiff();
    super::seed_all(&ad, spec.seed);
    if spec.priors.is_some() && spec.checkpoint.is_some() {
        bail!(
            "--priors sets the knowledge tables of a model from scratch; a --checkpoint keeps its \
             own (to add genes with their priors, use `genecompass-train extend-vocab`)"
        );
    }
    let mut priors_source = None;
    let (config, mut model, warmup) = match (&spec.checkpoint, &spec.config) {
        (Some(dir), _) => {
            let ck = genecompass_core::checkpoint::load_checkpoint(dir, Default::default(), &ad)?;
            match ck.model {
                LoadedModel::MaskedLm(m, w) => (ck.config, m, w),
                LoadedModel::Classifier(_) => bail!(
                    "{} is a classifier; pretraining needs an MLM checkpoint",
                    dir.display()
                ),
            }
        }
        (None, name) => {
            let v = vocab
                .as_ref()
                .map(|v| v.len())
                .context("pre-tokenized input needs --token-dict or --checkpoint")?;
            let mut c = named_config(name.as_deref().unwrap_or("small"), v, spec.max_genes)?;
            let store = match &spec.priors {
                Some(dir) => {
                    let vocab = vocab.as_ref().expect("checked above");
                    let t = super::priors_setup::read_store(dir, vocab)?;
                    t.configure(&mut c);
                    Some(t)
                }
                None => None,
            };
            let mut m = init_mlm(&c, &ad);
            if let Some(t) = &store {
                m.bert = t.install(m.bert);
                priors_source = Some(t.source.clone());
            }
            (
                c,
                m,
                EmbWarmup {
                    alpha: 1.0,
                    steps: 0,
                },
            )
        }
    };
    if let Some(v) = &vocab {
        check_vocab(v.len(), &config, "the token dictionary")?;
    }
    validate_cells(
        &cells,
        &spec.data.display().to_string(),
        config.vocab_size,
        config.max_position_embeddings,
    )?;
    genecompass_core::batch::validate_species(
        &cells,
        &spec.data.display().to_string(),
        &config.species_names(),
    )?;
    model.bert = freeze_knowledge(model.bert);
    let bs = spec.batch_size.max(1);
    let accum = spec.grad_accum.max(1);
    let micro_per_epoch = cells.len().div_ceil(bs);
    let steps_per_epoch = micro_per_epoch.div_ceil(accum);
    let total = steps_per_epoch * spec.epochs;
    let oo = OptimOptions {
        lr: spec.lr,
        weight_decay: spec.weight_decay,
        warmup_steps: spec.warmup_steps.unwrap_or(total / 10),
        total_steps: total,
        max_grad_norm: spec.max_grad_norm,
    };
    let mut optim: ModuleOptimizer = build_optimizer(&model, &oo);
    let mut state = TrainState {
        seed: spec.seed,
        ..Default::default()
    };
    if resume {
        (model, optim, state) = run.load_checkpoint(model, optim)?;
        run.truncate_log(&state)?;
        emit(
            json!({"event": "resume", "step": state.step, "epoch": state.epoch, "batch": state.batch}),
        );
    } else {
        let _ = std::fs::remove_file(run.file("metrics.jsonl"));
    }
    let mo = MaskingOptions {
        mlm_probability: spec.mlm_probability,
        mask_share: 0.8,
        random_share: 0.5,
        mask_id: vocab.as_ref().and_then(|v| v.mask_id()).unwrap_or(1),
        pad_id: config.pad_token_id as u32,
        vocab_size: config.vocab_size,
        use_species: spec.use_species,
        pad_multiple: super::pad_multiple(spec.backend == "cpu", spec.pad_multiple),
        max_len: config.max_position_embeddings,
    };
    let mut progress = Progress::new(total, state.step);
    while state.epoch < spec.epochs {
        let mut order: Vec<usize> = (0..cells.len()).collect();
        Rng::new(spec.seed, 1000 + state.epoch as u64).shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(bs).collect();
        while state.batch < batches.len() {
            if stop_requested() || spec.max_steps.is_some_and(|m| state.step >= m) {
                run.save_checkpoint(&model, &optim, &state)?;
                emit(
                    json!({"event": "stopped", "step": state.step, "checkpoint": run.file("checkpoint")}),
                );
                return Ok(Outcome::Interrupted);
            }
            let t0 = Instant::now();
            let micro: Vec<usize> =
                (state.batch..(state.batch + accum).min(batches.len())).collect();
            let mut acc = GradientsAccumulator::<GeneCompassForMaskedLm>::new();
            let mut sums = [0f64; 3];
            let mut n_cells = 0;
            for &mb in &micro {
                let mut rng = Rng::new(
                    spec.seed ^ 0x4D41_534B,
                    (state.epoch as u64) << 32 | mb as u64,
                );
                let batch = mask_batch(&cells, batches[mb], &mo, &mut rng);
                super::seed_all(
                    &ad,
                    spec.seed ^ ((state.epoch as u64) << 32 | mb as u64).wrapping_mul(0x9E37_79B9),
                );
                let (vals, grads) = mlm_micro_step(&model, &batch, spec.use_species, &ad);
                for (s, v) in sums.iter_mut().zip(vals) {
                    *s += v / micro.len() as f64;
                }
                n_cells += batches[mb].len();
                acc.accumulate(&model, grads);
            }
            let mut grads = acc.grads();
            if micro.len() > 1 {
                scale_grads(&model, &mut grads, 1.0 / micro.len() as f64);
            }
            let norm = spec
                .max_grad_norm
                .map(|m| clip_grad_norm(&model, &mut grads, m));
            let lr = scheduled_lr(&oo, state.step);
            model = optim.step(lr, model, grads);
            state.step += 1;
            state.batch += micro.len();
            let cells_per_s = n_cells as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let eta = progress.tick(state.step, sums[0]);
            run.log(&json!({"kind": "step", "step": state.step, "epoch": state.epoch, "loss": sums[0],
                "id_loss": sums[1], "value_loss": sums[2], "lr": lr, "grad_norm": norm, "cells_per_s": cells_per_s}))?;
            emit(
                json!({"event": "step", "step": state.step, "total_steps": total, "loss": sums[0], "cells_per_s": cells_per_s, "eta_s": eta}),
            );
            if state.step.is_multiple_of(spec.checkpoint_every.max(1)) {
                run.save_checkpoint(&model, &optim, &state)?;
            }
        }
        state.epoch += 1;
        state.batch = 0;
        run.save_checkpoint(&model, &optim, &state)?;
    }
    progress.finish();
    state.finished = true;
    run.save_checkpoint(&model, &optim, &state)?;
    let model_dir = run.file("model");
    let ck = Checkpoint {
        dir: run.path.clone(),
        config,
        model: LoadedModel::MaskedLm(burn::module::Module::valid(&model), warmup),
        weights_file: model_dir.join("model.bpk"),
        tensor_count: 0,
    };
    save_native(&ck, &model_dir, false)?;
    if let Some(v) = &vocab {
        v.save_json(&model_dir.join("token_dict.json"))?;
    }
    if let Some(m) = &medians {
        write_atomic(&model_dir.join("gene_medians.json"), &m.to_json())?;
    }
    if let Some(src) = &priors_source {
        write_atomic(
            &model_dir.join(super::priors_setup::SOURCE_FILE),
            &serde_json::to_string_pretty(src)?,
        )?;
    }
    emit(json!({"event": "done", "steps": state.step, "model": model_dir}));
    Ok(Outcome::Finished)
}
