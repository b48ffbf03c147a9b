//! Tasks built on the shared encoder: batched inference (embeddings, classification), gene
//! embeddings, in-silico perturbation and what is built on it (GRN inference, fate factors).

pub mod fate;
mod forward;
pub mod gene_embed;
pub mod grn;
pub mod infer;
pub mod pca;
pub mod perturb;
pub mod umap;
