//! Library side of `genecompass-train`: the training jobs, usable from tests.

pub mod cells_io;
pub mod train;
