//! The project's native model directory: `config.json` + `genecompass.json` + `model.bpk`.
//!
//! Burnpack keeps every parameter (knowledge tables and homolog index included) under the
//! module's own field paths, so a native directory loads without the official key table and
//! can be fetched by the browser as one file. `f16` halves the download.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::store::{DTypePolicy, ModuleRecord};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, EmbWarmup, LoadedModel, ModelKind};
use crate::error::CheckpointError;
use crate::model::{GeneCompassConfig, init_classifier, init_mlm};

/// `genecompass.json`: what `config.json` cannot say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeMeta {
    /// Format version (1).
    pub format_version: u32,
    /// Model kind.
    pub kind: ModelKind,
    /// `emb_warmup.alpha` of an MLM model.
    pub emb_warmup_alpha: Option<f32>,
    /// `emb_warmup.steps` of an MLM model.
    pub emb_warmup_steps: Option<i64>,
    /// Stored float dtype: "f32" or "f16".
    pub dtype: String,
    /// Where the weights came from (an official directory, a training run).
    pub source: String,
}

struct CastFloats(DType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(move |t| t.cast(dtype))
    }
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Record {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn write_json(path: &Path, text: &str) -> Result<(), CheckpointError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// Writes `checkpoint` as a native directory (weights written to a temporary file, then renamed).
pub fn save_native(checkpoint: &Checkpoint, dir: &Path, half: bool) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let dtype = if half { DType::F16 } else { DType::F32 };
    let mut cast = CastFloats(dtype);
    let (record, kind, warmup) = match &checkpoint.model {
        LoadedModel::MaskedLm(m, w) => (
            m.clone().map(&mut cast).into_record(),
            ModelKind::MaskedLm,
            Some(*w),
        ),
        LoadedModel::Classifier(c) => (
            c.clone().map(&mut cast).into_record(),
            ModelKind::Classifier,
            None,
        ),
    };
    let bpk = dir.join("model.bpk");
    let tmp = dir.join("model.bpk.tmp");
    record.save(&tmp).map_err(|e| record_err(&tmp, e))?;
    std::fs::rename(&tmp, &bpk).map_err(|source| CheckpointError::Io {
        path: bpk.display().to_string(),
        source,
    })?;
    let meta = NativeMeta {
        format_version: 1,
        kind,
        emb_warmup_alpha: warmup.map(|w| w.alpha),
        emb_warmup_steps: warmup.map(|w| w.steps),
        dtype: if half { "f16" } else { "f32" }.into(),
        source: checkpoint.dir.display().to_string(),
    };
    write_json(
        &dir.join("genecompass.json"),
        &serde_json::to_string_pretty(&meta).expect("meta serialises"),
    )?;
    write_json(&dir.join("config.json"), &checkpoint.config.to_json())
}

/// Reads a native directory.
pub fn load_native(
    dir: &Path,
    config: GeneCompassConfig,
    bpk: &Path,
    device: &Device,
) -> Result<Checkpoint, CheckpointError> {
    let meta_path = dir.join("genecompass.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|source| CheckpointError::Io {
        path: meta_path.display().to_string(),
        source,
    })?;
    let meta: NativeMeta = serde_json::from_str(&text).map_err(|e| CheckpointError::Config {
        path: meta_path.display().to_string(),
        message: e.to_string(),
    })?;
    let record = || -> Result<ModuleRecord, CheckpointError> {
        Ok(ModuleRecord::load(bpk)
            .map_err(|e| record_err(bpk, e))?
            .with_dtype_policy(DTypePolicy::CastToModule))
    };
    let model = match meta.kind {
        ModelKind::MaskedLm => {
            let m = init_mlm(&config, device)
                .try_load_record(record()?)
                .map_err(|e| record_err(bpk, format!("{e}; does config.json match model.bpk?")))?;
            LoadedModel::MaskedLm(
                m,
                EmbWarmup {
                    alpha: meta.emb_warmup_alpha.unwrap_or(1.0),
                    steps: meta.emb_warmup_steps.unwrap_or(0),
                },
            )
        }
        ModelKind::Classifier => {
            let n = config
                .num_labels
                .or(config.label_names().map(|l| l.len()))
                .ok_or_else(|| CheckpointError::Config {
                    path: dir.join("config.json").display().to_string(),
                    message: "a classifier config needs id2label or num_labels".into(),
                })?;
            let c = init_classifier(&config, n, device)
                .try_load_record(record()?)
                .map_err(|e| record_err(bpk, format!("{e}; does config.json match model.bpk?")))?;
            LoadedModel::Classifier(c)
        }
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        model,
        weights_file: bpk.to_path_buf(),
        tensor_count: 0,
    })
}
