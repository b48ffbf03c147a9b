//! Columns written into the real h5ad files of `shared/data/h5ad` (current, 0.7-era and
//! pre-0.7 schemas, gzip-compressed), read back with the crate's own h5ad reader.

use super::read::Image;
use super::*;
use crate::data::{CellSource, ObsColumn, open_h5ad_bytes};
use crate::data::{H5adSource, MatrixChoice};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/h5ad/");

/// A shared data file; missing data is a failure, not a skip.
fn data(name: &str) -> Vec<u8> {
    let p = format!("{DIR}{name}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e} (shared data missing?)"))
}

fn open(bytes: Vec<u8>) -> H5adSource {
    open_h5ad_bytes(bytes, "test.h5ad", MatrixChoice::X).expect("the reader opens the file")
}

/// The whole matrix, in one chunk.
fn matrix(src: &mut H5adSource) -> crate::data::CsrChunk {
    let n = src.info().n_cells;
    src.next_chunk(n).unwrap().unwrap_or_default()
}

/// Labels cycling through `k` classes plus the filtered label, and confidences with NaN for
/// the filtered cells.
fn predictions(n: usize, k: usize) -> Vec<NewObsColumn> {
    let classes: Vec<String> = (0..k).map(|i| format!("type {i} é")).collect();
    let p: Vec<Option<(&str, f32)>> = (0..n)
        .map(|i| (i % 7 != 3).then(|| (classes[i % k].as_str(), (i % 100) as f32 / 100.0)))
        .collect();
    prediction_columns(&p)
}

/// Column equality with NaN equal to NaN (float columns with missing values).
fn same(a: &ObsColumn, b: &ObsColumn) -> bool {
    match (a, b) {
        (ObsColumn::Number(a), ObsColumn::Number(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
        }
        _ => a == b,
    }
}

fn float_eq(a: &[f64], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, &y)| (x.is_nan() && y.is_nan()) || *x == f64::from(y))
}

/// Writes `predictions` into `file` and checks, with the reader: the new columns' values, the
/// old columns, cell names, genes and every matrix unchanged, and the original bytes untouched
/// but for the repointed `obs` link and the end-of-file address.
fn round_trip(file: &str) -> Vec<u8> {
    let input = data(file);
    let mut before = open(input.clone());
    let n = before.info().n_cells;
    let cols = predictions(n, 5);
    let out = add_obs_columns(&input, file, &cols).expect("columns written");
    let mut after = open(out.clone());
    let (b, a) = (before.cells().clone(), after.cells().clone());
    assert!(a.names == b.names, "{file}: cell names changed");
    assert_eq!(a.columns.len(), b.columns.len() + 2, "{file}: column count");
    for ((na, ca), (nb, cb)) in a.columns.iter().zip(&b.columns) {
        assert!(
            na == nb && same(ca, cb),
            "{file}: old column `{nb}` became `{na}` or changed"
        );
    }
    let ObsValues::Categorical(labels) = &cols[0].values else {
        unreachable!()
    };
    let ObsValues::Float32(conf) = &cols[1].values else {
        unreachable!()
    };
    assert_eq!(
        a.column(LABEL_COLUMN),
        Some(&ObsColumn::Text(labels.clone()))
    );
    assert!(labels.iter().any(|l| l == FILTERED_LABEL));
    match a.column(CONFIDENCE_COLUMN) {
        Some(ObsColumn::Number(v)) => assert!(float_eq(v, conf), "{file}: confidence"),
        other => panic!("{file}: confidence column is {other:?}"),
    }
    assert_eq!(after.genes(), before.genes(), "{file}: genes");
    assert_eq!(after.matrices(), before.matrices(), "{file}: matrices");
    assert_eq!(after.info(), before.info(), "{file}: info");
    assert_eq!(matrix(&mut after), matrix(&mut before), "{file}: X");
    for m in before.matrices().iter().filter(|m| m.path != "X") {
        let choice = match m.path.as_str() {
            "raw/X" | "raw.X" => MatrixChoice::RawX,
            p => MatrixChoice::Layer(p.trim_start_matches("layers/").into()),
        };
        let x = |b: Vec<u8>| matrix(&mut open_h5ad_bytes(b, "t", choice.clone()).unwrap());
        assert_eq!(x(out.clone()), x(input.clone()), "{file}: {}", m.path);
    }
    let img = Image {
        b: &input,
        name: file,
    };
    let sb = img.superblock().unwrap();
    let links = img.links("/", &img.messages(sb.root).unwrap()).unwrap();
    let entry = links.iter().find(|l| l.name == "obs").unwrap().addr_field;
    let allowed = |i: usize| {
        (sb.eof_field..sb.eof_field + 8).contains(&i) || (entry..entry + 32).contains(&i)
    };
    let changed: Vec<usize> = (0..input.len()).filter(|&i| input[i] != out[i]).collect();
    assert!(
        !changed.is_empty() && changed.iter().all(|&i| allowed(i)),
        "{file}: only the end-of-file address and the root's `obs` entry may change: {changed:?}"
    );
    out
}

