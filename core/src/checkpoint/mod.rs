//! Model directories: official GeneCompass checkpoints and the project's native format.
//!
//! An official directory holds `config.json` and `pytorch_model.bin` and/or
//! `model.safetensors` (either an MLM `BertForMaskedLM` or a fine-tuned
//! `BertForSequenceClassification`). A native directory holds `config.json`,
//! `genecompass.json` and `model.bpk` (burnpack).

pub mod export;
pub mod import;
pub mod loader;
mod native;
pub mod tensors;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use export::export_official_safetensors;
pub use import::EmbWarmup;
pub use native::{NativeMeta, save_native};
pub use tensors::{StoredDtype, StoredTensor, TensorMap};

use crate::error::CheckpointError;
use crate::model::{
    GeneCompassConfig, GeneCompassForMaskedLm, GeneCompassForSequenceClassification,
};
use loader::Loader;

/// Which weights file to read when a directory has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsFormat {
    /// Native `model.bpk`, else `model.safetensors`, else `pytorch_model.bin`.
    #[default]
    Auto,
    /// `model.safetensors`.
    Safetensors,
    /// `pytorch_model.bin`.
    Pytorch,
    /// `model.bpk`.
    Native,
}

/// What kind of model a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// `BertForMaskedLM` (pretraining heads).
    MaskedLm,
    /// `BertForSequenceClassification` (cell-type annotation).
    Classifier,
}

/// A loaded model of either kind.
// One value per loaded checkpoint, never stored in bulk: boxing would only add a
// dereference at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum LoadedModel {
    /// Pretraining model and its warm-up buffers.
    MaskedLm(GeneCompassForMaskedLm, EmbWarmup),
    /// Classifier.
    Classifier(GeneCompassForSequenceClassification),
}

/// A model directory, loaded.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory.
    pub dir: PathBuf,
    /// Its config (with `knowledge_size` and labels filled in).
    pub config: GeneCompassConfig,
    /// The model.
    pub model: LoadedModel,
    /// The weights file read.
    pub weights_file: PathBuf,
    /// Number of tensors in the file.
    pub tensor_count: usize,
}

impl Checkpoint {
    /// The model kind.
    pub fn kind(&self) -> ModelKind {
        match self.model {
            LoadedModel::MaskedLm(..) => ModelKind::MaskedLm,
            LoadedModel::Classifier(..) => ModelKind::Classifier,
        }
    }

    /// The shared encoder.
    pub fn bert(&self) -> &crate::model::BertModel {
        match &self.model {
            LoadedModel::MaskedLm(m, _) => &m.bert,
            LoadedModel::Classifier(c) => &c.bert,
        }
    }

    /// Class names of a classifier (`LABEL_i` when the config names none).
    pub fn label_names(&self) -> Vec<String> {
        match &self.model {
            LoadedModel::Classifier(c) => self
                .config
                .label_names()
                .filter(|n| n.len() == c.num_labels())
                .unwrap_or_else(|| (0..c.num_labels()).map(|i| format!("LABEL_{i}")).collect()),
            LoadedModel::MaskedLm(..) => Vec::new(),
        }
    }
}

/// Reads and validates `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<GeneCompassConfig, CheckpointError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let config = GeneCompassConfig::from_json(&text).map_err(|e| CheckpointError::Config {
        path: path.display().to_string(),
        message: format!("not a GeneCompass/BERT config: {e}"),
    })?;
    config
        .validate()
        .map_err(|message| CheckpointError::Config {
            path: path.display().to_string(),
            message,
        })?;
    Ok(config)
}

fn pick_weights(
    dir: &Path,
    format: WeightsFormat,
) -> Result<(PathBuf, WeightsFormat), CheckpointError> {
    let candidates = [
        (WeightsFormat::Native, "model.bpk"),
        (WeightsFormat::Safetensors, "model.safetensors"),
        (WeightsFormat::Pytorch, "pytorch_model.bin"),
    ];
    for (f, name) in candidates {
        if (format == WeightsFormat::Auto || format == f) && dir.join(name).is_file() {
            return Ok((dir.join(name), f));
        }
    }
    Err(CheckpointError::NoWeights {
        dir: dir.display().to_string(),
    })
}

/// Reads the raw tensors of an official weights file.
pub fn read_tensors(path: &Path, format: WeightsFormat) -> Result<TensorMap, CheckpointError> {
    match format {
        WeightsFormat::Safetensors => TensorMap::read_safetensors(path),
        #[cfg(feature = "pytorch")]
        WeightsFormat::Pytorch => TensorMap::read_pytorch(path),
        #[cfg(not(feature = "pytorch"))]
        WeightsFormat::Pytorch => Err(CheckpointError::Corrupt {
            path: path.display().to_string(),
            message: "this build cannot read pytorch_model.bin; convert it with \
                      `genecompass-train convert` first"
                .into(),
        }),
        WeightsFormat::Native | WeightsFormat::Auto => {
            unreachable!("native files are not tensor maps")
        }
    }
}

/// Loads a model directory (official or native) onto `device`.
pub fn load_checkpoint(
    dir: &Path,
    format: WeightsFormat,
    device: &Device,
) -> Result<Checkpoint, CheckpointError> {
    let mut config = read_config(dir)?;
    let (weights_file, format) = pick_weights(dir, format)?;
    if format == WeightsFormat::Native {
        return native::load_native(dir, config, &weights_file, device);
    }
    let map = read_tensors(&weights_file, format)?;
    from_tensor_map(dir, &mut config, &map, &weights_file, device)
}

/// Builds a model from already-read tensors (also the browser's entry point).
pub fn from_tensor_map(
    dir: &Path,
    config: &mut GeneCompassConfig,
    map: &TensorMap,
    weights_file: &Path,
    device: &Device,
) -> Result<Checkpoint, CheckpointError> {
    let mut loader = Loader::new(map, device);
    if let Some(k) = import::knowledge_width(&loader, "bert.", config) {
        if let Some(declared) = config.knowledge_size.filter(|&d| d != k) {
            return Err(CheckpointError::Config {
                path: map.path.clone(),
                message: format!(
                    "config.json says knowledge_size {declared} but the knowledge tables are {k} wide"
                ),
            });
        }
        config.knowledge_size = Some(k);
    }
    let is_classifier = loader.has("classifier.weight");
    let model = if is_classifier {
        let rows = loader
            .map_shape("classifier.weight")
            .map(|s| s[0])
            .unwrap_or(0);
        let num_labels = config.label_names().map(|n| n.len()).unwrap_or(rows);
        config.num_labels = Some(num_labels);
        let clf = import::load_classifier(&mut loader, config, num_labels)?;
        loader.finish("BertForSequenceClassification")?;
        LoadedModel::Classifier(clf)
    } else {
        let (mlm, warmup) = import::load_mlm(&mut loader, config)?;
        loader.finish("BertForMaskedLM")?;
        LoadedModel::MaskedLm(mlm, warmup)
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config: config.clone(),
        model,
        weights_file: weights_file.to_path_buf(),
        tensor_count: map.tensors.len(),
    })
}
