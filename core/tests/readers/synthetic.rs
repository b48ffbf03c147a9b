//! An h5ad written by hdf5-pure: CSC X, LZF layer, dense raw/X.

use super::*;

// ---------------------------------------------------------------- synthetic h5ad: CSC, layers, LZF

/// An h5ad written by hdf5-pure from the first 30 cells × 500 genes of wu2020: `X` = log1p as
/// CSC (gzip), `layers/counts` = counts as CSR (LZF), `raw/X` = counts as dense.
fn synthetic_h5ad() -> (Vec<u8>, Vec<Vec<f32>>) {
    use hdf5_pure::{AttrValue, FileBuilder};
    let (cells, genes, rows) = wu_dense(30, 500);
    let (nc, ng) = (rows.len(), genes.len());
    let enc = |t: &str| AttrValue::String(t.to_string());
    let shape = AttrValue::I64Array(vec![nc as i64, ng as i64]);
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", enc("anndata"));
    // CSC of log1p values.
    let (mut d, mut ix, mut ip) = (vec![], vec![], vec![0i32]);
    for g in 0..ng {
        for (c, r) in rows.iter().enumerate() {
            if r[g] != 0.0 {
                d.push(r[g].ln_1p());
                ix.push(c as i32);
            }
        }
        ip.push(d.len() as i32);
    }
    let mut x = b.create_group("X");
    x.set_attr("encoding-type", enc("csc_matrix"));
    x.set_attr("shape", shape.clone());
    x.create_dataset("data")
        .with_f32_data(&d)
        .with_chunks(&[97])
        .with_deflate(4);
    x.create_dataset("indices")
        .with_i32_data(&ix)
        .with_chunks(&[97])
        .with_deflate(4);
    x.create_dataset("indptr").with_i32_data(&ip);
    b.add_group(x.finish());
    // CSR counts, LZF.
    let (mut d, mut ix, mut ip) = (vec![], vec![], vec![0i64]);
    for r in &rows {
        for (g, &v) in r.iter().enumerate() {
            if v != 0.0 {
                d.push(v);
                ix.push(g as i64);
            }
        }
        ip.push(d.len() as i64);
    }
    let mut layers = b.create_group("layers");
    let mut counts = layers.create_group("counts");
    counts.set_attr("encoding-type", enc("csr_matrix"));
    counts.set_attr("shape", shape);
    counts
        .create_dataset("data")
        .with_f32_data(&d)
        .with_chunks(&[50])
        .with_lzf();
    counts
        .create_dataset("indices")
        .with_i64_data(&ix)
        .with_chunks(&[50])
        .with_lzf();
    counts
        .create_dataset("indptr")
        .with_i64_data(&ip)
        .with_chunks(&[8])
        .with_lzf();
    layers.add_group(counts.finish());
    b.add_group(layers.finish());
    // raw/X dense + raw/var.
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let gnames: Vec<&str> = genes.iter().map(String::as_str).collect();
    let mut raw = b.create_group("raw");
    raw.create_dataset("X")
        .with_f32_data(&flat)
        .with_shape(&[nc as u64, ng as u64])
        .with_chunks(&[7, 100])
        .with_deflate(1);
    let mut rv = raw.create_group("var");
    rv.set_attr("_index", enc("_index"));
    rv.create_dataset("_index").with_vlen_strings(&gnames);
    raw.add_group(rv.finish());
    b.add_group(raw.finish());
    // obs with a categorical, var.
    let cnames: Vec<&str> = cells.iter().map(String::as_str).collect();
    let mut obs = b.create_group("obs");
    obs.set_attr("_index", enc("_index"));
    obs.set_attr("encoding-type", enc("dataframe"));
    obs.create_dataset("_index").with_vlen_strings(&cnames);
    let mut cat = obs.create_group("half");
    cat.set_attr("encoding-type", enc("categorical"));
    cat.create_dataset("categories")
        .with_vlen_strings(&["first", "second"]);
    let codes: Vec<i8> = (0..nc)
        .map(|i| {
            if i < 10 {
                0
            } else if i < 29 {
                1
            } else {
                -1
            }
        })
        .collect();
    cat.create_dataset("codes").with_i8_data(&codes);
    obs.add_group(cat.finish());
    b.add_group(obs.finish());
    let mut var = b.create_group("var");
    var.set_attr("_index", enc("_index"));
    var.create_dataset("_index").with_vlen_strings(&gnames);
    b.add_group(var.finish());
    (b.finish().unwrap(), rows)
}

#[test]
fn csc_layers_lzf_and_matrix_choice() {
    let (bytes, rows) = synthetic_h5ad();
    // Auto skips the log1p X and takes raw/X (first raw-count matrix in X, raw/X, layers order).
    let auto = open_h5ad_bytes(bytes.clone(), "syn.h5ad", MatrixChoice::Auto).unwrap();
    assert_eq!(auto.info().matrix_path, "raw/X");
    let mut auto = open_h5ad_bytes(
        bytes.clone(),
        "syn.h5ad",
        MatrixChoice::Layer("counts".into()),
    )
    .unwrap();
    assert_eq!(auto.info().matrix_path, "layers/counts");
    assert!(auto.warnings().is_empty(), "{:?}", auto.warnings());
    let kinds: Vec<_> = auto
        .matrices()
        .iter()
        .map(|m| (m.path.as_str(), m.storage, m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("X", Storage::GeneMajor, ValueKind::NonIntegerNonNegative),
            ("raw/X", Storage::Dense, ValueKind::RawCounts),
            ("layers/counts", Storage::CellMajor, ValueKind::RawCounts),
        ]
    );
    assert_eq!(dense_of(&mut auto), rows);
    expect_counts(&auto, "half", "first 10, second 19,  1");
    // CSC X delivered as cell chunks.
    let mut x = open_h5ad_bytes(bytes.clone(), "syn.h5ad", MatrixChoice::X).unwrap();
    assert!(x.info().format.contains("CSC"), "{}", x.info().format);
    let want: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.ln_1p()).collect())
        .collect();
    assert_eq!(dense_of(&mut x), want);
    assert!(x.warnings().iter().any(|w| w.contains("raw counts")));
    let mut raw = open_h5ad_bytes(bytes.clone(), "syn.h5ad", MatrixChoice::RawX).unwrap();
    assert_eq!(dense_of(&mut raw), rows);
    let err = open_h5ad_bytes(bytes, "syn.h5ad", MatrixChoice::Layer("spliced".into()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("syn.h5ad")
            && err.contains("spliced")
            && err.contains("layers/counts")
            && err.contains("raw/X"),
        "{err}"
    );
}
