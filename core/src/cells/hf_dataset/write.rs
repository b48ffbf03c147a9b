//! Writing: cells → an Arrow IPC stream folder that `datasets.load_from_disk` reads.

use super::*;

/// The `datasets` features, in column order (a JSON map would sort them).
pub(super) struct Features(Vec<(String, Value)>);

impl Serialize for Features {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        self.0
            .iter()
            .try_for_each(|(name, feature)| map.serialize_entry(name, feature))?;
        map.end()
    }
}

pub(super) fn features(label_column: Option<&str>) -> Features {
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
pub(super) struct DatasetInfo<'a> {
    citation: &'a str,
    description: &'a str,
    features: &'a Features,
    homepage: &'a str,
    license: &'a str,
}

/// Checks every cell before anything is written, so a bad cell leaves no partial output.
pub(super) fn validate(
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
pub(super) fn hf_schema(label_column: Option<&str>) -> Schema {
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
pub(super) fn build_batch(
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

pub(super) fn write_stream<W: Write>(
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

pub(super) fn write_files(
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

pub(super) static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Process id, time and a counter: unique among concurrent writers of one parent folder.
pub(super) fn unique_token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let nanos = now.map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh `_fingerprint`: `datasets` only needs it to differ between distinct datasets.
pub(super) fn unique_hash(salt: usize) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one((unique_token(), salt))
}
