//! Errors of the model and checkpoint layers. Each message names the file, key or field and
//! says what to do.

use thiserror::Error;

/// Errors from reading a model directory or building a model from it.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// OS-level failure reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory has no weights file we know.
    #[error(
        "{dir}: no weights found (looked for model.safetensors, pytorch_model.bin, model.bpk). \
         Point --checkpoint at a GeneCompass model directory (the folder holding config.json and the weights)"
    )]
    NoWeights {
        /// The directory.
        dir: String,
    },
    /// `config.json` is missing or malformed.
    #[error("{path}: {message}")]
    Config {
        /// The config file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The weights file cannot be parsed (corrupt, truncated, or not a checkpoint).
    #[error(
        "{path}: cannot read weights: {message}. The file is corrupt or truncated; download it again"
    )]
    Corrupt {
        /// The weights file.
        path: String,
        /// The parser's complaint.
        message: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{path}: missing tensor `{key}`{hint}")]
    MissingTensor {
        /// The weights file.
        path: String,
        /// The checkpoint key.
        key: String,
        /// Similar keys found, if any.
        hint: String,
    },
    /// A tensor has another shape than the config implies.
    #[error(
        "{path}: tensor `{key}` has shape {found:?}, but config.json implies {expected:?}; \
         the config does not match these weights ({why})"
    )]
    ShapeMismatch {
        /// The weights file.
        path: String,
        /// The checkpoint key.
        key: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
        /// Which config field determines the expected shape.
        why: String,
    },
    /// A tensor has a dtype we cannot convert.
    #[error("{path}: tensor `{key}` has dtype {dtype}, expected a float or integer tensor")]
    BadDtype {
        /// The weights file.
        path: String,
        /// The checkpoint key.
        key: String,
        /// The stored dtype.
        dtype: String,
    },
    /// The file holds tensors this model does not use: refusing a silent partial load.
    #[error(
        "{path}: {count} tensor(s) in the file are not used by a {model} built from config.json: {keys}. \
         Is config.json the one that belongs to these weights (e.g. a use_* flag switched off)?"
    )]
    UnusedTensors {
        /// The weights file.
        path: String,
        /// Which model was built.
        model: String,
        /// How many.
        count: usize,
        /// The first few keys.
        keys: String,
    },
    /// Two tensors that must be equal (tied) differ.
    #[error("{path}: `{a}` and `{b}` must be tied (equal) but differ by up to {max_diff}")]
    TiedMismatch {
        /// The weights file.
        path: String,
        /// First key.
        a: String,
        /// Second key.
        b: String,
        /// Largest absolute difference.
        max_diff: f32,
    },
    /// A tensor's values are invalid (e.g. an index out of range).
    #[error("{path}: tensor `{key}`: {message}")]
    BadValue {
        /// The weights file.
        path: String,
        /// The checkpoint key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The native record could not be written or read.
    #[error("{path}: {message}")]
    Record {
        /// The record file.
        path: String,
        /// What burn reported.
        message: String,
    },
}

/// Errors from model inputs (cells, batches) that do not fit the model.
#[derive(Debug, Error)]
pub enum InputError {
    /// A token id is outside the vocabulary.
    #[error(
        "{source_name}: cell {cell} has token id {id}, but the model's vocabulary has {vocab} tokens; \
         the cells were tokenized with another token dictionary than this checkpoint's"
    )]
    TokenOutOfRange {
        /// Where the cells came from.
        source_name: String,
        /// Cell index.
        cell: usize,
        /// Offending id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A cell is longer than the model's position table.
    #[error(
        "{source_name}: cell {cell} has {len} genes but the model takes at most {max}; \
         tokenize with --max-genes {max} (the official truncation is 2048)"
    )]
    TooLong {
        /// Where the cells came from.
        source_name: String,
        /// Cell index.
        cell: usize,
        /// Its length.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A cell's species has no row in the model's CLS table.
    #[error(
        "{source_name}: cell {cell} is of species code {code}, but the model knows only {known}; \
         add the species with `genecompass-train extend-vocab --add-species NAME` or use a \
         checkpoint extended that way"
    )]
    UnknownSpecies {
        /// Where the cells came from.
        source_name: String,
        /// Cell index.
        cell: usize,
        /// The species code.
        code: u8,
        /// The model's species, `0 human, 1 mouse, ...`.
        known: String,
    },
    /// The input file is not usable.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
}
