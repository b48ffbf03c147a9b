//! Training inputs: a count matrix (h5ad, 10x, CSV…) tokenized on the fly, or an official
//! tokenized-dataset folder, plus the sparse features of the logistic-regression baseline.
//!
//! The count matrix is read into memory once. Cell QC runs on the whole file (it does not
//! depend on medians); splits are drawn on the cells QC keeps; medians that are not given are
//! computed from the **training split only** (z-score QC off, since those cells already passed
//! it), then every selected cell is tokenized with them. A cell's source row travels through
//! the tokenizer in a synthetic label column, so the baseline sees exactly the same cells.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use genecompass_core::cells::CellSet;
use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::data::{
    CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixChoice, MatrixInfo, MemCsr,
    ObsColumn, open_path,
};
use genecompass_core::tokenize::{
    GeneMatchOptions, GeneMedians, MedianMode, TokenDictionary, TokenizeOptions, match_genes,
    tokenize,
};

use super::baseline::SparseRow;

const ROW_COLUMN: &str = "__genecompass_row";

/// A count matrix held in memory, usable as a [`CellSource`] (whole or a row subset).
#[derive(Debug, Clone)]
pub struct MemCells {
    info: MatrixInfo,
    genes: GeneColumns,
    table: CellTable,
    matrix: MemCsr,
    pos: usize,
}

impl CellSource for MemCells {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }
    fn genes(&self) -> &GeneColumns {
        &self.genes
    }
    fn cells(&self) -> &CellTable {
        &self.table
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        if self.pos >= self.matrix.n_cells() {
            return Ok(None);
        }
        let chunk = self.matrix.slice(self.pos, max_cells);
        self.pos += chunk.n_cells();
        Ok(Some(chunk))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pos = 0;
        Ok(())
    }
}

