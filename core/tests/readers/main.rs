//! Reads every real file in `shared/data/h5ad` and `shared/data/10x` and checks the numbers
//! documented in `shared/data/README.md`; plus CSV/TSV tables cut from a real file and the
//! error paths (truncated, corrupt, inconsistent, not single-cell data).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use genecompass_core::data::*;

mod errors;
mod h5ad_files;
mod inconsistent;
mod sources;
mod synthetic;
mod tables;
mod tenx;

pub(crate) fn shared(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(rel)
}

/// Whole-matrix statistics gathered chunk by chunk.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) n_cells: usize,
    pub(crate) nnz: usize,
    pub(crate) sum: f64,
    pub(crate) min: f32,
    pub(crate) max: f32,
    pub(crate) integer: bool,
    /// Sum of values per cell, for cross-checking readers against each other.
    pub(crate) cell_sums: Vec<f64>,
}

pub(crate) fn stats(src: &mut dyn CellSource, chunk: usize) -> Stats {
    src.rewind().unwrap();
    let n_genes = src.info().n_genes;
    let mut s = Stats {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        integer: true,
        ..Default::default()
    };
    while let Some(c) = src.next_chunk(chunk).unwrap() {
        assert_eq!(c.first_cell, s.n_cells, "chunks must be contiguous");
        assert!(c.n_cells() <= chunk && c.n_cells() > 0);
        for i in 0..c.n_cells() {
            let (idx, val) = c.cell(i);
            assert!(idx.iter().all(|&g| (g as usize) < n_genes));
            s.cell_sums.push(val.iter().map(|&v| v as f64).sum());
        }
        for &v in &c.data {
            if v == 0.0 {
                continue;
            }
            s.nnz += 1;
            s.sum += v as f64;
            s.min = s.min.min(v);
            s.max = s.max.max(v);
            s.integer &= v.fract() == 0.0;
        }
        s.n_cells += c.n_cells();
    }
    if s.nnz < s.n_cells * n_genes {
        s.min = s.min.min(0.0);
        s.max = s.max.max(0.0);
    }
    assert_eq!(s.n_cells, src.info().n_cells);
    s
}

pub(crate) fn label_counts(src: &dyn CellSource, col: &str) -> HashMap<String, usize> {
    let Some(ObsColumn::Text(v)) = src.cells().column(col) else {
        panic!(
            "no text column {col}: {:?}",
            src.cells().columns.iter().map(|c| &c.0).collect::<Vec<_>>()
        )
    };
    let mut m = HashMap::new();
    for x in v {
        *m.entry(x.clone()).or_default() += 1;
    }
    m
}

pub(crate) fn expect_counts(src: &dyn CellSource, col: &str, expected: &str) {
    let got = label_counts(src, col);
    let mut want = HashMap::new();
    for item in expected.split(", ") {
        let (k, v) = item.rsplit_once(' ').unwrap();
        want.insert(k.to_string(), v.parse::<usize>().unwrap());
    }
    assert_eq!(got, want, "label counts of {col}");
}

pub(crate) fn h5ad(rel: &str, choice: MatrixChoice) -> H5adSource {
    let p = shared(rel);
    open_h5ad(&p, choice).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn all_stats(src: &mut dyn CellSource) -> Stats {
    stats(src, 97)
}

/// The first `nc` cells × `ng` genes of wu2020 as dense rows.
pub(crate) fn wu_dense(nc: usize, ng: usize) -> (Vec<String>, Vec<String>, Vec<Vec<f32>>) {
    let mut s = h5ad("h5ad/wu2020_tcells_200.h5ad", MatrixChoice::X);
    let c = s.next_chunk(nc).unwrap().unwrap();
    let mut rows = vec![vec![0f32; ng]; nc];
    for (i, row) in rows.iter_mut().enumerate() {
        let (idx, val) = c.cell(i);
        for (&g, &v) in idx.iter().zip(val) {
            if (g as usize) < ng {
                row[g as usize] = v;
            }
        }
    }
    (
        s.cells().names[..nc].to_vec(),
        s.genes().names[..ng].to_vec(),
        rows,
    )
}

pub(crate) fn dense_of(src: &mut dyn CellSource) -> Vec<Vec<f32>> {
    let n = src.info().n_genes;
    let mut out = Vec::new();
    src.rewind().unwrap();
    while let Some(c) = src.next_chunk(7).unwrap() {
        for i in 0..c.n_cells() {
            let mut row = vec![0f32; n];
            let (idx, val) = c.cell(i);
            for (&g, &v) in idx.iter().zip(val) {
                row[g as usize] = v;
            }
            out.push(row);
        }
    }
    out
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A path named `name` in a fresh directory, removed when the directory is dropped.
pub(crate) fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("gc-readers-")
        .tempdir()
        .unwrap();
    let p = d.path().join(name);
    (d, p)
}
