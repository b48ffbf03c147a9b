//! Tests for [`super`]: the official fixtures, round trips and the error paths.

use super::*;
use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::{Int64Array, StringArray};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join("hf-datasets").join(name)
}

/// A unique temp path (not created yet).
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gc-hf-{tag}-{}", unique_token()))
}

/// The padded reference cells of `inputs.safetensors`, with their `cls_labels`.
struct Reference {
    ids: Vec<Vec<i64>>,
    values: Vec<Vec<f32>>,
    species: Vec<i64>,
    lengths: Vec<usize>,
    labels: Vec<i64>,
}

fn reference() -> Reference {
    let bytes = fs::read(fixtures().join("reference-tiny/inputs.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let i64s = |name: &str| -> Vec<i64> {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::I64, "{name}");
        t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let t = st.tensor("values").unwrap();
    assert_eq!(t.shape(), [6, 16]);
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(st.tensor("input_ids").unwrap().shape(), [6, 16]);
    Reference {
        ids: i64s("input_ids").chunks(16).map(<[i64]>::to_vec).collect(),
        values: values.chunks(16).map(<[f32]>::to_vec).collect(),
        species: i64s("species"),
        lengths: i64s("lengths").into_iter().map(|l| l as usize).collect(),
        labels: i64s("cls_labels"),
    }
}

/// Checks a read set against the reference numbers, bit for bit.
fn assert_matches_reference(set: &CellSet, with_labels: bool) {
    let r = reference();
    assert_eq!(r.lengths, [12, 16, 9, 14, 5, 11]);
    assert_eq!(set.len(), 6);
    assert_eq!(set.padded_len, Some(16));
    for (i, cell) in set.cells.iter().enumerate() {
        let len = r.lengths[i];
        assert!(
            r.ids[i][len..].iter().all(|&id| id == 0),
            "reference padding of cell {i}"
        );
        let ids: Vec<u32> = r.ids[i][..len].iter().map(|&id| id as u32).collect();
        assert_eq!(cell.input_ids, ids, "ids of cell {i}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&cell.values),
            bits(&r.values[i][..len]),
            "values of cell {i}"
        );
        assert_eq!(
            i64::from(cell.species.code()),
            r.species[i],
            "species of cell {i}"
        );
        let label = with_labels.then(|| format!("type_{}", r.labels[i]));
        assert_eq!(cell.label, label, "label of cell {i}");
    }
}

#[test]
fn reads_pretrain_fixture() {
    let set = read_hf_dataset(&fixture("pretrain-tiny"), None).unwrap();
    assert_matches_reference(&set, false);
    assert!(set.cells.iter().any(|c| c.species == Species::Mouse));
}

#[test]
fn reads_celltype_fixture_with_and_without_labels() {
    let dir = fixture("celltype-tiny");
    assert_matches_reference(&read_hf_dataset(&dir, Some("celltype")).unwrap(), true);
    assert_matches_reference(&read_hf_dataset(&dir, None).unwrap(), false);
    let cols = hf_dataset_columns(&dir).unwrap();
    assert_eq!(
        cols,
        ["input_ids", "values", "length", "species", "celltype"]
    );
}

#[test]
fn round_trip_padded_matches_official_layout() {
    let src = fixture("celltype-tiny");
    let set = read_hf_dataset(&src, Some("celltype")).unwrap();
    let out = temp_path("padded");
    write_hf_dataset(&out, &set, Some(16), Some("celltype")).unwrap();
    assert_eq!(read_hf_dataset(&out, Some("celltype")).unwrap(), set);

    let json = |p: PathBuf| serde_json::from_slice::<Value>(&fs::read(p).unwrap()).unwrap();
    let (ours, official) = (
        json(out.join("dataset_info.json")),
        json(src.join("dataset_info.json")),
    );
    assert_eq!(ours, official);
    let (ours, official) = (json(out.join("state.json")), json(src.join("state.json")));
    let fp = ours["_fingerprint"].as_str().unwrap().to_owned();
    assert!(
        fp.len() == 16 && fp.chars().all(|c| c.is_ascii_hexdigit()),
        "{fp}"
    );
    assert_ne!(ours["_fingerprint"], official["_fingerprint"]);
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("_fingerprint");
        v
    };
    assert_eq!(strip(ours), strip(official));
    // The stream embeds the features as `datasets` does, so `load_from_disk` sees the schema.
    let file = File::open(out.join(DATA_FILE)).unwrap();
    let schema = StreamReader::try_new(file, None).unwrap().schema();
    let official = StreamReader::try_new(File::open(src.join(DATA_FILE)).unwrap(), None)
        .unwrap()
        .schema();
    assert_eq!(schema.fields(), official.fields());
    let meta = |s: &SchemaRef| {
        serde_json::from_str::<Value>(s.metadata().get("huggingface").unwrap()).unwrap()
    };
    assert_eq!(meta(&schema), meta(&official));

    // Writing again over the dataset replaces it and leaves no hidden siblings behind.
    let fewer = CellSet {
        cells: set.cells[..2].to_vec(),
        padded_len: Some(16),
    };
    write_hf_dataset(&out, &fewer, Some(16), None).unwrap();
    assert_eq!(read_hf_dataset(&out, None).unwrap().len(), 2);
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers = fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&format!(".{name}."))
        })
        .count();
    assert_eq!(leftovers, 0);
    fs::remove_dir_all(&out).unwrap();
}

