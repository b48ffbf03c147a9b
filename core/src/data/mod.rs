//! Readers for single-cell files (h5ad, 10x, CSV) behind one [`CellSource`] interface.

mod csr;
mod error;
pub mod h5ad;
mod h5direct;
mod h5matrix;
mod h5util;
mod matrix;
mod open;
mod replay;
mod row_tagged;
pub mod source;
pub mod table;
pub mod tenx;
mod text;

pub use error::DataError;
pub use matrix::*;
pub use row_tagged::RowTagged;

pub use csr::{MemCsr, MemSource, ValueKind, value_kind};
#[cfg(not(target_arch = "wasm32"))]
pub use h5ad::annotate::add_obs_columns_to_file;
pub use h5ad::annotate::{
    CONFIDENCE_COLUMN, FILTERED_LABEL, IfExists, LABEL_COLUMN, NewObsColumn, ObsValues,
    add_obs_columns, add_obs_columns_with, prediction_columns,
};
#[cfg(not(target_arch = "wasm32"))]
pub use h5ad::open_h5ad;
pub use h5ad::{H5adSource, MatrixChoice, MatrixSummary, open_h5ad_bytes};
pub use h5matrix::Storage;
pub use open::{OpenOptions, open_bytes, open_source, open_source_with};
#[cfg(not(target_arch = "wasm32"))]
pub use open::{open_path, open_path_with};
pub use replay::Replay;
pub use source::{ByteSource, CachedSource, SourceReader};
#[cfg(not(target_arch = "wasm32"))]
pub use table::open_table;
pub use table::{TableOrientation, open_table_bytes, open_table_reader};
pub use tenx::{GenomeChoice, TenxH5Source, open_tenx_h5_bytes, open_tenx_mtx_bytes};
#[cfg(not(target_arch = "wasm32"))]
pub use tenx::{open_tenx_dir, open_tenx_h5};
