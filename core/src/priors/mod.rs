//! Prior knowledge: the four `[V, K]` tables (promoter, co-expression, gene family, GRN) and the
//! human↔mouse `homologous_index` that `KnowledgeBertEmbeddings` reads (spec §5).
//!
//! - [`official`]: loads the official `prior_knowledge/` pickles exactly as
//!   `genecompass/utils.py:load_prior_embedding` does, from bytes (browser) or a folder (native).
//! - [`pickle_write`]: writes the official on-disk form (`dict[str → numpy.float32 array]`, …).
//! - [`store`]: the project's compact form (one safetensors `[V, K]` per prior, `genes.txt`,
//!   `priors.json` with input hashes, seed and parameters).
//! - [`sgns`]: seeded skip-gram with negative sampling (gene2vec) over gene-pair graphs.
//! - [`graphs`]: gene-pair graphs from HGNC gene groups and TF→target tables, with symbol and
//!   ortholog resolution.
//! - [`coexp`]: co-expressed gene pairs from count matrices (official recipe).
//! - [`promoter`]: a CPU promoter-sequence embedding (k-mer profile + seeded random projection).
//! - [`quality`]: the checks that embeddings reflect their graph (pair vs random cosines).
//!
//! Nothing here picks a device or touches the model: the output is plain `Vec<f32>` tables that
//! checkpoint builders copy into `PriorEmbedding::knowledge`.

pub mod coexp;
pub mod graphs;
pub mod official;
pub mod pickle_write;
pub mod promoter;
pub mod quality;
mod rng;
pub mod sgns;
pub mod store;

pub use crate::model::PriorKind;
pub use rng::SplitMix64;

use thiserror::Error;

/// Errors from loading or building prior knowledge. Messages name the file or field and the fix.
#[derive(Debug, Error)]
pub enum PriorError {
    /// A pickle could not be decoded (corrupt, truncated, Git LFS pointer, unsupported content).
    #[error(transparent)]
    Pickle(#[from] crate::pickle::PickleError),
    /// The token dictionary or homolog file is invalid.
    #[error(transparent)]
    Tokenize(#[from] crate::tokenize::TokenizeError),
    /// Vocabulary genes without a vector in a prior file (the official loader's `KeyError`).
    #[error(
        "{file}: {count} of {total} {species} vocabulary genes have no {prior} vector (first missing: {first}). \
         The official loader needs an entry for every vocabulary gene in all four prior files: add the \
         missing symbols to this file, or use a token dictionary restricted to covered genes"
    )]
    MissingGenes {
        /// The prior file.
        file: String,
        /// The prior kind (checkpoint stem).
        prior: String,
        /// `human` or `mouse`.
        species: String,
        /// Number of vocabulary genes without a vector.
        count: usize,
        /// Vocabulary genes of that species.
        total: usize,
        /// The first missing genes, as `ENSEMBL (symbol)`.
        first: String,
    },
    /// Vocabulary tokens missing from the Ensembl id → symbol dictionary.
    #[error(
        "{file}: {count} vocabulary tokens have no symbol (first missing: {first}). The official loader maps \
         every token through this Ensembl id → symbol dictionary; add them, or pass the dictionary that \
         matches the token dictionary"
    )]
    UnmappedTokens {
        /// The id → symbol file.
        file: String,
        /// How many tokens.
        count: usize,
        /// The first ones.
        first: String,
    },
    /// A vector with another length than the others.
    #[error(
        "{file}: the vector of {symbol:?} has {found} values but {expected} were expected ({why}); \
         every prior vector must have the same length K"
    )]
    VectorLength {
        /// The prior file.
        file: String,
        /// The gene symbol.
        symbol: String,
        /// Its length.
        found: usize,
        /// The expected K.
        expected: usize,
        /// Where the expectation comes from.
        why: String,
    },
    /// Any other invalid content (wrong key type, token neither human nor mouse, bad shape, …).
    #[error("{file}: {message}")]
    Invalid {
        /// The file or field.
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl PriorError {
    /// Shorthand for [`PriorError::Invalid`].
    pub fn invalid(file: impl Into<String>, message: impl Into<String>) -> Self {
        PriorError::Invalid {
            file: file.into(),
            message: message.into(),
        }
    }
}

/// The four knowledge tables and the homolog index, as the official loader builds them.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorTables {
    /// Vocabulary size V (rows of every table).
    pub vocab_size: usize,
    /// Knowledge width K (columns).
    pub width: usize,
    /// `(kind, row-major [V, K] values)`, in [`PriorKind::ALL`] order.
    pub tables: Vec<(PriorKind, Vec<f32>)>,
    /// `homologous_index[mouse_id] = human_id`, identity elsewhere (`[V]`, int64 in checkpoints).
    pub homologous_index: Vec<i64>,
}

impl PriorTables {
    /// The table of one kind.
    pub fn table(&self, kind: PriorKind) -> Option<&[f32]> {
        self.tables
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t.as_slice())
    }
}

/// A gene × K matrix with its row names (one prior, before or after vocabulary assembly).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneVectors {
    /// Row names (Ensembl ids or vocabulary tokens).
    pub genes: Vec<String>,
    /// Columns K.
    pub width: usize,
    /// Row-major `[genes.len(), width]` values.
    pub data: Vec<f32>,
}

impl GeneVectors {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }
}

/// Lowercase hex SHA-256 of bytes (recorded for every input of a build).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += (*x as f64) * (*y as f64);
        na += (*x as f64) * (*x as f64);
        nb += (*y as f64) * (*y as f64);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (d / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// Text of a file that may be gzip-compressed (detected by its magic bytes).
pub fn text_maybe_gz(bytes: &[u8], name: &str) -> Result<String, PriorError> {
    use std::io::Read;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut s)
            .map_err(|e| PriorError::invalid(name, format!("cannot decompress gzip text: {e}")))?;
        Ok(s)
    } else {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| PriorError::invalid(name, "not UTF-8 text (nor gzip-compressed text)"))
    }
}
