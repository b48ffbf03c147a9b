//! In-memory cells × genes CSR, the [`CellSource`] over it, and shared checks used by every
//! reader (value kind, duplicate gene names, chunk validation).

use std::collections::HashMap;

use super::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo};

/// How the stored values look, judged on a sample of cells.
///
/// GeneCompass ranks genes by normalised counts, so it needs raw counts; the other kinds tell the
/// user which matrix to pick instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Non-negative integers (UMI / read counts), possibly stored as floats.
    RawCounts,
    /// Non-negative with fractional values: probably normalised / log1p data.
    NonIntegerNonNegative,
    /// Some values are negative: scaled (z-scored) or otherwise transformed data.
    HasNegative,
    /// The sample has no stored non-zero values, so nothing can be said.
    Empty,
}

impl ValueKind {
    /// A short phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::RawCounts => "raw counts (non-negative integers)",
            ValueKind::NonIntegerNonNegative => {
                "non-integer, non-negative values (normalised / log-transformed?)"
            }
            ValueKind::HasNegative => "negative values (scaled / z-scored?)",
            ValueKind::Empty => "no non-zero values in the sample",
        }
    }
}

/// Classifies the values of a sample chunk (see [`ValueKind`]); NaN and infinities count as
/// non-integer.
pub fn value_kind(sample: &CsrChunk) -> ValueKind {
    let mut any = false;
    let mut fractional = false;
    for &v in &sample.data {
        if v == 0.0 {
            continue;
        }
        any = true;
        if v < 0.0 {
            return ValueKind::HasNegative;
        }
        if !v.is_finite() || v.fract() != 0.0 {
            fractional = true;
        }
    }
    match (any, fractional) {
        (false, _) => ValueKind::Empty,
        (true, true) => ValueKind::NonIntegerNonNegative,
        (true, false) => ValueKind::RawCounts,
    }
}

/// Warnings for gene names that occur more than once. Duplicates are kept (each column stays
/// its own gene, as AnnData allows); what to do with them is the tokenizer's decision.
pub fn duplicate_name_warnings(file: &str, what: &str, names: &[String]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for n in names {
        *seen.entry(n.as_str()).or_default() += 1;
    }
    let mut dups: Vec<(&str, usize)> = seen.into_iter().filter(|(_, c)| *c > 1).collect();
    if dups.is_empty() {
        return Vec::new();
    }
    dups.sort();
    let shown: Vec<String> = dups
        .iter()
        .take(10)
        .map(|(n, c)| format!("{n} ×{c}"))
        .collect();
    vec![format!(
        "{file}: {} {what} names occur more than once ({}{}); all columns are kept, \
         so the same gene may appear twice in a cell",
        dups.len(),
        shown.join(", "),
        if dups.len() > 10 { ", …" } else { "" }
    )]
}

/// Checks a chunk a reader produced against the declared gene count.
pub(crate) fn check_chunk(
    file: &str,
    field: &str,
    chunk: &CsrChunk,
    n_genes: usize,
) -> Result<(), DataError> {
    check_chunk_lengths(file, field, chunk)?;
    if let Some(&bad) = chunk.indices.iter().find(|&&i| i as usize >= n_genes) {
        return Err(format_err(
            file,
            format!(
                "`{field}`: gene index {bad} is out of range for {n_genes} genes; \
                 the matrix does not match its gene list"
            ),
        ));
    }
    Ok(())
}

/// [`check_chunk`] without the gene indices (for readers that checked them as they decoded).
pub(crate) fn check_chunk_lengths(
    file: &str,
    field: &str,
    chunk: &CsrChunk,
) -> Result<(), DataError> {
    let nnz = chunk.indices.len();
    if chunk.data.len() != nnz || chunk.indptr.last().copied().unwrap_or(0) != nnz {
        return Err(format_err(
            file,
            format!("`{field}`: data, indices and indptr lengths disagree; the file is corrupt"),
        ));
    }
    if chunk.indptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(format_err(
            file,
            format!("`{field}`: indptr decreases; the file is corrupt"),
        ));
    }
    Ok(())
}

/// Shorthand for a [`DataError::Format`].
pub(crate) fn format_err(file: &str, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: file.to_string(),
        message: message.into(),
    }
}

