//! Cell-type fine-tuning (spec §10): `BertForSequenceClassification` trained with cross-entropy,
//! AdamW with the HF no-decay groups, linear warm-up/decay, model selection on validation
//! macro-F1, test metrics once at the end beside a logistic-regression baseline.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use genecompass_core::batch::{BatchOptions, Padding, make_batch, validate_cells};
use genecompass_core::model::{
    ForwardOptions, GeneCompassForSequenceClassification, OutputRows, init_classifier,
};
use genecompass_core::tokenize::{GeneMedians, TokenDictionary};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::finetune_data::{DataRequest, LabelledData, Where, load_labelled};
use super::metrics::{Metrics, argmax_rows, classification_metrics};
use super::model_setup::{
    check_vocab, checkpoint_bert, checkpoint_vocab, freeze_knowledge, freeze_layers, named_config,
};
use super::optim::{OptimOptions, build_optimizer, clip_grad_norm, scheduled_lr};
use super::progress::Progress;
use super::rng::Rng;
use super::run_dir::{
    RunDir, TrainState, emit, install_stop_handler, load_weights, save_weights, stop_requested,
    write_atomic,
};

/// A fine-tuning job (`--spec job.json` or the command-line flags; same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneSpec {
    /// h5ad (or any count matrix) or an official tokenized-dataset folder.
    pub data: PathBuf,
    /// `obs` / dataset column with the cell type.
    pub label_column: String,
    /// Run folder.
    pub output: PathBuf,
    /// Pretrained model directory (official or native).
    pub checkpoint: Option<PathBuf>,
    /// Config name when training from scratch: tiny, small, base.
    pub config: Option<String>,
    /// Epochs.
    pub epochs: usize,
    /// Seed of the split, shuffles, dropout and initialisation.
    pub seed: u64,
    /// Cells per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW weight decay (notebook 0.001).
    pub weight_decay: f32,
    /// Linear warm-up steps (notebook 100).
    pub warmup_steps: usize,
    /// Freeze the first N encoder layers.
    pub freeze_layers: usize,
    /// Token dictionary (JSON or pickle).
    pub token_dict: Option<PathBuf>,
    /// Gene medians (JSON or pickle).
    pub medians: Option<PathBuf>,
    /// Validation share per class.
    pub val_fraction: f64,
    /// Test share per class.
    pub test_fraction: f64,
    /// Genes kept per cell.
    pub max_genes: usize,
    /// Random subsample of cells (with the seed).
    pub max_cells: Option<usize>,
    /// Stop (checkpointed, resumable) after this many optimiser steps in total.
    pub max_steps: Option<usize>,
    /// Checkpoint every N steps (and at each epoch end).
    pub checkpoint_every: usize,
    /// Global gradient-norm clip.
    pub max_grad_norm: Option<f64>,
    /// Use the cells' species (CLS row, homolog remap); the official classifier does not.
    pub with_species: bool,
    /// Train (and validate) only on cells where `COLUMN=VALUE[,VALUE]`, e.g. `species=mouse`;
    /// with `test_where`, this replaces the random test split.
    pub train_where: Option<String>,
    /// Test only on cells where `COLUMN=VALUE[,VALUE]`, e.g. `species=human`. Test cells whose
    /// label the training cells lack are dropped (and reported).
    pub test_where: Option<String>,
    /// Drop cells where `COLUMN=VALUE[,VALUE]` (repeatable), e.g. `is_duplicate_column=true`.
    pub exclude_where: Vec<String>,
    /// Features of the baseline.
    pub baseline_features: usize,
    /// Compute backend: cpu, cuda, wgpu.
    pub backend: String,
    /// GPU index.
    pub gpu: usize,
    /// Round batch lengths up to a multiple of this (default: 64 on a GPU, 1 on the CPU).
    pub pad_multiple: Option<usize>,
}

impl Default for FinetuneSpec {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            label_column: "cell_type".into(),
            output: PathBuf::new(),
            checkpoint: None,
            config: None,
            epochs: 10,
            seed: 42,
            batch_size: 8,
            lr: 5e-5,
            weight_decay: 0.001,
            warmup_steps: 100,
            freeze_layers: 0,
            token_dict: None,
            medians: None,
            val_fraction: 0.1,
            test_fraction: 0.2,
            max_genes: 2048,
            max_cells: None,
            max_steps: None,
            checkpoint_every: 100,
            max_grad_norm: Some(1.0),
            with_species: false,
            train_where: None,
            test_where: None,
            exclude_where: Vec::new(),
            baseline_features: 4000,
            backend: "cpu".into(),
            gpu: 0,
            pad_multiple: None,
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Trained to the end and reported.
    Finished,
    /// Stopped early (signal or `max_steps`), checkpointed.
    Interrupted,
}

pub(crate) fn batch_options(spec: &FinetuneSpec, max_positions: usize) -> BatchOptions {
    BatchOptions {
        batch_size: spec.batch_size.max(1),
        padding: Padding::Multiple {
            of: super::pad_multiple(spec.backend == "cpu", spec.pad_multiple),
            max: max_positions,
        },
        sort_by_length: false,
        use_species: spec.with_species,
        attention_mask: true,
        truncate_values: false,
        max_scores_per_head: None,
    }
}

