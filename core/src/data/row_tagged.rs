//! Carrying each cell's file row through tokenization. Tokenized cells carry no index and the
//! tokenizer drops cells (QC, no vocabulary gene), so the CLI's `classify --write-h5ad` and
//! the browser both tag every cell with its row as a synthetic label column and read it back:
//! predictions then map to file rows even when cell names repeat.

use super::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo, ObsColumn};
use crate::cells::{CellSet, TokenizedCell};

/// A source whose cell table gains a column holding each cell's file row.
pub struct RowTagged {
    inner: Box<dyn CellSource>,
    /// The file's own table (what the user sees), without the synthetic column.
    file: CellTable,
    /// `file` plus [`RowTagged::COLUMN`] (what the tokenizer sees).
    tagged: CellTable,
}

impl RowTagged {
    /// Name of the synthetic `obs` column; tokenize with it as the label column.
    pub const COLUMN: &'static str = "__genecompass_row__";

    /// Wraps `inner`.
    pub fn new(inner: Box<dyn CellSource>) -> Self {
        let file = inner.cells().clone();
        let mut tagged = file.clone();
        let rows = (0..inner.info().n_cells).map(|i| i.to_string()).collect();
        tagged
            .columns
            .push((Self::COLUMN.into(), ObsColumn::Text(rows)));
        Self {
            inner,
            file,
            tagged,
        }
    }

    /// The file's cell table.
    pub fn file_cells(&self) -> &CellTable {
        &self.file
    }

    /// The file's cell table, dropping the reader.
    pub fn into_file_cells(self) -> CellTable {
        self.file
    }

    /// Takes the row labels the tokenizer passed through (one per kept cell, clearing the
    /// cells' labels); `None` if a cell lost its row (never, as every label is passed through).
    pub fn take_rows(&self, cells: &mut CellSet) -> Option<Vec<usize>> {
        Self::rows_of(&mut cells.cells)
    }

    /// [`RowTagged::take_rows`] for some of the cells (a chunk of a stream).
    pub fn rows_of(cells: &mut [TokenizedCell]) -> Option<Vec<usize>> {
        cells
            .iter_mut()
            .map(|c| c.label.take().and_then(|l| l.parse().ok()))
            .collect()
    }
}

impl CellSource for RowTagged {
    fn info(&self) -> &MatrixInfo {
        self.inner.info()
    }
    fn genes(&self) -> &GeneColumns {
        self.inner.genes()
    }
    fn cells(&self) -> &CellTable {
        &self.tagged
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        self.inner.next_chunk(max_cells)
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.inner.rewind()
    }
    fn warnings(&self) -> &[String] {
        self.inner.warnings()
    }
    fn stored_entries(&self) -> Option<usize> {
        self.inner.stored_entries()
    }
}
