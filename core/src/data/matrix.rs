//! The common shape every single-cell reader produces: genes, per-cell metadata and
//! cells × genes counts delivered in chunks, so that a file larger than memory can be
//! tokenized with memory bounded by the chunk size.

use super::DataError;

/// Cells × genes values for a contiguous range of cells, in CSR form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsrChunk {
    /// Index of the first cell of this chunk in the whole file.
    pub first_cell: usize,
    /// `indptr[i]..indptr[i+1]` are the entries of cell `first_cell + i`; `len = n_cells + 1`.
    pub indptr: Vec<usize>,
    /// Gene (column) index of each stored entry.
    pub indices: Vec<u32>,
    /// Stored values (counts for raw data), same length as `indices`.
    pub data: Vec<f32>,
}

impl CsrChunk {
    /// Number of cells in the chunk.
    pub fn n_cells(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The (gene index, value) entries of the `i`-th cell of the chunk.
    pub fn cell(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }
}

/// The genes (columns) of a matrix, as the file names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneColumns {
    /// The primary name of each gene (`var` index, `features.tsv` column 2 or 1, CSV header).
    pub names: Vec<String>,
    /// A second identifier column when the file has one (`var.gene_ids`, 10x feature id).
    pub ids: Option<Vec<String>>,
    /// The 10x `feature_type` of each gene when known (only "Gene Expression" rows are genes).
    pub feature_types: Option<Vec<String>>,
    /// The 10x `genome` of each gene for multi-genome files.
    pub genomes: Option<Vec<String>>,
}

/// One per-cell metadata column (`obs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ObsColumn {
    /// Categorical or string column: one value per cell.
    Text(Vec<String>),
    /// Numeric column.
    Number(Vec<f64>),
}

/// Per-cell metadata: cell names (barcodes) and columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellTable {
    /// Cell names / barcodes, one per cell.
    pub names: Vec<String>,
    /// Metadata columns in file order.
    pub columns: Vec<(String, ObsColumn)>,
}

impl CellTable {
    /// Looks up a column by name.
    pub fn column(&self, name: &str) -> Option<&ObsColumn> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

/// Which matrix of a file was read, and how its values look.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixInfo {
    /// Human-readable format, e.g. "h5ad (anndata 0.8 schema), X as CSR".
    pub format: String,
    /// Where in the file the values came from, e.g. "X", "raw/X", "layers/counts".
    pub matrix_path: String,
    /// Number of cells (rows).
    pub n_cells: usize,
    /// Number of genes (columns).
    pub n_genes: usize,
}

/// A source of cells: everything a tokenizer needs from a file, read chunk by chunk.
///
/// Readers implement it over any byte source, so the browser parses an uploaded file with the
/// same code as the CLI.
pub trait CellSource {
    /// What was read.
    fn info(&self) -> &MatrixInfo;
    /// The gene columns.
    fn genes(&self) -> &GeneColumns;
    /// Per-cell metadata.
    fn cells(&self) -> &CellTable;
    /// The next chunk of at most `max_cells` cells, or `None` at the end.
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError>;
    /// Starts again from the first cell (tokenization makes two passes: QC statistics, then tokens).
    fn rewind(&mut self) -> Result<(), DataError>;
    /// Non-fatal problems found while opening (duplicate gene names, dropped non-gene features,
    /// a matrix that does not look like raw counts). Shown to the user; never silently fixed.
    fn warnings(&self) -> &[String] {
        &[]
    }
    /// Hands back a chunk the caller is done with, so that a reader can fill its buffers again
    /// instead of allocating and zeroing new ones (two 4 MB buffers per 1,024 cells, twice per
    /// tokenization). Dropping a chunk instead is always correct.
    fn recycle(&mut self, chunk: CsrChunk) {
        drop(chunk);
    }
    /// How many entries the file stores for the matrix, where it says so before it is read
    /// (sparse h5ad and 10x `.h5` matrices; a bound on what the chunks hold, as a reader may
    /// drop some): [`super::Replay`] then knows up front whether a pass fits its budget,
    /// instead of copying chunks until it finds out.
    fn stored_entries(&self) -> Option<usize> {
        None
    }
}

impl<T: CellSource + ?Sized> CellSource for Box<T> {
    fn info(&self) -> &MatrixInfo {
        (**self).info()
    }
    fn genes(&self) -> &GeneColumns {
        (**self).genes()
    }
    fn cells(&self) -> &CellTable {
        (**self).cells()
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        (**self).next_chunk(max_cells)
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        (**self).rewind()
    }
    fn warnings(&self) -> &[String] {
        (**self).warnings()
    }
    fn recycle(&mut self, chunk: CsrChunk) {
        (**self).recycle(chunk)
    }
    fn stored_entries(&self) -> Option<usize> {
        (**self).stored_entries()
    }
}
