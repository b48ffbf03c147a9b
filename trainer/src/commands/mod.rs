//! One module per subcommand: its clap arguments and its `run`.

pub mod classify;
mod classify_h5ad;
mod common;
pub mod convert;
pub mod embed;
pub mod embed_genes;
pub mod extend_vocab;
pub mod fate;
pub mod finetune;
mod gene_args;
pub mod grn;
mod input_args;
pub mod inspect;
pub mod medians;
pub mod perturb;
pub mod pretrain;
pub mod priors;
mod species_arg;
pub mod tokenize;
mod tokenize_report;
pub mod vocab;