fn load_vocab(
    spec: &FinetuneSpec,
) -> anyhow::Result<(Option<TokenDictionary>, Option<GeneMedians>)> {
    let mut vocab = match &spec.token_dict {
        Some(p) => Some(
            TokenDictionary::load(p)
                .with_context(|| format!("reading --token-dict {}", p.display()))?,
        ),
        None => None,
    };
    let mut medians = match &spec.medians {
        Some(p) => Some(
            GeneMedians::load(p).with_context(|| format!("reading --medians {}", p.display()))?,
        ),
        None => None,
    };
    if let Some(dir) = &spec.checkpoint {
        if vocab.is_none() {
            vocab = checkpoint_vocab(dir)?;
        }
        let m = dir.join("gene_medians.json");
        if medians.is_none() && m.is_file() {
            medians = Some(GeneMedians::load(&m)?);
        }
    }
    Ok((vocab, medians))
}

/// Runs (or, with `resume`, continues) a fine-tuning job.
pub fn run_finetune(spec: FinetuneSpec, device: Device, resume: bool) -> anyhow::Result<Outcome> {
    install_stop_handler();
    let run = RunDir::create(&spec.output)?;
    if !resume && run.file("checkpoint").exists() {
        bail!(
            "{} already holds a run; use --resume {0} to continue it or pick another --output",
            spec.output.display()
        );
    }
    write_atomic(&run.file("job.json"), &serde_json::to_string_pretty(&spec)?)?;
    let (vocab, medians) = load_vocab(&spec)?;
    if let (Some(dir), Some(v)) = (&spec.checkpoint, &vocab) {
        let c = genecompass_core::checkpoint::read_config(dir)
            .with_context(|| format!("reading {}", dir.display()))?;
        check_vocab(v.len(), &c, "the token dictionary")?;
    }
    if spec.checkpoint.is_some() && vocab.is_none() && !super::data::is_tokenized_folder(&spec.data)
    {
        bail!(
            "the checkpoint has no token_dict.json; pass --token-dict (and --medians) it was trained with"
        );
    }
    let data = load_labelled(DataRequest {
        data: &spec.data,
        label_column: &spec.label_column,
        vocab,
        medians,
        max_genes: spec.max_genes,
        max_cells: spec.max_cells,
        val_fraction: spec.val_fraction,
        test_fraction: spec.test_fraction,
        seed: spec.seed,
        train_where: spec.train_where.as_deref().map(Where::parse).transpose()?,
        test_where: spec.test_where.as_deref().map(Where::parse).transpose()?,
        exclude_where: spec
            .exclude_where
            .iter()
            .map(|w| Where::parse(w))
            .collect::<anyhow::Result<_>>()?,
    })?;
    if data.split.train.is_empty() {
        bail!("no training cells after the split");
    }
    let ad = device.clone().autodiff();
    super::seed_all(&ad, spec.seed);
    let (mut config, bert) = match (&spec.checkpoint, &spec.config) {
        (Some(dir), _) => {
            let (c, b) = checkpoint_bert(dir, &ad)?;
            (c, Some(b))
        }
        (None, name) => {
            let v = data
                .vocab
                .as_ref()
                .map(|v| v.len())
                .context("pre-tokenized input needs --token-dict or --checkpoint")?;
            (
                named_config(name.as_deref().unwrap_or("small"), v, spec.max_genes)?,
                None,
            )
        }
    };
    if let Some(v) = &data.vocab {
        check_vocab(v.len(), &config, "the token dictionary")?;
    }
    validate_cells(&data.cells, &spec.data.display().to_string(), config.vocab_size, config.max_position_embeddings)
        .context("the cells do not fit the model (vocabulary mismatch or cells longer than max_position_embeddings)")?;
    genecompass_core::batch::validate_species(
        &data.cells,
        &spec.data.display().to_string(),
        &config.species_names(),
    )?;
    config.set_labels(&data.names);
    config.genecompass_trained_with_species = Some(spec.with_species);
    config.genecompass_truncate_values = Some(false);
    let mut model = init_classifier(&config, data.names.len(), &ad);
    if let Some(b) = bert {
        model.bert.embeddings = b.embeddings;
        model.bert.encoder = b.encoder;
        model.bert.cls_embedding = b.cls_embedding;
    }
    model.bert = freeze_layers(freeze_knowledge(model.bert), spec.freeze_layers);
    let steps_per_epoch = data.split.train.len().div_ceil(spec.batch_size.max(1));
    let oo = OptimOptions {
        lr: spec.lr,
        weight_decay: spec.weight_decay,
        warmup_steps: spec.warmup_steps,
        total_steps: steps_per_epoch * spec.epochs,
        max_grad_norm: spec.max_grad_norm,
    };
    let mut optim = build_optimizer(&model, &oo);
    let mut state = TrainState {
        seed: spec.seed,
        ..Default::default()
    };
    if resume {
        let (m, o, s) = run.load_checkpoint(model, optim)?;
        (model, optim, state) = (m, o, s);
        run.truncate_log(&state)?;
        emit(
            json!({"event": "resume", "step": state.step, "epoch": state.epoch, "batch": state.batch}),
        );
    } else {
        let _ = std::fs::remove_file(run.file("metrics.jsonl"));
    }
    let bo = batch_options(&spec, config.max_position_embeddings);
    let mut progress = Progress::new(oo.total_steps, state.step);
    while state.epoch < spec.epochs && !state.finished {
        let mut order = data.split.train.clone();
        Rng::new(spec.seed, 1000 + state.epoch as u64).shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(bo.batch_size).collect();
        while state.batch < batches.len() {
            if stop_requested() || spec.max_steps.is_some_and(|m| state.step >= m) {
                run.save_checkpoint(&model, &optim, &state)?;
                emit(
                    json!({"event": "stopped", "step": state.step, "checkpoint": run.file("checkpoint")}),
                );
                return Ok(Outcome::Interrupted);
            }
            let t0 = Instant::now();
            let idx = batches[state.batch];
            super::seed_all(
                &ad,
                spec.seed ^ (state.step as u64 + 1).wrapping_mul(0x9E37_79B9),
            );
            let input = make_batch(&data.cells, idx, &bo, &ad);
            let targets: Vec<i64> = idx.iter().map(|&i| data.labels[i] as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [idx.len()]), &ad);
            let logits = model.forward(&input, ForwardOptions::default());
            let loss = log_softmax(logits, 1)
                .gather(1, targets.unsqueeze_dim(1))
                .mean()
                .neg();
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            let norm = spec
                .max_grad_norm
                .map(|m| clip_grad_norm(&model, &mut grads, m));
            let lr = scheduled_lr(&oo, state.step);
            model = optim.step(lr, model, grads);
            state.step += 1;
            state.batch += 1;
            let cells_per_s = idx.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let eta = progress.tick(state.step, loss_value);
            let line = json!({"kind": "step", "step": state.step, "epoch": state.epoch, "loss": loss_value,
                "lr": lr, "grad_norm": norm, "cells_per_s": cells_per_s});
            run.log(&line)?;
            emit(
                json!({"event": "step", "step": state.step, "total_steps": oo.total_steps, "loss": loss_value, "cells_per_s": cells_per_s, "eta_s": eta}),
            );
            if state.step.is_multiple_of(spec.checkpoint_every.max(1)) {
                run.save_checkpoint(&model, &optim, &state)?;
            }
        }
        let val = evaluate(&model, &data, &data.split.val, &bo, &device);
        let score = val.as_ref().map_or(0.0, |m| m.macro_f1);
        let line = json!({"kind": "eval", "split": "val", "epoch": state.epoch, "step": state.step,
            "accuracy": val.as_ref().map(|m| m.accuracy), "macro_f1": val.as_ref().map(|m| m.macro_f1)});
        run.log(&line)?;
        emit(
            json!({"event": "eval", "epoch": state.epoch, "step": state.step, "val_macro_f1": score}),
        );
        if state.best_val_macro_f1.is_none_or(|b| score > b) {
            state.best_val_macro_f1 = Some(score);
            state.best_epoch = Some(state.epoch);
            save_weights(&model, &run.file("best.bpk"))?;
        }
        state.epoch += 1;
        state.batch = 0;
        run.save_checkpoint(&model, &optim, &state)?;
    }
    progress.finish();
    if run.file("best.bpk").is_file() {
        model = load_weights(model, &run.file("best.bpk"))?;
    }
    state.finished = true;
    run.save_checkpoint(&model, &optim, &state)?;
    super::report::finish_finetune(&run, &spec, &config, &model, &data, &state, &device)?;
    Ok(Outcome::Finished)
}

