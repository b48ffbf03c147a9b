//! The official GeneCompass tokenized datasets: Hugging Face `datasets` folders.
//!
//! The official pipeline publishes its pretraining sets (50K / 500K / 5M cells) and the
//! cell-type annotation sets as `Dataset.save_to_disk` folders: Arrow IPC *stream* files
//! listed in `state.json`, plus the feature schema in `dataset_info.json`. Reading them lets
//! users train on the published data directly; writing them lets the official Python code
//! (`datasets.load_from_disk`) load what this crate tokenized.

use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type};
use arrow_array::types::{Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Int16Array, Int32Array, ListArray};
use arrow_array::{OffsetSizeTrait, RecordBatch, StringArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use super::{CellSet, Species, TokenizedCell};

/// File name of the single data shard [`write_hf_dataset`] writes (as `save_to_disk` names it).
pub const DATA_FILE: &str = "data-00000-of-00001.arrow";
/// Rows per record batch when writing; the `datasets` default `writer_batch_size`.
pub(super) const BATCH_ROWS: usize = 1000;
/// Columns of the tokenized layout; a label column may not reuse these names.
pub(super) const RESERVED: [&str; 4] = ["input_ids", "values", "length", "species"];

/// Why a tokenized dataset could not be read or written. Messages name the file, the column
/// and what to do, since they usually reach a user who pointed the tool at the wrong folder.
#[derive(Debug, thiserror::Error)]
pub enum HfDatasetError {
    /// A file or folder could not be read or written.
    #[error("cannot access `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// `state.json` or `dataset_info.json` is not valid JSON.
    #[error("`{path}` is not valid JSON ({source}): re-save it with `Dataset.save_to_disk`")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The folder has no data file to read.
    #[error(
        "`{path}` lists no data files and holds no `data-*.arrow`: not a `save_to_disk` folder"
    )]
    NoDataFiles { path: PathBuf },
    /// The Arrow stream is corrupt or cut short.
    #[error(
        "`{name}` is not a readable Arrow IPC stream ({source}): corrupt or truncated; copy it again"
    )]
    Arrow { name: String, source: ArrowError },
    /// The stream stops at a message boundary, without its end-of-stream marker.
    #[error(
        "`{name}` ends without the Arrow end-of-stream marker: the file is truncated; copy it again"
    )]
    Truncated { name: String },
    /// A required column is absent.
    #[error(
        "`{name}` has no column `{column}` (columns: {available}): not a GeneCompass tokenized dataset"
    )]
    MissingColumn {
        name: String,
        column: String,
        available: String,
    },
    /// The requested label column is absent.
    #[error("`{name}` has no label column `{column}`; pass one of its columns: {available}")]
    MissingLabelColumn {
        name: String,
        column: String,
        available: String,
    },
    /// A column has an unexpected Arrow type.
    #[error(
        "column `{column}` of `{name}` has type {found}, expected {expected}: {}",
        type_advice(.column)
    )]
    ColumnType {
        name: String,
        column: String,
        found: String,
        expected: &'static str,
    },
    /// A row breaks the layout (unequal lists, bad padding, bad species code, ...).
    #[error("row {row} of `{name}`: {problem}")]
    BadRow {
        name: String,
        row: usize,
        problem: String,
    },
    /// A cell cannot be stored in the official layout.
    #[error("cannot write cell {index}: {problem}")]
    BadCell { index: usize, problem: String },
    /// The label column name collides with a tokenized column.
    #[error(
        "label column `{column}` collides with a tokenized column; choose another name, e.g. `label`"
    )]
    ReservedLabelColumn { column: String },
    /// The output path is taken by something that is not a dataset folder.
    #[error("`{path}` exists and is not a dataset folder: choose another output path or remove it")]
    TargetExists { path: PathBuf },
    /// Encoding the Arrow stream failed.
    #[error("cannot write the Arrow stream `{name}`: {source}")]
    ArrowWrite { name: String, source: ArrowError },
}

/// The fix for a wrongly typed column: a tokenized column means the wrong dataset.
pub(super) fn type_advice(column: &str) -> &'static str {
    match RESERVED.contains(&column) {
        true => "this is not a GeneCompass tokenized dataset",
        false => "choose another label column",
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HfDatasetError + '_ {
    move |source| HfDatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole `save_to_disk` folder, data files in `state.json` order.
///
/// `label_column`: `None` reads no labels; `Some(col)` must name a string column or an
mod read;
mod write;

pub use read::{hf_dataset_columns, read_arrow_stream, read_hf_dataset};
pub use write::{write_arrow_stream, write_hf_dataset};
#[allow(unused_imports)]
use {read::*, write::*};

#[cfg(test)]
#[path = "../hf_dataset_tests.rs"]
mod tests;
