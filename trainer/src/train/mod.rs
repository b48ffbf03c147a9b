//! Training jobs: cell-type fine-tuning and masked-LM pretraining, resumable and reproducible.
//!
//! Every random choice (split, shuffles, masking, dropout) is derived from the run seed and the
//! step or epoch ([`rng`]), and a checkpoint stores the weights, the optimiser state and the
//! data position ([`run_dir`]), so `--resume` reproduces the uninterrupted loss curve.

pub mod alloc;
pub mod baseline;
pub mod data;
pub mod finetune;
pub mod finetune_data;
pub mod masking;
pub mod metrics;
pub mod model_setup;
pub mod optim;
pub mod pretrain;
pub mod priors_setup;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run_dir;
pub mod split;

/// Seeds the device's generator and this thread's host dropout masks
/// ([`genecompass_core::model::dropout`]) together.
pub(crate) fn seed_all(device: &burn::prelude::Device, seed: u64) {
    device.seed(seed);
    genecompass_core::model::dropout::seed(seed);
}

/// The batch-length rounding a job asked for, else 64 on a GPU backend (each new shape costs
/// a kernel compile and autotune there) and 1 on the CPU.
pub fn pad_multiple(on_cpu: bool, asked: Option<usize>) -> usize {
    asked.unwrap_or(if on_cpu { 1 } else { 64 }).max(1)
}