#[test]
fn round_trip_variable_length_in_memory() {
    let mut set = read_hf_dataset(&fixture("celltype-tiny"), Some("celltype")).unwrap();
    set.cells[1].label = None;
    let mut bytes = Vec::new();
    write_arrow_stream(&mut bytes, &set, None, Some("label")).unwrap();
    let back = read_arrow_stream(bytes.as_slice(), "mem", Some("label"), None).unwrap();
    assert_eq!(back.padded_len, None, "rows differ in length when unpadded");
    assert_eq!(back.cells, set.cells);
}

#[test]
fn missing_state_json_globs_data_files_in_order() {
    let set = read_hf_dataset(&fixture("pretrain-tiny"), None).unwrap();
    let dir = temp_path("glob");
    fs::create_dir_all(&dir).unwrap();
    // Written out of order on purpose: name order must win.
    for (name, part) in [
        ("data-00001-of-00002.arrow", 4..6),
        ("data-00000-of-00002.arrow", 0..4),
    ] {
        let part = CellSet {
            cells: set.cells[part].to_vec(),
            padded_len: None,
        };
        write_arrow_stream(File::create(dir.join(name)).unwrap(), &part, Some(16), None).unwrap();
    }
    assert_eq!(read_hf_dataset(&dir, None).unwrap(), set);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_file_is_an_error_naming_the_file() {
    let src = fixture("pretrain-tiny").join(DATA_FILE);
    let bytes = fs::read(&src).unwrap();
    assert_eq!(
        bytes[bytes.len() - 8..],
        [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
    );
    // Cut mid-message, and cut exactly before the end-of-stream marker.
    for cut in [bytes.len() / 2, bytes.len() - 8] {
        let dir = temp_path("trunc");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(DATA_FILE), &bytes[..cut]).unwrap();
        let err = read_hf_dataset(&dir, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                HfDatasetError::Arrow { .. } | HfDatasetError::Truncated { .. }
            ),
            "{msg}"
        );
        assert!(
            msg.contains(DATA_FILE) && msg.contains("truncated"),
            "{msg}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn missing_label_column_lists_available_columns() {
    let err = read_hf_dataset(&fixture("celltype-tiny"), Some("label")).unwrap_err();
    assert!(
        matches!(err, HfDatasetError::MissingLabelColumn { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`label`") && msg.contains("`celltype`") && msg.contains("`input_ids`"),
        "{msg}"
    );
}

/// An Arrow stream of the given columns (all nullable), with optional `huggingface` metadata.
fn stream(columns: Vec<(&str, ArrayRef)>, hf_meta: Option<&str>) -> Vec<u8> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let meta: BTreeMap<String, String> = hf_meta
        .map(|m| [("huggingface".to_owned(), m.to_owned())].into())
        .unwrap_or_default();
    let schema = Arc::new(Schema::new_with_metadata(fields, meta));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

fn i64_lists(rows: &[&[i64]]) -> ArrayRef {
    let mut b = ListBuilder::new(Int64Builder::new());
    for row in rows {
        b.values().append_slice(row);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn f64_lists(rows: &[&[f64]]) -> ArrayRef {
    let rows = rows
        .iter()
        .map(|r| Some(r.iter().map(|&v| Some(v)).collect::<Vec<_>>()));
    Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(rows))
}

#[test]
fn wrong_column_type_and_missing_column_are_explained() {
    let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
    let bytes = stream(
        vec![("input_ids", i64_lists(&[&[5], &[6]])), ("values", values)],
        None,
    );
    let err = read_arrow_stream(bytes.as_slice(), "bad.arrow", None, None).unwrap_err();
    assert!(
        matches!(&err, HfDatasetError::ColumnType { column, .. } if column == "values"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("bad.arrow") && msg.contains("Utf8") && msg.contains("list<float32>"),
        "{msg}"
    );

    let bytes = stream(vec![("values", f64_lists(&[&[1.0]]))], None);
    let err = read_arrow_stream(bytes.as_slice(), "bad.arrow", None, None).unwrap_err();
    assert!(
        matches!(&err, HfDatasetError::MissingColumn { column, .. } if column == "input_ids"),
        "{err}"
    );
}

#[test]
fn tolerates_wide_types_scalars_and_missing_columns() {
    // int64 ids, float64 values, scalar length/species, an int ClassLabel with names in metadata.
    let meta = r#"{"info": {"features": {"label": {"names": ["B cell", "T cell"], "_type": "ClassLabel"}}}}"#;
    let cols = vec![
        ("input_ids", i64_lists(&[&[7, 3, 0, 0], &[9, 0, 0, 0]])),
        (
            "values",
            f64_lists(&[&[2.5, 1.0, 0.0, 0.0], &[0.5, 0.0, 0.0, 0.0]]),
        ),
        ("length", Arc::new(Int64Array::from(vec![2, 1])) as ArrayRef),
        (
            "species",
            Arc::new(Int64Array::from(vec![1, 0])) as ArrayRef,
        ),
        ("label", Arc::new(Int64Array::from(vec![1, 0])) as ArrayRef),
    ];
    let bytes = stream(cols, Some(meta));
    let set = read_arrow_stream(bytes.as_slice(), "wide", Some("label"), None).unwrap();
    assert_eq!(set.padded_len, Some(4));
    assert_eq!(set.cells[0].input_ids, [7, 3]);
    assert_eq!(set.cells[0].values, [2.5, 1.0]);
    assert_eq!(set.cells[0].species, Species::Mouse);
    assert_eq!(set.cells[0].label.as_deref(), Some("T cell"));
    assert_eq!(set.cells[1].label.as_deref(), Some("B cell"));
    let names = ["x".to_owned(), "y".to_owned()];
    let set = read_arrow_stream(bytes.as_slice(), "wide", Some("label"), Some(&names)).unwrap();
    assert_eq!(
        set.cells[0].label.as_deref(),
        Some("y"),
        "explicit names win over metadata"
    );

    // No length (first 0 ends the cell, else the full row) and no species (human).
    let cols = vec![
        ("input_ids", i64_lists(&[&[4, 5, 0], &[6, 7, 8]])),
        ("values", f64_lists(&[&[1.0, 2.0, 0.0], &[3.0, 4.0, 5.0]])),
    ];
    let set = read_arrow_stream(stream(cols, None).as_slice(), "bare", None, None).unwrap();
    assert_eq!(set.cells[0].input_ids, [4, 5]);
    assert_eq!(set.cells[1].input_ids, [6, 7, 8]);
    assert!(
        set.cells
            .iter()
            .all(|c| c.species == Species::Human && c.label.is_none())
    );
}

/// ids, values, length and species of a second row, and the expected message.
type Case<'a> = (&'a [i64], &'a [f64], i64, i64, &'a str);

#[test]
fn bad_rows_are_rejected() {
    let read = |ids: &[i64], values: &[f64], length: i64, species: i64| {
        let cols = vec![
            ("input_ids", i64_lists(&[&[2, 3], ids])),
            ("values", f64_lists(&[&[1.0, 1.0], values])),
            ("length", i64_lists(&[&[2], &[length]])),
            ("species", i64_lists(&[&[0], &[species]])),
        ];
        read_arrow_stream(stream(cols, None).as_slice(), "rows.arrow", None, None)
    };
    assert!(read(&[2, 3, 0], &[1.0, 1.0, 0.0], 2, 1).is_ok());
    let cases: [Case; 5] = [
        (&[2, 3, 4], &[1.0, 1.0, 1.0], 2, 0, "padding must be id 0"),
        (&[2, 3], &[1.0], 2, 0, "must be equal"),
        (&[2, -3], &[1.0, 1.0], 2, 0, "negative"),
        (&[2, 3], &[1.0, 1.0], 2, 16, "`species` is 16"),
        (&[2, 3], &[1.0, 1.0], 3, 0, "`length` is 3"),
    ];
    for (ids, values, length, species, expected) in cases {
        let err = read(ids, values, length, species).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, HfDatasetError::BadRow { row: 1, .. }),
            "{msg}"
        );
        assert!(
            msg.contains(expected) && msg.contains("rows.arrow"),
            "{msg}"
        );
    }
}

#[test]
fn writer_refuses_bad_cells_and_foreign_folders() {
    let cell = |ids: Vec<u32>| TokenizedCell {
        values: vec![1.0; ids.len()],
        input_ids: ids,
        species: Species::Human,
        label: None,
    };
    let set = |ids| CellSet {
        cells: vec![cell(ids)],
        padded_len: None,
    };
    let err = write_arrow_stream(Vec::new(), &set(vec![2, 3, 4]), Some(2), None).unwrap_err();
    assert!(
        matches!(err, HfDatasetError::BadCell { index: 0, .. })
            && err.to_string().contains("pad_to"),
        "{err}"
    );
    let err = write_arrow_stream(Vec::new(), &set(vec![2, 0]), None, None).unwrap_err();
    assert!(err.to_string().contains("pad id 0"), "{err}");
    let err = write_arrow_stream(Vec::new(), &set(vec![2]), None, Some("species")).unwrap_err();
    assert!(
        matches!(err, HfDatasetError::ReservedLabelColumn { .. }),
        "{err}"
    );

    let dir = temp_path("foreign");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let err = write_hf_dataset(&dir, &set(vec![2]), None, None).unwrap_err();
    assert!(matches!(err, HfDatasetError::TargetExists { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
    fs::remove_dir_all(&dir).unwrap();
}
