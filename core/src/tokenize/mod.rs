//! Tokenization of single-cell count matrices exactly as GeneCompass does it
//! (`preprocess/preprocess.py`, spec §3), with each official step a documented option.
//!
//! - [`vocab`]: the token dictionary, the homolog map.
//! - [`medians`]: per-gene median dictionaries, loaded or computed in a streaming pass.
//! - [`gene_tables`]: HGNC / MGI / orthology tables embedded in the crate (`core/assets/`).
//! - [`orthologs`]: the human↔mouse ortholog pairs and their one-to-one lookups.
//! - [`genes`]: gene identity (Ensembl id vs symbol, species) and matching to the vocabulary.
//! - [`qc`], [`transform`], [`pipeline`]: the official steps, from counts to [`crate::cells::CellSet`].

pub mod assets_build;
mod fast_hash;
pub mod gene_tables;
pub mod genes;
mod key_index;
pub mod medians;
pub mod orthologs;
mod pass_one;
pub mod pipeline;
pub mod qc;
pub mod rank_table;
pub mod stream;
pub mod transform;
pub mod vocab;

pub use gene_tables::{GeneRecord, GeneTable, NameHit, OrthologPair, Orthologs, resolve_gene_name};
pub use genes::{
    EmbeddedGenes, GeneMatch, GeneMatchOptions, GeneMatchReport, GeneVocabulary, SpeciesEvidence,
    match_genes,
};
pub use medians::{GeneMedians, MedianAccumulator, MedianMode};
pub use pipeline::{MedianBuilder, TokenizeOptions, TokenizeSummary, compute_medians};
pub use qc::{CellQcOptions, GeneCountFilter};
pub use stream::{
    TokenSlots, TokenizePlan, TokenizeStream, plan_tokenize, plan_tokenize_matched, tokenize,
    tokenize_each,
};
pub use transform::TieBreak;
pub use vocab::{HomologMap, TokenDictionary};

use thiserror::Error;

/// Errors from tokenization and its resources. Messages name the file or field and the fix.
#[derive(Debug, Error)]
pub enum TokenizeError {
    /// A pickle could not be read (includes Git LFS pointers).
    #[error(transparent)]
    Pickle(#[from] crate::pickle::PickleError),
    /// The cell source failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A JSON resource is malformed.
    #[error("{file}: invalid JSON: {message}")]
    Json {
        /// The file.
        file: String,
        /// Parser message.
        message: String,
    },
    /// A resource (token dict, median dict, table) has invalid content.
    #[error("{file}: {message}")]
    Invalid {
        /// The file or resource.
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The matrix does not hold raw counts.
    #[error("{0}")]
    NotCounts(String),
    /// An option or input combination cannot be honoured.
    #[error("{0}")]
    Options(String),
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
}

pub(crate) fn read_path(path: &std::path::Path) -> Result<Vec<u8>, TokenizeError> {
    std::fs::read(path).map_err(|error| TokenizeError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// A seeded stream of numbers below `n` (a 64-bit LCG's high bits) for the randomised tests.
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut s = seed;
    move |n: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % n
    }
}
