//! Tasks built on the shared encoder: batched inference (embeddings, classification), gene
//! embeddings and in-silico perturbation.

mod forward;
pub mod gene_embed;
pub mod infer;
pub mod perturb;
