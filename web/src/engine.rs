//! The annotation engine: uploaded bytes → core's reader → core's tokenizer → core's
//! classifier, batch by batch. No browser APIs here, so it runs (and is tested) natively with
//! the very code the worker runs; the worker only adds message passing around it.

use burn::module::Module;
use burn::prelude::Device;
use burn::store::{DTypePolicy, ModuleRecord};
use burn::tensor::Bytes;
use genecompass_core::batch::{BatchOptions, Padding};
use genecompass_core::checkpoint::{Checkpoint, LoadedModel, TensorMap, from_tensor_map};
use genecompass_core::data::{
    ByteSource, CellSource, DataError, Replay, ValueKind, open_source, value_kind,
};
use genecompass_core::model::{
    GeneCompassConfig, GeneCompassForSequenceClassification, init_classifier,
};
use genecompass_core::tasks::infer::InferOptions;
use genecompass_core::tokenize::{
    GeneMatchOptions, GeneMedians, SpeciesEvidence, TokenDictionary, TokenizeError, match_genes,
};
use std::sync::Arc;
use thiserror::Error;

use crate::annotated::{RowTagged, label_columns};
use crate::protocol::FileReport;
pub use crate::tokenized::{ChunkStream, PlannedFile, TokenizedChunk, TokenizedFile};

/// Why a run stopped. Every message names the file or model and says what to do, because the
/// page shows it as is.
#[derive(Debug, Error)]
pub enum AnnotateError {
    /// The file could not be read (the reader's message names the format problem).
    #[error("{0}")]
    Data(#[from] DataError),
    /// Tokenization failed.
    #[error("{0}")]
    Tokenize(#[from] TokenizeError),
    /// None of the file's genes is in the model's vocabulary.
    #[error(
        "{file}: no known genes: none of its {genes} genes (first: {first}) is in the \
         vocabulary of model `{model}` ({vocab} tokens). Gene names must be HGNC/MGI symbols or \
         Ensembl ids, and the model must cover the file's species"
    )]
    NoKnownGenes {
        /// The file.
        file: String,
        /// Gene columns in the file.
        genes: usize,
        /// The first gene names, comma-separated.
        first: String,
        /// The model.
        model: String,
        /// Its vocabulary size.
        vocab: usize,
    },
    /// The matrix holds normalised or scaled values.
    #[error(
        "{file}: the matrix `{matrix}` holds {kind}, not raw counts. GeneCompass ranks genes by \
         raw counts: export an h5ad whose X (or raw/X, or layers/counts) holds the raw counts"
    )]
    NotCounts {
        /// The file.
        file: String,
        /// Which matrix was read.
        matrix: String,
        /// What the values look like.
        kind: String,
    },
    /// The model files are not a usable classifier.
    #[error("model `{name}`: {message}")]
    Model {
        /// The model.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The token dictionary does not fit the model.
    #[error(
        "model `{name}`: vocabulary mismatch: the token dictionary `{dict}` has {dict_len} tokens \
         but the model's embedding has {vocab_size} rows; use the dictionary the model was \
         trained with"
    )]
    VocabMismatch {
        /// The model.
        name: String,
        /// The dictionary file.
        dict: String,
        /// Tokens in it.
        dict_len: usize,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// The GPU's results could not be read back.
    #[error("{0}")]
    ReadBack(#[from] genecompass_core::model::ReadBackError),
    /// Quality control removed every cell.
    #[error(
        "{file}: no cell passed quality control and the vocabulary filter ({cells_in} cells read)"
    )]
    NoCells {
        /// The file.
        file: String,
        /// Cells read.
        cells_in: usize,
    },
}

/// The raw files of a classifier, as fetched.
#[derive(Debug, Clone, Default)]
pub struct ModelFiles {
    /// `config.json`.
    pub config_json: Vec<u8>,
    /// The weights: `model.safetensors` (official layout) or `model.bpk` (the native burnpack
    /// that the registry's fine-tune jobs write), told apart by [`ModelFiles::weights_name`].
    pub weights: Vec<u8>,
    /// File name of the weights.
    pub weights_name: String,
    /// Token dictionary (JSON `{token: id}` or the official pickle).
    pub token_dict: Vec<u8>,
    /// Its file name.
    pub token_dict_name: String,
    /// Gene medians (JSON or pickle); without them every gene is divided by 1.
    pub medians: Option<Vec<u8>>,
}

/// The weight formats the browser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsKind {
    /// Official Hugging Face layout (`model.safetensors`).
    Safetensors,
    /// The project's native burnpack (`model.bpk`, f32 or f16).
    Burnpack,
}

/// Which reader a weights file needs, from its name; `None` for formats the browser cannot
/// read (`pytorch_model.bin`: the bundle leaves out the pickle reader to stay small).
pub fn weights_kind(file_name: &str) -> Option<WeightsKind> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".safetensors") {
        Some(WeightsKind::Safetensors)
    } else if lower.ends_with(".bpk") {
        Some(WeightsKind::Burnpack)
    } else {
        None
    }
}

