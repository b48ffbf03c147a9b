//! Arguments shared by the inference commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use genecompass_core::batch::{BatchOptions, Padding};
use genecompass_core::tasks::infer::InferOptions;

use crate::device::Backend;

/// Padding policy on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PaddingArg {
    /// Pad each batch to its longest cell (fast; exact when the attention mask is on).
    #[default]
    Dynamic,
    /// Pad to the input's stored row length (2048 in official datasets): the official layout.
    Stored,
}

/// Where and how inference runs.
#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// Model directory: an official GeneCompass checkpoint (config.json + pytorch_model.bin or
    /// model.safetensors) or a native one (model.bpk).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Tokenized cells: a safetensors file (input_ids [N, L] int64, values [N, L] f32,
    /// species [N, 1], optional attention_mask) or an official tokenized-dataset folder.
    /// `classify` also takes a single-cell file (h5ad, 10x .h5 or matrix folder, CSV/TSV) and
    /// tokenizes it with the classifier's vocabulary and medians.
    #[arg(long, value_name = "CELLS")]
    pub input: PathBuf,
    /// Output safetensors file.
    #[arg(long, value_name = "OUT.safetensors")]
    pub output: PathBuf,
    /// Attend to padding, like the official inference scripts (implies --padding stored).
    #[arg(long)]
    pub no_attention_mask: bool,
    /// Ignore the cells' species: human CLS row and no homolog remap.
    #[arg(long)]
    pub no_species: bool,
    /// Cells per batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Padding policy.
    #[arg(long, value_enum, default_value_t = PaddingArg::Dynamic)]
    pub padding: PaddingArg,
    /// With dynamic padding, round each batch's length up to a multiple of N (results are
    /// identical). GPUs compile and autotune kernels per distinct shape, so fewer shapes run
    /// faster there. Default: 64 on --backend cuda/wgpu, 1 (no rounding) on the CPU.
    #[arg(long, value_name = "N")]
    pub pad_multiple: Option<usize>,
    /// Use the unfolded embedding (the training path) instead of the folded tables.
    #[arg(long)]
    pub unfolded: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// GPU index for --backend cuda.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
}

impl InferArgs {
    /// The inference options these arguments describe, for a model of `max_positions`.
    pub fn options(
        &self,
        species_default: bool,
        truncate_values: bool,
        max_positions: usize,
    ) -> InferOptions {
        let multiple = genecompass_trainer::train::pad_multiple(
            self.backend == Backend::Cpu,
            self.pad_multiple,
        );
        let padding = if self.no_attention_mask || self.padding == PaddingArg::Stored {
            Padding::Stored
        } else if multiple > 1 {
            Padding::Multiple {
                of: multiple,
                max: max_positions,
            }
        } else {
            Padding::Dynamic
        };
        InferOptions {
            batch: BatchOptions {
                batch_size: self.batch_size.max(1),
                padding,
                sort_by_length: true,
                use_species: species_default && !self.no_species,
                attention_mask: !self.no_attention_mask,
                truncate_values,
                max_scores_per_head: None,
            },
            alpha: 1.0,
            folded: !self.unfolded,
            keep_hidden_states: false,
            mean_embedding: true,
        }
    }
}