/// A whole cells × genes matrix held in memory in CSR form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemCsr {
    /// `n_cells + 1` offsets.
    pub indptr: Vec<usize>,
    /// Gene index per entry.
    pub indices: Vec<u32>,
    /// Value per entry.
    pub data: Vec<f32>,
}

impl MemCsr {
    /// Builds cell-major CSR from (cell, gene, value) triplets in any order; zero values dropped.
    pub fn from_triplets(n_cells: usize, mut triplets: Vec<(u32, u32, f32)>) -> MemCsr {
        triplets.retain(|t| t.2 != 0.0);
        triplets.sort_unstable_by_key(|t| (t.0, t.1));
        let mut indptr = vec![0usize; n_cells + 1];
        for t in &triplets {
            indptr[t.0 as usize + 1] += 1;
        }
        for i in 0..n_cells {
            indptr[i + 1] += indptr[i];
        }
        MemCsr {
            indptr,
            indices: triplets.iter().map(|t| t.1).collect(),
            data: triplets.iter().map(|t| t.2).collect(),
        }
    }

    /// Number of rows (cells).
    pub fn n_cells(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Cells `start..start+count` as a chunk (clamped to the end).
    pub fn slice(&self, start: usize, count: usize) -> CsrChunk {
        let end = (start + count).min(self.n_cells());
        let (a, b) = (self.indptr[start], self.indptr[end]);
        CsrChunk {
            first_cell: start,
            indptr: self.indptr[start..=end].iter().map(|p| p - a).collect(),
            indices: self.indices[a..b].to_vec(),
            data: self.data[a..b].to_vec(),
        }
    }
}

/// A [`CellSource`] over a matrix held in memory (MTX and CSV readers, transposed CSC).
#[derive(Debug, Clone)]
pub struct MemSource {
    pub(crate) info: MatrixInfo,
    pub(crate) genes: GeneColumns,
    pub(crate) cells: CellTable,
    pub(crate) matrix: MemCsr,
    pub(crate) warnings: Vec<String>,
    pub(crate) pos: usize,
}

impl MemSource {
    /// The whole matrix.
    pub fn matrix(&self) -> &MemCsr {
        &self.matrix
    }
}

impl CellSource for MemSource {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }
    fn genes(&self) -> &GeneColumns {
        &self.genes
    }
    fn cells(&self) -> &CellTable {
        &self.cells
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        if self.pos >= self.matrix.n_cells() {
            return Ok(None);
        }
        let chunk = self.matrix.slice(self.pos, max_cells.max(1));
        self.pos += chunk.n_cells();
        Ok(Some(chunk))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pos = 0;
        Ok(())
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn stored_entries(&self) -> Option<usize> {
        Some(self.matrix.indices.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_kinds() {
        let mk = |data: Vec<f32>| CsrChunk {
            first_cell: 0,
            indptr: vec![0, data.len()],
            indices: (0..data.len() as u32).collect(),
            data,
        };
        assert_eq!(value_kind(&mk(vec![1.0, 3.0])), ValueKind::RawCounts);
        assert_eq!(
            value_kind(&mk(vec![1.0, 0.5])),
            ValueKind::NonIntegerNonNegative
        );
        assert_eq!(value_kind(&mk(vec![1.0, -0.5])), ValueKind::HasNegative);
        assert_eq!(value_kind(&mk(vec![])), ValueKind::Empty);
        assert_eq!(value_kind(&mk(vec![0.0])), ValueKind::Empty);
    }

    #[test]
    fn triplets_to_csr_and_slices() {
        let m = MemCsr::from_triplets(3, vec![(2, 1, 5.0), (0, 3, 1.0), (0, 0, 2.0), (1, 2, 0.0)]);
        assert_eq!(m.indptr, vec![0, 2, 2, 3]);
        assert_eq!(m.indices, vec![0, 3, 1]);
        let s = m.slice(1, 5);
        assert_eq!(s.first_cell, 1);
        assert_eq!(s.indptr, vec![0, 0, 1]);
        assert_eq!(s.data, vec![5.0]);
    }

    #[test]
    fn duplicates_are_reported() {
        let names: Vec<String> = ["A", "B", "A"].iter().map(|s| s.to_string()).collect();
        let w = duplicate_name_warnings("f", "gene", &names);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("A ×2"), "{w:?}");
        assert!(duplicate_name_warnings("f", "gene", &names[..2]).is_empty());
    }
}