/// Why the browser cannot use a weights file, and what to do.
pub fn unreadable_weights(file_name: &str) -> String {
    format!(
        "its weights are `{file_name}`, which the browser cannot read (it reads \
         model.safetensors and the native model.bpk). Convert the model with `genecompass-train \
         convert --checkpoint DIR --output NEW_DIR` (add `--format official` for safetensors), \
         copy its token_dict.json beside it, and import NEW_DIR as a new version"
    )
}

/// A native directory's classifier from its `model.bpk` bytes, as core's `load_native` does
/// from a file (any stored dtype is cast to the model's).
fn load_burnpack(
    name: &str,
    config: GeneCompassConfig,
    files: &ModelFiles,
    device: &Device,
) -> Result<Checkpoint, AnnotateError> {
    let bad = |message: String| AnnotateError::Model {
        name: name.to_string(),
        message,
    };
    let n = config
        .num_labels
        .or(config.label_names().map(|l| l.len()))
        .ok_or_else(|| {
            bad("config.json: a classifier config needs id2label or num_labels".into())
        })?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(files.weights.clone()))
        .map_err(|e| bad(format!("{}: {e}", files.weights_name)))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    let model = init_classifier(&config, n, device)
        .try_load_record(record)
        .map_err(|e| {
            bad(format!(
                "{}: {e}; is it a classifier, and does config.json match it?",
                files.weights_name
            ))
        })?;
    Ok(Checkpoint {
        dir: std::path::PathBuf::from(name),
        config,
        model: LoadedModel::Classifier(model),
        weights_file: std::path::PathBuf::from(&files.weights_name),
        tensor_count: 0,
    })
}

/// A classifier with everything needed to tokenize for it.
pub struct Annotator {
    /// Display name.
    pub name: String,
    /// SHA-256 of the weights (cache key).
    pub key: String,
    /// The model.
    pub model: GeneCompassForSequenceClassification,
    /// Its config.
    pub config: GeneCompassConfig,
    /// Class names, in logit order.
    pub labels: Vec<String>,
    /// Its token dictionary.
    pub vocab: TokenDictionary,
    /// Gene medians (empty when none came with the model).
    pub medians: GeneMedians,
    /// Whether medians came with the model.
    pub has_medians: bool,
}

impl Annotator {
    /// Builds the classifier from its files on `device`.
    pub fn load(
        name: &str,
        key: &str,
        files: &ModelFiles,
        device: &Device,
    ) -> Result<Self, AnnotateError> {
        let bad = |message: String| AnnotateError::Model {
            name: name.to_string(),
            message,
        };
        let text = std::str::from_utf8(&files.config_json)
            .map_err(|_| bad("config.json is not UTF-8 text".into()))?;
        let mut config = GeneCompassConfig::from_json(text)
            .map_err(|e| bad(format!("config.json is not a GeneCompass/BERT config: {e}")))?;
        config
            .validate()
            .map_err(|m| bad(format!("config.json: {m}")))?;
        let ck = match weights_kind(&files.weights_name) {
            Some(WeightsKind::Safetensors) => {
                let map = TensorMap::from_safetensors_bytes(&files.weights_name, &files.weights)
                    .map_err(|e| bad(e.to_string()))?;
                let weights = std::path::Path::new(&files.weights_name);
                from_tensor_map(
                    std::path::Path::new(name),
                    &mut config,
                    &map,
                    weights,
                    device,
                )
                .map_err(|e| bad(e.to_string()))?
            }
            Some(WeightsKind::Burnpack) => load_burnpack(name, config, files, device)?,
            None => return Err(bad(unreadable_weights(&files.weights_name))),
        };
        let config = ck.config.clone();
        let labels = ck.label_names();
        let LoadedModel::Classifier(model) = ck.model else {
            return Err(bad(
                "a pretraining (masked-LM) model, not a cell-type classifier".into(),
            ));
        };
        let vocab = TokenDictionary::from_bytes(&files.token_dict, &files.token_dict_name)?;
        if vocab.len() > config.vocab_size {
            return Err(AnnotateError::VocabMismatch {
                name: name.to_string(),
                dict: files.token_dict_name.clone(),
                dict_len: vocab.len(),
                vocab_size: config.vocab_size,
            });
        }
        let medians = match &files.medians {
            Some(b) => GeneMedians::from_bytes(b, "medians")?,
            None => GeneMedians::default(),
        };
        Ok(Self {
            name: name.to_string(),
            key: key.to_string(),
            model,
            config,
            labels,
            vocab,
            medians,
            has_medians: files.medians.is_some(),
        })
    }

