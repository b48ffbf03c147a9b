//! The run folder: `metrics.jsonl`, `checkpoint/` (weights, optimiser state, `state.json`),
//! `job.json`, progress events on stdout, and the SIGTERM/Ctrl-C stop flag.
//!
//! A checkpoint is written into `checkpoint.tmp/` and then swapped in by renames, so a crash
//! never leaves a half-written checkpoint behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{DTypePolicy, ModuleRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handler that asks the training loop to checkpoint and exit.
pub fn install_stop_handler() {
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)) {
        tracing::warn!(
            "cannot install the SIGTERM/Ctrl-C handler ({e}); a signal will stop the run without a checkpoint"
        );
    }
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Where a run stands: enough to continue exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch already consumed (the data position).
    pub batch: usize,
    /// The run seed (every random choice derives from it and the step/epoch).
    pub seed: u64,
    /// Best validation macro-F1 so far (fine-tuning).
    pub best_val_macro_f1: Option<f64>,
    /// Epoch of the best validation score.
    pub best_epoch: Option<usize>,
    /// Whether the run finished.
    pub finished: bool,
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Prints one JSON event line on stdout.
pub fn emit(event: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

impl RunDir {
    /// Creates (or opens) the folder.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating run folder {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// `RUN/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn log(&self, line: &Value) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file("metrics.jsonl"))
            .context("opening metrics.jsonl")?;
        writeln!(f, "{line}")?;
        Ok(())
    }

    /// Drops `metrics.jsonl` lines written after the checkpoint being resumed (steps beyond
    /// `state.step`, evaluations of epochs not finished in it).
    pub fn truncate_log(&self, state: &TrainState) -> anyhow::Result<()> {
        let path = self.file("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let keep: Vec<&str> = text
            .lines()
            .filter(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                let step = v["step"].as_u64().unwrap_or(0) as usize;
                match v["kind"].as_str() {
                    Some("eval") => (v["epoch"].as_u64().unwrap_or(0) as usize) < state.epoch,
                    _ => step <= state.step,
                }
            })
            .collect();
        let mut out = keep.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        write_atomic(&path, &out)
    }

    /// Saves weights, optimiser state and `state.json` as `RUN/checkpoint/`.
    pub fn save_checkpoint<M: Module>(
        &self,
        model: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
    ) -> anyhow::Result<()> {
        let tmp = self.file("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        model
            .clone()
            .into_record()
            .save(tmp.join("model.bpk"))
            .map_err(|e| anyhow::anyhow!("saving model weights: {e}"))?;
        optim
            .save(tmp.join("optim.bpk"))
            .map_err(|e| anyhow::anyhow!("saving optimizer state: {e}"))?;
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        let dest = self.file("checkpoint");
        let old = self.file("checkpoint.old");
        let _ = std::fs::remove_dir_all(&old);
        if dest.exists() {
            std::fs::rename(&dest, &old)?;
        }
        std::fs::rename(&tmp, &dest)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Loads `RUN/checkpoint/` into a freshly built model and optimiser (parameter ids are
    /// restored from the record, so the optimiser state lines up).
    pub fn load_checkpoint<M: Module>(
        &self,
        model: M,
        optim: ModuleOptimizer,
    ) -> anyhow::Result<(M, ModuleOptimizer, TrainState)> {
        let dir = self.file("checkpoint");
        let text = std::fs::read_to_string(dir.join("state.json")).with_context(|| {
            format!(
                "{} has no checkpoint to resume (checkpoint/state.json missing)",
                self.path.display()
            )
        })?;
        let state: TrainState =
            serde_json::from_str(&text).context("reading checkpoint/state.json")?;
        let model = load_weights(model, &dir.join("model.bpk"))?;
        let optim = optim
            .load(dir.join("optim.bpk"))
            .map_err(|e| anyhow::anyhow!("loading optimizer state: {e}"))?;
        Ok((model, optim, state))
    }
}

/// Loads a weights file written by `into_record().save` into `model`.
pub fn load_weights<M: Module>(model: M, path: &Path) -> anyhow::Result<M> {
    let record = ModuleRecord::load(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))
}

/// Saves weights to `path` atomically.
pub fn save_weights<M: Module>(model: &M, path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("bpk.tmp");
    model
        .clone()
        .into_record()
        .save(&tmp)
        .map_err(|e| anyhow::anyhow!("saving {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
