//! Reading: `state.json` / Arrow IPC stream files → cells, with typed errors per column.

use super::*;

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
pub(super) fn read_json(path: &Path) -> Result<Option<Value>, HfDatasetError> {
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
pub(super) fn data_files(dir: &Path) -> Result<Vec<PathBuf>, HfDatasetError> {
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
pub(super) fn class_names_in(features: Option<&Value>, column: &str) -> Option<Vec<String>> {
    let names = features?.get(column)?.get("names")?.as_array()?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Row lengths seen so far, to derive [`CellSet::padded_len`] across batches and files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum RowLen {
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
pub(super) struct EofTracker<R> {
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
pub(super) struct Ctx<'a> {
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

pub(super) const IDS_TYPE: &str = "list<int32> (or list<int64>)";
pub(super) const VALUES_TYPE: &str = "list<float32> (or list<float64>)";
pub(super) const SCALAR_TYPE: &str = "list<int16> of one element, or an integer";
pub(super) const LABEL_TYPE: &str = "a string column or an integer (ClassLabel) column";

pub(super) fn list_child(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

pub(super) fn is_int_list(dt: &DataType) -> bool {
    list_child(dt).is_some_and(DataType::is_integer)
}

pub(super) fn is_float_list(dt: &DataType) -> bool {
    list_child(dt).is_some_and(DataType::is_floating)
}

pub(super) fn is_scalar_type(dt: &DataType) -> bool {
    dt.is_integer() || is_int_list(dt)
}

pub(super) fn is_label_type(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(**v, DataType::Utf8 | DataType::LargeUtf8),
        dt => dt.is_integer(),
    }
}

/// Column positions of the tokenized layout in a stream's schema.
pub(super) struct Columns {
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
pub(super) fn read_stream<R: Read>(
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
pub(super) fn class_names_from_metadata(schema: &SchemaRef, column: &str) -> Option<Vec<String>> {
    let meta: Value = serde_json::from_str(schema.metadata().get("huggingface")?).ok()?;
    class_names_in(meta.get("info").and_then(|i| i.get("features")), column)
}

pub(super) fn spans<O: OffsetSizeTrait>(offsets: &[O]) -> Vec<Range<usize>> {
    offsets
        .windows(2)
        .map(|w| w[0].as_usize()..w[1].as_usize())
        .collect()
}

/// Any integer array widened to i64 (u64 beyond i64 saturates, to be rejected later).
pub(super) fn ints(a: &dyn Array) -> Option<Vec<i64>> {
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

pub(super) fn floats(a: &dyn Array) -> Option<Vec<f32>> {
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
pub(super) fn flatten<T>(
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
pub(super) fn one_per_row(
    col: &ArrayRef,
    column: &str,
    ctx: Ctx,
) -> Result<Vec<i64>, HfDatasetError> {
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
pub(super) fn labels(
    col: &dyn Array,
    column: &str,
    ctx: Ctx,
) -> Result<Vec<Option<String>>, HfDatasetError> {
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
pub(super) fn decode_batch(
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
                        "`species` is {code}: expected 0 (human), 1 (mouse) or 2-15 (a species added with extend-vocab --add-species)"
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
