//! Tasks built on the shared encoder: batched inference (embeddings, classification).

pub mod infer;
