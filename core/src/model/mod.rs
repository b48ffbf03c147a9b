//! The GeneCompass model, backend-agnostic (burn 0.22 runtime devices).
//!
//! One file per reference block: [`embeddings`] (knowledge embedding), [`encoder`]
//! (post-LN BERT layers), [`bert`] (species CLS + pooler), [`heads`] (MLM heads and loss),
//! [`classifier`], [`folded`] (the inference-only folded embedding) and [`host_attention`]
//! and [`host_encoder`] (the CPU kernels used for inference on flex), and
//! [`host_attention_train`] with its burn operation `attention_op` (training on flex).

#[cfg(feature = "train")]
pub mod attention_op;
pub mod bert;
pub mod classifier;
pub mod config;
pub mod dropout;
pub mod embeddings;
pub mod encoder;
pub mod extend;
pub mod folded;
pub mod heads;
pub mod host_attention;
pub mod host_attention_train;
pub mod host_encoder;
mod init;
pub mod input;

pub use bert::{BertModel, BertOutput, BertPooler};
pub use classifier::{GeneCompassForSequenceClassification, init_classifier};
pub use config::{GeneCompassConfig, HiddenAct, PriorKind};
pub use embeddings::KnowledgeBertEmbeddings;
pub use folded::FoldedEmbedding;
pub use heads::{GeneCompassForMaskedLm, MlmLoss, MlmOutput, MlmTargets, init_mlm};
pub use input::{ForwardOptions, ModelInput, OutputRows};

/// Reading a tensor back from its device failed (a lost WebGPU device, a failed kernel).
#[derive(Debug, thiserror::Error)]
#[error(
    "reading results back from the compute device failed: {0}. On WebGPU, reload the page or \
     choose the CPU backend"
)]
pub struct ReadBackError(pub String);

impl ReadBackError {
    /// Wraps a backend error.
    pub fn new(e: impl std::fmt::Debug) -> Self {
        Self(format!("{e:?}"))
    }
}