impl MemCells {
    /// Reads every cell of a file; the cell table gets a synthetic row-index column.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let mut src = open_path(path, MatrixChoice::Auto)
            .with_context(|| format!("opening {}", path.display()))?;
        for w in src.warnings() {
            tracing::warn!("{}: {w}", path.display());
        }
        let mut m = MemCsr {
            indptr: vec![0],
            ..Default::default()
        };
        while let Some(c) = src.next_chunk(4096)? {
            let base = *m.indptr.last().expect("indptr starts with 0");
            m.indptr.extend(c.indptr[1..].iter().map(|p| base + p));
            m.indices.extend_from_slice(&c.indices);
            m.data.extend_from_slice(&c.data);
        }
        let mut table = src.cells().clone();
        let n = m.n_cells();
        table.columns.push((
            ROW_COLUMN.into(),
            ObsColumn::Text((0..n).map(|i| i.to_string()).collect()),
        ));
        Ok(Self {
            info: src.info().clone(),
            genes: src.genes().clone(),
            table,
            matrix: m,
            pos: 0,
        })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.matrix.n_cells()
    }

    /// A text view of an `obs` column, or an error listing the columns.
    pub fn column(&self, name: &str, path: &Path) -> anyhow::Result<Vec<String>> {
        match self.table.column(name) {
            Some(ObsColumn::Text(v)) => Ok(v.clone()),
            Some(ObsColumn::Number(v)) => Ok(v.iter().map(|x| x.to_string()).collect()),
            None => bail!(
                "{}: no cell metadata column {name:?}; available columns: {:?}",
                path.display(),
                self.table
                    .columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| *n != ROW_COLUMN)
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// The cells `rows` (in that order) as a new source.
    pub fn subset(&self, rows: &[usize]) -> Self {
        let mut triplets = Vec::new();
        for (r, &row) in rows.iter().enumerate() {
            let c = self.matrix.slice(row, 1);
            let (idx, val) = c.cell(0);
            triplets.extend(idx.iter().zip(val).map(|(&j, &v)| (r as u32, j, v)));
        }
        let table = CellTable {
            names: rows
                .iter()
                .filter_map(|&r| self.table.names.get(r).cloned())
                .collect(),
            columns: self
                .table
                .columns
                .iter()
                .map(|(n, c)| {
                    let c = match c {
                        ObsColumn::Text(v) => {
                            ObsColumn::Text(rows.iter().map(|&r| v[r].clone()).collect())
                        }
                        ObsColumn::Number(v) => {
                            ObsColumn::Number(rows.iter().map(|&r| v[r]).collect())
                        }
                    };
                    (n.clone(), c)
                })
                .collect(),
        };
        let mut info = self.info.clone();
        info.n_cells = rows.len();
        Self {
            info,
            genes: self.genes.clone(),
            table,
            matrix: MemCsr::from_triplets(rows.len(), triplets),
            pos: 0,
        }
    }

    /// A vocabulary of the file's genes: `<pad>`, `<mask>`, then each gene's Ensembl id (symbols
    /// are mapped with the embedded gene tables), in column order.
    pub fn build_vocab(&self) -> anyhow::Result<TokenDictionary> {
        let empty = TokenDictionary::build(Vec::new());
        let gm = match_genes(&self.genes, &empty, &GeneMatchOptions::default())?;
        let v = TokenDictionary::build(gm.ensembl.into_iter().flatten());
        if v.len() <= 2 {
            bail!(
                "{}: no gene could be mapped to an Ensembl id, so no vocabulary can be built",
                self.info.matrix_path
            );
        }
        Ok(v)
    }

    /// Tokenizes `rows`; returns the cells and the source row of each (cells QC or the vocabulary
    /// filter removes are absent).
    pub fn tokenize_rows(
        &self,
        rows: Option<&[usize]>,
        vocab: &TokenDictionary,
        medians: &GeneMedians,
        opts: &TokenizeOptions,
    ) -> anyhow::Result<(CellSet, Vec<usize>)> {
        let mut src = match rows {
            Some(r) => self.subset(r),
            None => self.clone(),
        };
        let mut o = opts.clone();
        o.label_column = Some(ROW_COLUMN.into());
        let (mut cells, summary) = tokenize(&mut src, vocab, medians, &o)?;
        tracing::info!(
            "tokenized {} of {} cells ({} genes used, {} matched to the vocabulary)",
            summary.cells_out,
            src.n_cells(),
            summary.genes_used,
            summary.genes.matched_to_vocabulary
        );
        let mut out_rows = Vec::with_capacity(cells.len());
        for c in &mut cells.cells {
            let row: usize = c
                .label
                .take()
                .and_then(|l| l.parse().ok())
                .context("row column lost")?;
            out_rows.push(row);
        }
        Ok((cells, out_rows))
    }

    /// Medians (of raw counts, as the default tokenization divides raw counts) over `rows`.
    pub fn medians(
        &self,
        rows: &[usize],
        vocab: &TokenDictionary,
        opts: &TokenizeOptions,
    ) -> anyhow::Result<GeneMedians> {
        let mut o = opts.clone();
        o.qc.zscore_filter = false;
        let (m, _) = genecompass_core::tokenize::pipeline::compute_medians(
            &mut self.subset(rows),
            vocab,
            &o,
            None,
            MedianMode::Exact,
        )?;
        Ok(m)
    }

    /// Baseline features of a row: `log1p(count / total · 1e4)` over all genes of the file.
    pub fn log_normalised(&self, row: usize) -> SparseRow {
        let c = self.matrix.slice(row, 1);
        let (idx, val) = c.cell(0);
        let total: f64 = val.iter().map(|&v| v as f64).sum();
        idx.iter()
            .zip(val)
            .map(|(&j, &v)| (j, (v as f64 / total.max(1e-12) * 1e4).ln_1p() as f32))
            .collect()
    }
}

/// Whether `path` is an official tokenized-dataset folder (`save_to_disk` layout).
pub fn is_tokenized_folder(path: &Path) -> bool {
    path.is_dir() && (path.join("state.json").is_file() || path.join("dataset_info.json").is_file())
}

/// Reads a tokenized folder with labels; cells without a label are dropped.
pub fn read_tokenized(path: &Path, label_column: Option<&str>) -> anyhow::Result<CellSet> {
    read_hf_dataset(path, label_column)
        .with_context(|| format!("reading tokenized dataset folder {}", path.display()))
}

/// Baseline features of a tokenized cell: its values scattered by token id.
pub fn token_features(cell: &genecompass_core::cells::TokenizedCell) -> SparseRow {
    cell.input_ids
        .iter()
        .zip(&cell.values)
        .map(|(&t, &v)| (t, v))
        .collect()
}

/// Class names (sorted) and each label's index.
pub fn label_map(labels: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let ids = labels.iter().map(|l| index[l.as_str()]).collect();
    (names, ids)
}