#[test]
fn writes_columns_into_the_current_schema_gzip_files() {
    round_trip("baron_mouse_pancreas_822.h5ad");
    round_trip("wu2020_tcells_200.h5ad");
}

#[test]
fn writes_columns_next_to_many_typed_columns() {
    // Categoricals, bool, int and float columns; 14 links in obs after the write.
    let out = round_trip("cider_pancreas_human_mouse_3donors.h5ad");
    let src = open(out);
    let names: Vec<&str> = src
        .cells()
        .columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names.last(), Some(&CONFIDENCE_COLUMN));
    assert!(names.contains(&"n_genes") && names.contains(&"is_duplicate_column"));
}

#[test]
fn writes_columns_when_obs_has_none() {
    // anndata stores an empty `column-order` as an empty float64 array.
    round_trip("mouse_brain_10k_1000genes.h5ad");
}

#[test]
fn writes_columns_into_the_0_7_era_schema() {
    // obs categoricals there are code datasets with an object-reference attribute.
    round_trip("wu2020_tcells_200_old_schema_v0_6.h5ad");
}

#[test]
fn written_types_are_byte_for_byte_what_h5py_writes() {
    // The baron file was written by h5py/anndata: compare with its `obs/cell_type`.
    let b = data("baron_mouse_pancreas_822.h5ad");
    let img = Image {
        b: &b,
        name: "baron",
    };
    let root = img.messages(img.superblock().unwrap().root).unwrap();
    let find = |links: &[read::Link], name: &str| {
        let l = links.iter().find(|l| l.name == name).unwrap();
        img.messages(l.target).unwrap()
    };
    let obs = find(&img.links("/", &root).unwrap(), "obs");
    let cell_type = find(&img.links("obs", &obs).unwrap(), "cell_type");
    let attrs = img.attrs(&cell_type).unwrap();
    let ordered = &attrs.iter().find(|(_, a)| a.name == "ordered").unwrap().1;
    assert_eq!(&b[ordered.dtype.clone()], &write::BOOL[..]);
    let inner = img.links("cell_type", &cell_type).unwrap();
    let dtype = |name: &str| {
        let m = find(&inner, name);
        let m = m.iter().find(|m| m.kind == msg::DATATYPE).unwrap();
        b[m.body.clone()].to_vec()
    };
    assert_eq!(dtype("categories")[..20], write::VLEN_UTF8);
    assert_eq!(dtype("codes")[..12], write::int_type(1));
}

#[test]
fn many_categories_get_int16_codes() {
    // Also a non-ASCII column name (a UTF-8 link name).
    let input = data("baron_mouse_pancreas_822.h5ad");
    let n = open(input.clone()).info().n_cells;
    let labels: Vec<String> = (0..n).map(|i| format!("c{:03}", i % 300)).collect();
    let cols = [NewObsColumn {
        name: "many é".into(),
        values: ObsValues::Categorical(labels.clone()),
    }];
    let out = add_obs_columns(&input, "baron", &cols).unwrap();
    let src = open(out.clone());
    assert_eq!(src.cells().column("many é"), Some(&ObsColumn::Text(labels)));
    let img = Image {
        b: &out,
        name: "out",
    };
    let root = img.messages(img.superblock().unwrap().root).unwrap();
    let links = img.links("/", &root).unwrap();
    let obs = img
        .messages(links.iter().find(|l| l.name == "obs").unwrap().target)
        .unwrap();
    let many = img.links("obs", &obs).unwrap();
    let group = img
        .messages(many.iter().find(|l| l.name == "many é").unwrap().target)
        .unwrap();
    let inner = img.links("many é", &group).unwrap();
    let codes = img
        .messages(inner.iter().find(|l| l.name == "codes").unwrap().target)
        .unwrap();
    let dt = codes.iter().find(|m| m.kind == msg::DATATYPE).unwrap();
    assert_eq!(out[dt.body.clone()][..12], write::int_type(2));
}

