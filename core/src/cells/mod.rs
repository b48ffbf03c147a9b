//! Tokenized cells: the unit every reader produces and every model consumes.
//!
//! A cell is kept unpadded (its genes in rank order); padding is a batching decision,
//! made by [`crate::batch`], so that dynamic padding and the official fixed-length layout
//! are both available from the same data.

mod cell;
pub mod hf_dataset;

pub use cell::*;
