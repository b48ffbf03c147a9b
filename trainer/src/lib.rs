//! Library side of `genecompass-train`: the training jobs, usable from tests.

pub mod train;