/// Metrics of `model` on the cells `idx` (None when empty).
pub fn evaluate(
    model: &GeneCompassForSequenceClassification,
    data: &LabelledData,
    idx: &[usize],
    bo: &BatchOptions,
    device: &Device,
) -> Option<Metrics> {
    if idx.is_empty() {
        return None;
    }
    let (pred, _) = predict(model, data, idx, bo, device);
    let truth: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
    Some(classification_metrics(&truth, &pred, &data.names))
}

/// Predicted classes and logits (row-major) of the cells `idx`, without autodiff or dropout.
pub fn predict(
    model: &GeneCompassForSequenceClassification,
    data: &LabelledData,
    idx: &[usize],
    bo: &BatchOptions,
    device: &Device,
) -> (Vec<usize>, Vec<f32>) {
    let m = model.valid();
    let k = data.names.len();
    let mut logits = Vec::with_capacity(idx.len() * k);
    for chunk in idx.chunks(bo.batch_size.max(1) * 2) {
        let input = make_batch(&data.cells, chunk, bo, device);
        // Logits read the CLS only.
        let only_cells = ForwardOptions {
            rows: OutputRows::Cls,
            ..ForwardOptions::default()
        };
        let l = m.forward(&input, only_cells);
        logits.extend(l.into_data().try_to_vec::<f32>().expect("f32 logits"));
    }
    (argmax_rows(&logits, k), logits)
}