#[test]
fn an_existing_column_is_refused_by_name_or_replaced_in_place() {
    let input = data("baron_mouse_pancreas_822.h5ad");
    let n = open(input.clone()).info().n_cells;
    let once = add_obs_columns(&input, "baron", &predictions(n, 3)).unwrap();
    let e = add_obs_columns(&once, "baron", &predictions(n, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains(LABEL_COLUMN) && e.contains("already has"), "{e}");
    let e = add_obs_columns(
        &input,
        "baron",
        &[NewObsColumn {
            name: "cell_type".into(),
            values: ObsValues::Float32(vec![0.0; n]),
        }],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`cell_type`"), "{e}");

    let twice = add_obs_columns_with(&once, "baron", &predictions(n, 4), IfExists::Replace)
        .expect("replaced");
    let src = open(twice);
    let names: Vec<&str> = src
        .cells()
        .columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["cell_type", LABEL_COLUMN, CONFIDENCE_COLUMN]);
    let ObsValues::Categorical(want) = &predictions(n, 4)[0].values else {
        unreachable!()
    };
    assert_eq!(
        src.cells().column(LABEL_COLUMN),
        Some(&ObsColumn::Text(want.clone()))
    );
}

#[test]
fn a_column_of_the_wrong_length_is_refused() {
    let input = data("baron_mouse_pancreas_822.h5ad");
    let e = add_obs_columns(&input, "baron.h5ad", &predictions(821, 3))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("baron.h5ad:") && e.contains("obs/genecompass_label") && e.contains("822"),
        "{e}"
    );
}

#[test]
fn bad_names_are_refused() {
    let input = data("baron_mouse_pancreas_822.h5ad");
    for name in ["", "a/b", "_index", "__categories"] {
        let cols = [NewObsColumn {
            name: name.into(),
            values: ObsValues::Float32(vec![0.0; 822]),
        }];
        assert!(add_obs_columns(&input, "baron", &cols).is_err(), "{name:?}");
    }
}

#[test]
fn files_that_are_not_current_h5ad_are_refused_with_the_fix() {
    let cols = predictions(700, 3);
    let e = add_obs_columns(b"not an hdf5 file at all", "x.h5ad", &cols)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an HDF5 file"), "{e}");
    let mut truncated = data("baron_mouse_pancreas_822.h5ad");
    truncated.truncate(2000);
    assert!(add_obs_columns(&truncated, "t.h5ad", &cols).is_err());
    let e = add_obs_columns(&data("pbmc68k_reduced.h5ad"), "pbmc.h5ad", &cols)
        .unwrap_err()
        .to_string();
    assert!(e.contains("pre-0.7") && e.contains("write_h5ad"), "{e}");
    let tenx = format!("{DIR}../10x/3.0.0/filtered_feature_bc_matrix.h5");
    let tenx = std::fs::read(&tenx).unwrap_or_else(|e| panic!("{tenx}: {e}"));
    let e = add_obs_columns(&tenx, "10x.h5", &cols)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an AnnData"), "{e}");
}

#[test]
fn prediction_columns_mark_filtered_cells() {
    let cols = prediction_columns(&[Some(("beta", 0.9)), None]);
    assert_eq!(cols[0].name, LABEL_COLUMN);
    assert_eq!(
        cols[0].values,
        ObsValues::Categorical(vec!["beta".into(), FILTERED_LABEL.into()])
    );
    let ObsValues::Float32(c) = &cols[1].values else {
        panic!("not float")
    };
    assert_eq!(c[0], 0.9);
    assert!(c[1].is_nan());
}

#[test]
fn corrupt_metadata_gives_errors_not_panics() {
    // Every byte of the superblock, the root's `obs` entry and the obs header, set to 0x00 and
    // 0xff in turn: the writer may succeed or fail, but must not panic or allocate wildly.
    let input = data("wu2020_tcells_200_old_schema_v0_6.h5ad");
    let img = Image {
        b: &input,
        name: "wu",
    };
    let sb = img.superblock().unwrap();
    let links = img.links("/", &img.messages(sb.root).unwrap()).unwrap();
    let obs = links.iter().find(|l| l.name == "obs").unwrap();
    let mut spots: Vec<usize> = (0..96)
        .chain(obs.addr_field - 8..obs.addr_field + 32)
        .collect();
    for m in img.messages(obs.target).unwrap() {
        spots.extend(m.body.start.saturating_sub(8)..m.body.end);
    }
    let cols = predictions(200, 3);
    let mut bytes = input.clone();
    for &i in &spots {
        for v in [0x00, 0xff] {
            let old = bytes[i];
            bytes[i] = v;
            let _ = add_obs_columns(&bytes, "corrupt.h5ad", &cols);
            bytes[i] = old;
        }
    }
    for cut in (0..input.len()).step_by(input.len() / 50) {
        assert!(
            add_obs_columns(&input[..cut], "cut.h5ad", &cols).is_err(),
            "cut at {cut}"
        );
    }
}
