//! GeneCompass in Rust: the knowledge-informed, cross-species single-cell foundation model.
//!
//! This crate is backend-agnostic: it never picks a device. Binaries (`genecompass-train`,
//! the web worker) choose `Device::flex()`, `Device::cuda(0)` or WebGPU and pass it in.
//!
//! - [`model`]: the model, block by block, mirroring the official checkpoint names.
//! - [`checkpoint`]: import of official model directories (`pytorch_model.bin`,
//!   `model.safetensors`) and the native burnpack format.
//! - [`cells`]: tokenized cells and the official tokenized-dataset format.
//! - [`batch`]: cells → padded tensors (dynamic padding, length bucketing).
//! - [`data`]: single-cell file readers.
//! - [`priors`]: prior-knowledge tables: official loader, builders, compact store.
//! - [`tasks`]: inference, gene embeddings, in-silico perturbation; [`npy`]: `.npy` output.

pub mod batch;
pub mod cells;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod model;
pub mod npy;
pub mod pickle;
pub mod priors;
pub mod tasks;
pub mod tokenize;

pub use error::{CheckpointError, InputError};
