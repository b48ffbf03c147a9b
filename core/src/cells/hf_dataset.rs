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
const BATCH_ROWS: usize = 1000;
/// Columns of the tokenized layout; a label column may not reuse these names.
const RESERVED: [&str; 4] = ["input_ids", "values", "length", "species"];

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
fn type_advice(column: &str) -> &'static str {
    match RESERVED.contains(&column) {
        true => "this is not a GeneCompass tokenized dataset",
        false => "choose another label column",
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HfDatasetError + '_ {
    move |source| HfDatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole `save_to_disk` folder, data files in `state.json` order.
///
/// `label_column`: `None` reads no labels; `Some(col)` must name a string column or an
/// integer (ClassLabel) column whose names come from `dataset_info.json`.
pub fn read_hf_dataset(dir: &Path, label_column: Option<&str>) -> Result<CellSet, HfDatasetError> {
    let info = read_json(&dir.join("dataset_info.json"))?;
    let names = label_column.and_then(|col| class_names_in(info.as_ref()?.get("features"), col));
    let (mut cells, mut row_len) = (Vec::new(), RowLen::NoRows);
    for path in data_files(dir)? {
        let file = File::open(&path).map_err(io_err(&path))?;
        let name = path.display().to_string();
        row_len = row_len.merge(read_stream(
            file,
            &name,
            label_column,
            names.as_deref(),
            &mut cells,
        )?);
    }
    Ok(CellSet {
        cells,
        padded_len: row_len.padded_len(),
    })
}

/// Reads one Arrow IPC stream (one `data-*.arrow` file) from bytes, so it also runs where
/// there is no filesystem (WASM). `name` only labels error messages. `class_names` maps an
/// integer label column; when `None`, the names in the stream's `huggingface` metadata are
/// used, else the integer itself becomes the label.
pub fn read_arrow_stream<R: Read>(
    reader: R,
    name: &str,
    label_column: Option<&str>,
    class_names: Option<&[String]>,
) -> Result<CellSet, HfDatasetError> {
    let mut cells = Vec::new();
    let row_len = read_stream(reader, name, label_column, class_names, &mut cells)?;
    Ok(CellSet {
        cells,
        padded_len: row_len.padded_len(),
    })
}

/// Column names of a dataset folder (from its first data file), to offer label choices.
pub fn hf_dataset_columns(dir: &Path) -> Result<Vec<String>, HfDatasetError> {
    let path = &data_files(dir)?[0];
    let file = BufReader::new(File::open(path).map_err(io_err(path))?);
    let name = path.display().to_string();
    let stream = StreamReader::try_new(file, None)
        .map_err(|source| HfDatasetError::Arrow { name, source })?;
    Ok(stream
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// Parses a JSON file; `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Value>, HfDatasetError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| HfDatasetError::Json {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The data files of a dataset folder: `state.json` order, else `data-*.arrow` by name.
fn data_files(dir: &Path) -> Result<Vec<PathBuf>, HfDatasetError> {
    let files: Vec<PathBuf> = if let Some(state) = read_json(&dir.join("state.json"))? {
        let listed = state
            .get("_data_files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        listed
            .filter_map(|f| Some(dir.join(f.get("filename")?.as_str()?)))
            .collect()
    } else {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let name = entry
                .map_err(io_err(dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.starts_with("data-") && name.ends_with(".arrow") {
                found.push(dir.join(name));
            }
        }
        found.sort();
        tracing::warn!(
            "no state.json in `{}`: reading its data-*.arrow files in name order",
            dir.display()
        );
        found
    };
    match files.is_empty() {
        true => Err(HfDatasetError::NoDataFiles {
            path: dir.to_path_buf(),
        }),
        false => Ok(files),
    }
}

/// `features.<column>.names` of a `datasets` features object (a ClassLabel's names).
fn class_names_in(features: Option<&Value>, column: &str) -> Option<Vec<String>> {
    let names = features?.get(column)?.get("names")?.as_array()?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Row lengths seen so far, to derive [`CellSet::padded_len`] across batches and files.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RowLen {
    NoRows,
    Uniform(usize),
    Mixed,
}

impl RowLen {
    fn merge(self, other: RowLen) -> RowLen {
        match (self, other) {
            (RowLen::NoRows, x) | (x, RowLen::NoRows) => x,
            (RowLen::Uniform(a), RowLen::Uniform(b)) if a == b => self,
            _ => RowLen::Mixed,
        }
    }

    fn padded_len(self) -> Option<usize> {
        match self {
            RowLen::Uniform(n) => Some(n),
            _ => None,
        }
    }
}

/// Notes whether the reader hit end-of-file: a complete stream stops at its end-of-stream
/// marker, so reaching EOF means the file was cut at a message boundary.
struct EofTracker<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> Read for EofTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hit_eof |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// What error messages need to know about where decoding is.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    name: &'a str,
    class_names: Option<&'a [String]>,
    first_row: usize,
}

impl Ctx<'_> {
    fn bad_row(&self, r: usize, problem: String) -> HfDatasetError {
        HfDatasetError::BadRow {
            name: self.name.to_owned(),
            row: self.first_row + r,
            problem,
        }
    }

    fn bad_type(&self, column: &str, found: &DataType, expected: &'static str) -> HfDatasetError {
        let (name, column, found) = (self.name.to_owned(), column.to_owned(), found.to_string());
        HfDatasetError::ColumnType {
            name,
            column,
            found,
            expected,
        }
    }
}

const IDS_TYPE: &str = "list<int32> (or list<int64>)";
const VALUES_TYPE: &str = "list<float32> (or list<float64>)";
const SCALAR_TYPE: &str = "list<int16> of one element, or an integer";
const LABEL_TYPE: &str = "a string column or an integer (ClassLabel) column";

fn list_child(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

fn is_int_list(dt: &DataType) -> bool {
    list_child(dt).is_some_and(DataType::is_integer)
}

fn is_float_list(dt: &DataType) -> bool {
    list_child(dt).is_some_and(DataType::is_floating)
}

fn is_scalar_type(dt: &DataType) -> bool {
    dt.is_integer() || is_int_list(dt)
}

fn is_label_type(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(**v, DataType::Utf8 | DataType::LargeUtf8),
        dt => dt.is_integer(),
    }
}

/// Column positions of the tokenized layout in a stream's schema.
struct Columns {
    ids: usize,
    values: usize,
    length: Option<usize>,
    species: Option<usize>,
    label: Option<(usize, String)>,
}

impl Columns {
    /// Finds the columns and checks their types up front, so even an empty file is validated.
    fn locate(schema: &Schema, ctx: Ctx, label: Option<&str>) -> Result<Columns, HfDatasetError> {
        let fields = schema.fields().iter();
        let available = fields
            .map(|f| format!("`{}`", f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let (name, available) = (ctx.name.to_owned(), available);
        let typed = |column: &str, ok: fn(&DataType) -> bool, expected| {
            let Ok(i) = schema.index_of(column) else {
                return Ok(None);
            };
            let dt = schema.field(i).data_type();
            if ok(dt) {
                Ok(Some(i))
            } else {
                Err(ctx.bad_type(column, dt, expected))
            }
        };
        let (n, a, c) = (name.clone(), available.clone(), |s: &str| s.to_owned());
        let missing = |col: &str| HfDatasetError::MissingColumn {
            name: n.clone(),
            column: c(col),
            available: a.clone(),
        };
        let label = match label {
            None => None,
            Some(col) => match typed(col, is_label_type, LABEL_TYPE)? {
                Some(i) => Some((i, col.to_owned())),
                None => {
                    return Err(HfDatasetError::MissingLabelColumn {
                        name,
                        column: c(col),
                        available,
                    });
                }
            },
        };
        Ok(Columns {
            ids: typed("input_ids", is_int_list, IDS_TYPE)?.ok_or_else(|| missing("input_ids"))?,
            values: typed("values", is_float_list, VALUES_TYPE)?
                .ok_or_else(|| missing("values"))?,
            length: typed("length", is_scalar_type, SCALAR_TYPE)?,
            species: typed("species", is_scalar_type, SCALAR_TYPE)?,
            label,
        })
    }
}

/// Reads one stream, appending its cells; returns the row-length summary.
fn read_stream<R: Read>(
    reader: R,
    name: &str,
    label_column: Option<&str>,
    class_names: Option<&[String]>,
    cells: &mut Vec<TokenizedCell>,
) -> Result<RowLen, HfDatasetError> {
    let arrow_err = |source| HfDatasetError::Arrow {
        name: name.to_owned(),
        source,
    };
    let mut tracker = EofTracker {
        inner: BufReader::new(reader),
        hit_eof: false,
    };
    let mut stream = StreamReader::try_new(&mut tracker, None).map_err(arrow_err)?;
    let schema = stream.schema();
    let from_metadata = match (class_names, label_column) {
        (None, Some(col)) => class_names_from_metadata(&schema, col),
        _ => None,
    };
    let class_names = class_names.or(from_metadata.as_deref());
    let cols = Columns::locate(
        &schema,
        Ctx {
            name,
            class_names,
            first_row: 0,
        },
        label_column,
    )?;
    if cols.species.is_none() {
        tracing::warn!("`{name}` has no `species` column: every cell is read as human");
    }
    let (first, mut row_len) = (cells.len(), RowLen::NoRows);
    for batch in &mut stream {
        let ctx = Ctx {
            name,
            class_names,
            first_row: cells.len() - first,
        };
        row_len = row_len.merge(decode_batch(&batch.map_err(arrow_err)?, &cols, ctx, cells)?);
    }
    drop(stream);
    match tracker.hit_eof {
        true => Err(HfDatasetError::Truncated {
            name: name.to_owned(),
        }),
        false => Ok(row_len),
    }
}

/// ClassLabel names from the `huggingface` schema metadata that `datasets` embeds in streams.
fn class_names_from_metadata(schema: &SchemaRef, column: &str) -> Option<Vec<String>> {
    let meta: Value = serde_json::from_str(schema.metadata().get("huggingface")?).ok()?;
    class_names_in(meta.get("info").and_then(|i| i.get("features")), column)
}

fn spans<O: OffsetSizeTrait>(offsets: &[O]) -> Vec<Range<usize>> {
    offsets
        .windows(2)
        .map(|w| w[0].as_usize()..w[1].as_usize())
        .collect()
}

/// Any integer array widened to i64 (u64 beyond i64 saturates, to be rejected later).
fn ints(a: &dyn Array) -> Option<Vec<i64>> {
    macro_rules! widen {
        ($t:ty) => {
            a.as_primitive_opt::<$t>().map(|p| {
                p.values()
                    .iter()
                    .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
                    .collect()
            })
        };
    }
    match a.data_type() {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => widen!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        DataType::UInt64 => widen!(UInt64Type),
        _ => None,
    }
}

fn floats(a: &dyn Array) -> Option<Vec<f32>> {
    let f16 = |p: &arrow_array::Float16Array| p.values().iter().map(|v| v.to_f32()).collect();
    let f64 = |p: &arrow_array::Float64Array| p.values().iter().map(|&v| v as f32).collect();
    match a.data_type() {
        DataType::Float16 => a.as_primitive_opt::<Float16Type>().map(f16),
        DataType::Float32 => a
            .as_primitive_opt::<Float32Type>()
            .map(|p| p.values().to_vec()),
        DataType::Float64 => a.as_primitive_opt::<Float64Type>().map(f64),
        _ => None,
    }
}

/// Converts a column's elements, with the type to name when it cannot.
type Decoder<T> = (fn(&dyn Array) -> Option<Vec<T>>, &'static str);

/// Flattens a column into its element values and each row's range of them; a non-list
/// column counts as one element per row. Nulls are rejected: the layout has none.
fn flatten<T>(
    col: &ArrayRef,
    column: &str,
    ctx: Ctx,
    (convert, expected): Decoder<T>,
) -> Result<(Vec<T>, Vec<Range<usize>>), HfDatasetError> {
    let (child, rows) = if let Some(l) = col.as_list_opt::<i32>() {
        (l.values().clone(), spans(l.value_offsets()))
    } else if let Some(l) = col.as_list_opt::<i64>() {
        (l.values().clone(), spans(l.value_offsets()))
    } else if let Some(l) = col.as_fixed_size_list_opt() {
        let n = l.value_length() as usize;
        (
            l.values().clone(),
            (0..l.len())
                .map(|i| l.value_offset_at(i))
                .map(|s| s..s + n)
                .collect(),
        )
    } else {
        (col.clone(), (0..col.len()).map(|r| r..r + 1).collect())
    };
    let values =
        convert(child.as_ref()).ok_or_else(|| ctx.bad_type(column, col.data_type(), expected))?;
    if col.null_count() + child.null_count() > 0 {
        let null = |(r, s): &(usize, &Range<usize>)| {
            col.is_null(*r) || (s.start..s.end).any(|i| child.is_null(i))
        };
        if let Some((r, _)) = rows.iter().enumerate().find(null) {
            return Err(ctx.bad_row(
                r,
                format!("column `{column}` holds a null; the dataset is corrupt"),
            ));
        }
    }
    Ok((values, rows))
}

/// One integer per row (`length`, `species`): a scalar or a one-element list.
fn one_per_row(col: &ArrayRef, column: &str, ctx: Ctx) -> Result<Vec<i64>, HfDatasetError> {
    let (values, rows) = flatten(col, column, ctx, (ints, SCALAR_TYPE))?;
    let one = |(r, s): (usize, Range<usize>)| match s.len() {
        1 => Ok(values[s.start]),
        n => Err(ctx.bad_row(
            r,
            format!("column `{column}` has {n} elements, expected exactly 1"),
        )),
    };
    rows.into_iter().enumerate().map(one).collect()
}

/// Labels per row: strings as they are, integers through the ClassLabel names (-1: none).
fn labels(col: &dyn Array, column: &str, ctx: Ctx) -> Result<Vec<Option<String>>, HfDatasetError> {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let class = |(r, code): (usize, i64)| match ctx.class_names {
        _ if col.is_null(r) || code == -1 => Ok(None),
        None => Ok(Some(code.to_string())),
        Some(names) => match usize::try_from(code).ok().and_then(|c| names.get(c)) {
            Some(name) => Ok(Some(name.clone())),
            None => Err(ctx.bad_row(
                r,
                format!(
                    "label {code} in `{column}` is not a class index (0..{})",
                    names.len()
                ),
            )),
        },
    };
    match col.data_type() {
        DataType::Utf8 => Ok(col.as_string::<i32>().iter().map(owned).collect()),
        DataType::LargeUtf8 => Ok(col.as_string::<i64>().iter().map(owned).collect()),
        DataType::Utf8View => Ok(col.as_string_view().iter().map(owned).collect()),
        DataType::Dictionary(..) => {
            let dict = col.as_any_dictionary();
            let (values, keys) = (
                labels(dict.values().as_ref(), column, ctx)?,
                dict.normalized_keys(),
            );
            Ok((0..col.len())
                .map(|r| values[keys[r]].clone().filter(|_| col.is_valid(r)))
                .collect())
        }
        dt => ints(col)
            .ok_or_else(|| ctx.bad_type(column, dt, LABEL_TYPE))?
            .into_iter()
            .enumerate()
            .map(class)
            .collect(),
    }
}

/// Decodes one record batch into unpadded cells, returning its row-length summary.
fn decode_batch(
    batch: &RecordBatch,
    cols: &Columns,
    ctx: Ctx,
    cells: &mut Vec<TokenizedCell>,
) -> Result<RowLen, HfDatasetError> {
    let col = |i: usize| batch.column(i);
    let (ids, id_rows) = flatten(col(cols.ids), "input_ids", ctx, (ints, IDS_TYPE))?;
    let (values, value_rows) = flatten(col(cols.values), "values", ctx, (floats, VALUES_TYPE))?;
    let lengths = cols
        .length
        .map(|i| one_per_row(col(i), "length", ctx))
        .transpose()?;
    let species = cols
        .species
        .map(|i| one_per_row(col(i), "species", ctx))
        .transpose()?;
    let mut row_labels = match &cols.label {
        Some((i, name)) => labels(col(*i).as_ref(), name, ctx)?,
        None => vec![None; batch.num_rows()],
    };
    let mut row_len = RowLen::NoRows;
    for (r, (id_span, value_span)) in id_rows.into_iter().zip(value_rows).enumerate() {
        let bad = |problem: String| Err(ctx.bad_row(r, problem));
        let row = &ids[id_span];
        let n = row.len();
        if value_span.len() != n {
            return bad(format!(
                "{n} `input_ids` but {} `values`; they must be equal: the dataset is corrupt",
                value_span.len()
            ));
        }
        let len = match &lengths {
            None => row.iter().position(|&id| id == 0).unwrap_or(n),
            Some(l) => match usize::try_from(l[r]) {
                Ok(len) if len <= n => len,
                _ => {
                    return bad(format!(
                        "`length` is {} but the row holds {n} positions: the `length` column is wrong",
                        l[r]
                    ));
                }
            },
        };
        if let Some(p) = row[len..].iter().position(|&id| id != 0) {
            let (p, id) = (len + p, row[len + p]);
            return bad(format!(
                "`input_ids` has token {id} at position {p}, after `length` {len}: padding must be id 0"
            ));
        }
        let mut input_ids = Vec::with_capacity(len);
        for (p, &id) in row[..len].iter().enumerate() {
            match u32::try_from(id) {
                Ok(0) => {
                    return bad(format!(
                        "`input_ids` has the pad id 0 at position {p}, inside `length` {len}: wrong `length`?"
                    ));
                }
                Ok(id) => input_ids.push(id),
                Err(_) => {
                    return bad(format!(
                        "`input_ids` has token id {id} at position {p}: ids must be non-negative (u32)"
                    ));
                }
            }
        }
        let species = match species.as_ref().map(|s| s[r]) {
            None => Species::Human,
            Some(code) => match Species::from_code(code) {
                Some(s) => s,
                None => {
                    return bad(format!(
                        "`species` is {code}: expected 0 (human) or 1 (mouse)"
                    ));
                }
            },
        };
        let values = values[value_span.start..value_span.start + len].to_vec();
        let label = row_labels[r].take();
        cells.push(TokenizedCell {
            input_ids,
            values,
            species,
            label,
        });
        row_len = row_len.merge(RowLen::Uniform(n));
    }
    Ok(row_len)
}

/// The `datasets` features, in column order (a JSON map would sort them).
struct Features(Vec<(String, Value)>);

impl Serialize for Features {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        self.0
            .iter()
            .try_for_each(|(name, feature)| map.serialize_entry(name, feature))?;
        map.end()
    }
}

fn features(label_column: Option<&str>) -> Features {
    let seq =
        |dtype: &str| json!({"feature": {"dtype": dtype, "_type": "Value"}, "_type": "Sequence"});
    let mut f: Vec<_> = RESERVED
        .iter()
        .zip(["int32", "float32", "int16", "int16"])
        .map(|(c, t)| (c.to_string(), seq(t)))
        .collect();
    f.extend(label_column.map(|c| (c.to_owned(), json!({"dtype": "string", "_type": "Value"}))));
    Features(f)
}

/// `dataset_info.json` (keys in the order `datasets` writes them).
#[derive(serde::Serialize)]
struct DatasetInfo<'a> {
    citation: &'a str,
    description: &'a str,
    features: &'a Features,
    homepage: &'a str,
    license: &'a str,
}

/// Checks every cell before anything is written, so a bad cell leaves no partial output.
fn validate(
    cells: &CellSet,
    pad_to: Option<usize>,
    label_column: Option<&str>,
) -> Result<(), HfDatasetError> {
    if let Some(col) = label_column.filter(|c| RESERVED.contains(c)) {
        return Err(HfDatasetError::ReservedLabelColumn {
            column: col.to_owned(),
        });
    }
    for (index, c) in cells.cells.iter().enumerate() {
        let problem = if c.input_ids.len() != c.values.len() {
            format!(
                "{} token ids but {} values; they must be equal",
                c.input_ids.len(),
                c.values.len()
            )
        } else if let Some(p) = c.input_ids.iter().position(|&id| id == 0) {
            format!("the pad id 0 at position {p}; cells hold real genes only")
        } else if let Some(id) = c.input_ids.iter().find(|&&id| i32::try_from(id).is_err()) {
            format!("token id {id} does not fit the int32 `input_ids` column")
        } else if i16::try_from(c.len()).is_err() {
            format!(
                "{} genes do not fit the int16 `length` column (at most 32767)",
                c.len()
            )
        } else if let Some(p) = pad_to.filter(|&p| c.len() > p) {
            format!(
                "{} genes, more than pad_to = {p}: truncate the cell or raise pad_to",
                c.len()
            )
        } else {
            continue;
        };
        return Err(HfDatasetError::BadCell { index, problem });
    }
    Ok(())
}

/// The official schema, with the features embedded as `datasets` does (`huggingface` key).
fn hf_schema(label_column: Option<&str>) -> Schema {
    let list = |dt| DataType::List(Arc::new(Field::new_list_field(dt, true)));
    let types = [
        list(DataType::Int32),
        list(DataType::Float32),
        list(DataType::Int16),
        list(DataType::Int16),
    ];
    let mut fields: Vec<_> = RESERVED
        .iter()
        .zip(types)
        .map(|(c, t)| Field::new(*c, t, true))
        .collect();
    fields.extend(label_column.map(|c| Field::new(c, DataType::Utf8, true)));
    let features = serde_json::to_string(&features(label_column)).expect("features serialize");
    let meta = format!(r#"{{"info": {{"features": {features}}}}}"#);
    Schema::new_with_metadata(
        fields,
        std::collections::HashMap::from([("huggingface".to_owned(), meta)]),
    )
}

/// One record batch of (optionally padded) rows in the official column types.
fn build_batch(
    schema: &SchemaRef,
    chunk: &[TokenizedCell],
    pad_to: Option<usize>,
) -> Result<RecordBatch, ArrowError> {
    let (mut ids, mut values, mut offsets) = (Vec::<i32>::new(), Vec::<f32>::new(), vec![0i32]);
    for c in chunk {
        // `validate` guarantees the ids fit i32 and the cell fits `pad_to`.
        ids.extend(c.input_ids.iter().map(|&id| id as i32));
        values.extend_from_slice(&c.values);
        let padded = pad_to.map_or(ids.len(), |p| ids.len() + p - c.len());
        ids.resize(padded, 0);
        values.resize(padded, 0.0);
        offsets.push(
            i32::try_from(ids.len())
                .map_err(|_| ArrowError::ComputeError("batch over 2^31 genes".into()))?,
        );
    }
    let list = |child: ArrayRef, offsets: Vec<i32>| -> Result<ArrayRef, ArrowError> {
        let field = Arc::new(Field::new_list_field(child.data_type().clone(), true));
        Ok(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            child,
            None,
        )?))
    };
    let ones: Vec<i32> = (0..=chunk.len() as i32).collect();
    let lengths = Int16Array::from_iter_values(chunk.iter().map(|c| c.len() as i16));
    let species = Int16Array::from_iter_values(chunk.iter().map(|c| i16::from(c.species.code())));
    let mut columns = vec![
        list(Arc::new(Int32Array::from(ids)), offsets.clone())?,
        list(Arc::new(Float32Array::from(values)), offsets)?,
        list(Arc::new(lengths), ones.clone())?,
        list(Arc::new(species), ones)?,
    ];
    if schema.fields().len() > RESERVED.len() {
        columns.push(Arc::new(StringArray::from_iter(
            chunk.iter().map(|c| c.label.as_deref()),
        )));
    }
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes cells as one Arrow IPC stream in the official column types (works on bytes, so
/// also in WASM). Rows are padded with id 0 / value 0.0 to `pad_to` (official: 2048), or
/// left variable-length when `None`. Labels are written only when `label_column` is given.
pub fn write_arrow_stream<W: Write>(
    writer: W,
    cells: &CellSet,
    pad_to: Option<usize>,
    label_column: Option<&str>,
) -> Result<(), HfDatasetError> {
    validate(cells, pad_to, label_column)?;
    write_stream(writer, "the output stream", cells, pad_to, label_column)
}

fn write_stream<W: Write>(
    writer: W,
    name: &str,
    cells: &CellSet,
    pad_to: Option<usize>,
    label_column: Option<&str>,
) -> Result<(), HfDatasetError> {
    let err = |source| HfDatasetError::ArrowWrite {
        name: name.to_owned(),
        source,
    };
    let schema = Arc::new(hf_schema(label_column));
    let mut w = StreamWriter::try_new(writer, &schema).map_err(err)?;
    for chunk in cells.cells.chunks(BATCH_ROWS) {
        w.write(&build_batch(&schema, chunk, pad_to).map_err(err)?)
            .map_err(err)?;
    }
    w.finish().map_err(err)?;
    w.into_inner()
        .map_err(err)?
        .flush()
        .map_err(|e| err(e.into()))
}

/// Writes a `save_to_disk` folder (`data-00000-of-00001.arrow`, `dataset_info.json`,
/// `state.json`) that `datasets.load_from_disk` loads. It is built in a hidden sibling
/// folder and renamed into place, so an interrupted write never leaves a half dataset.
/// An existing dataset folder at `dir` is replaced; any other non-empty path is refused.
/// See [`write_arrow_stream`] for `pad_to` and `label_column`.
pub fn write_hf_dataset(
    dir: &Path,
    cells: &CellSet,
    pad_to: Option<usize>,
    label_column: Option<&str>,
) -> Result<(), HfDatasetError> {
    validate(cells, pad_to, label_column)?;
    // What is at `dir` now: nothing, an empty folder (`Some(false)`) or a dataset (`Some(true)`).
    let existing = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(dir)(e)),
        Ok(m) if m.is_dir() && fs::read_dir(dir).map_err(io_err(dir))?.next().is_none() => {
            Some(false)
        }
        Ok(m) if m.is_dir() && dir.join("state.json").is_file() => Some(true),
        Ok(_) => {
            return Err(HfDatasetError::TargetExists {
                path: dir.to_path_buf(),
            });
        }
    };
    let no_name = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path has no folder name",
        )
    };
    let name = dir
        .file_name()
        .ok_or_else(no_name)
        .map_err(io_err(dir))?
        .to_string_lossy();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let hidden = |what: &str| parent.join(format!(".{name}.{what}-{}", unique_token()));
    let (tmp, old) = (hidden("tmp"), hidden("old"));
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let result = write_files(&tmp, cells, pad_to, label_column).and_then(|()| {
        match existing {
            Some(true) => fs::rename(dir, &old).map_err(io_err(dir))?,
            Some(false) => fs::remove_dir(dir).map_err(io_err(dir))?,
            None => {}
        }
        if let Err(e) = fs::rename(&tmp, dir) {
            if existing == Some(true) {
                let _ = fs::rename(&old, dir);
            }
            return Err(io_err(dir)(e));
        }
        if existing == Some(true)
            && let Err(e) = fs::remove_dir_all(&old)
        {
            tracing::warn!(
                "could not remove the replaced dataset `{}`: {e}",
                old.display()
            );
        }
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_files(
    tmp: &Path,
    cells: &CellSet,
    pad_to: Option<usize>,
    label: Option<&str>,
) -> Result<(), HfDatasetError> {
    let data = tmp.join(DATA_FILE);
    let mut out = BufWriter::new(File::create(&data).map_err(io_err(&data))?);
    write_stream(&mut out, &data.display().to_string(), cells, pad_to, label)?;
    let file = out
        .into_inner()
        .map_err(|e| io_err(&data)(e.into_error()))?;
    file.sync_all().map_err(io_err(&data))?;
    let features = features(label);
    let info = DatasetInfo {
        citation: "",
        description: "",
        features: &features,
        homepage: "",
        license: "",
    };
    // Keys are already in the sorted order `datasets` writes, so a plain JSON map keeps them.
    let state = json!({
        "_data_files": [{"filename": DATA_FILE}],
        "_fingerprint": format!("{:016x}", unique_hash(cells.len())),
        "_format_columns": null,
        "_format_kwargs": {},
        "_format_type": null,
        "_output_all_columns": false,
        "_split": null,
    });
    let write = |file: &str, text: serde_json::Result<String>| {
        let path = tmp.join(file);
        fs::write(&path, text.expect("metadata serializes")).map_err(io_err(&path))
    };
    write("dataset_info.json", serde_json::to_string_pretty(&info))?;
    write("state.json", serde_json::to_string_pretty(&state))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Process id, time and a counter: unique among concurrent writers of one parent folder.
fn unique_token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = now.map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh `_fingerprint`: `datasets` only needs it to differ between distinct datasets.
fn unique_hash(salt: usize) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one((unique_token(), salt))
}

#[cfg(test)]
#[path = "hf_dataset_tests.rs"]
mod tests;
