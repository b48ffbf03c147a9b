//! One module per subcommand: its clap arguments and its `run`.

pub mod classify;
mod common;
pub mod convert;
pub mod embed;
pub mod finetune;
pub mod inspect;
pub mod medians;
pub mod pretrain;
pub mod tokenize;
pub mod vocab;