    /// Inference options: the same defaults as `genecompass-train classify`, so the page and
    /// the CLI give the same numbers for the same file and model.
    pub fn options(&self, batch_size: usize) -> InferOptions {
        InferOptions {
            batch: BatchOptions {
                batch_size: batch_size.max(1),
                padding: Padding::Dynamic,
                sort_by_length: true,
                use_species: self
                    .config
                    .genecompass_trained_with_species
                    .unwrap_or(false),
                attention_mask: true,
                truncate_values: self.config.genecompass_truncate_values.unwrap_or(true),
                max_scores_per_head: None,
            },
            ..Default::default()
        }
    }
}

/// An opened file, ready to tokenize.
pub struct OpenedFile {
    pub(crate) source: RowTagged,
    /// What was read.
    pub report: FileReport,
    first_genes: Vec<String>,
    model: String,
}

fn species_how(e: &SpeciesEvidence) -> String {
    match e {
        SpeciesEvidence::Override => "given".into(),
        SpeciesEvidence::EnsemblPrefix { human, mouse } => {
            format!("Ensembl prefixes: {human} ENSG vs {mouse} ENSMUSG")
        }
        SpeciesEvidence::SymbolTables { human, mouse } => {
            format!("symbol tables: {human} HGNC vs {mouse} MGI symbols")
        }
    }
}

/// Opens uploaded bytes (format detected from content) and matches the genes to `annotator`'s
/// vocabulary. Only unreadable files fail here; a readable file that cannot be annotated (no
/// counts, no known gene) still gets its report, and [`OpenedFile::check`] says why.
pub fn open_file(
    file: &str,
    bytes: Vec<u8>,
    annotator: &Annotator,
) -> Result<OpenedFile, AnnotateError> {
    open_file_source(file, Arc::new(bytes), annotator)
}

/// [`open_file`] for a file read on demand (the worker's view of the page's `File`): nothing
/// but the chunk being read is held in memory.
pub fn open_file_source(
    file: &str,
    bytes: Arc<dyn ByteSource>,
    annotator: &Annotator,
) -> Result<OpenedFile, AnnotateError> {
    let sha256 =
        crate::model_store::sha256_hex_source(bytes.as_ref()).map_err(|e| DataError::Io {
            path: file.to_string(),
            source: e,
        })?;
    // Annotation reads the file twice (QC statistics, then tokens): a file whose matrix fits in
    // 64 MiB is decoded once and its second pass replayed from memory.
    let mut source = RowTagged::new(Box::new(Replay::new(open_source(file, bytes)?, 64 << 20)));
    let info = source.info().clone();
    let sample = source.next_chunk(256)?.unwrap_or_default();
    source.rewind()?;
    let kind = value_kind(&sample);
    // Species detection fails when no name is a known gene; that is the "no known genes"
    // case, reported by `check` with the file's own gene names.
    let gm = match match_genes(
        source.genes(),
        &annotator.vocab,
        &GeneMatchOptions::default(),
    ) {
        Ok(gm) => Some(gm),
        Err(TokenizeError::Options(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let r = gm.as_ref().map(|g| &g.report);
    let report = FileReport {
        file: file.to_string(),
        format: info.format.clone(),
        matrix: info.matrix_path.clone(),
        n_cells: info.n_cells,
        n_genes: info.n_genes,
        species: r.map_or("unknown", |r| r.species.name()).into(),
        species_how: r.map_or_else(
            || "no gene name is an Ensembl id or a current HGNC/MGI symbol".into(),
            |r| species_how(&r.species_evidence),
        ),
        identifier: r.map_or_else(|| "unrecognised".into(), |r| r.identifier.clone()),
        mapped_to_ensembl: r.map_or(0, |r| r.mapped_to_ensembl),
        in_vocab: r.map_or(0, |r| r.matched_to_vocabulary),
        vocab_len: annotator.vocab.len(),
        values: kind.describe().into(),
        raw_counts: kind == ValueKind::RawCounts,
        warnings: source.warnings().to_vec(),
        h5ad: info.format.starts_with("h5ad"),
        sha256,
        label_columns: label_columns(source.file_cells()),
    };
    let first_genes = source.genes().names.iter().take(5).cloned().collect();
    Ok(OpenedFile {
        source,
        report,
        first_genes,
        model: annotator.name.clone(),
    })
}

impl OpenedFile {
    /// Refuses files that tokenization could only fail on: normalised or scaled values, or no
    /// gene in the model's vocabulary.
    pub fn check(&self) -> Result<(), AnnotateError> {
        let r = &self.report;
        if !r.raw_counts && r.values != ValueKind::Empty.describe() {
            return Err(AnnotateError::NotCounts {
                file: r.file.clone(),
                matrix: r.matrix.clone(),
                kind: r.values.clone(),
            });
        }
        if r.in_vocab == 0 {
            return Err(AnnotateError::NoKnownGenes {
                file: r.file.clone(),
                genes: r.n_genes,
                first: self.first_genes.join(", "),
                model: self.model.clone(),
                vocab: r.vocab_len,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
