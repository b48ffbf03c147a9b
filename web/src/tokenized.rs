//! An opened file tokenized for a model chunk by chunk: pass 1 (QC, each cell's length) reads
//! the whole file once and keeps a few numbers per cell; pass 2 yields the tokenized cells a
//! chunk at a time. The worker classifies each chunk and drops it, so its memory is bounded by
//! the chunk, not the file (plus the per-cell results).

use genecompass_core::batch::validate_cells;
use genecompass_core::cells::{CellSet, Species, TokenizedCell};
use genecompass_core::data::{CellTable, RowTagged};
use genecompass_core::tokenize::{TokenizeOptions, TokenizePlan, TokenizeStream, plan_tokenize};

use crate::engine::{AnnotateError, Annotator, OpenedFile};
use crate::protocol::QcReport;

/// Cells read from the file per chunk: about 16 MB of tokens at 2,048 genes a cell.
pub const CHUNK_CELLS: usize = 1024;

/// Cells tokenized for a model, with where each came from in the file.
pub struct TokenizedFile {
    /// The cells, in file order.
    pub cells: CellSet,
    /// File row (obs position) of each cell: what maps a prediction back to the file, since
    /// cell names may repeat.
    pub rows: Vec<usize>,
    /// Name of each cell (`cell_ROW` when the file names none).
    pub names: Vec<String>,
    /// What tokenization kept.
    pub qc: QcReport,
    /// Cells (rows) in the file.
    pub n_obs: usize,
    /// The file's cell table (names and metadata columns), for comparing with a label column.
    pub obs: CellTable,
}

/// One chunk of tokenized cells, in file order.
pub struct TokenizedChunk {
    /// The cells.
    pub cells: CellSet,
    /// File row of each cell.
    pub rows: Vec<usize>,
    /// Name of each cell.
    pub names: Vec<String>,
}

/// A file after pass 1: what will be written is known; [`PlannedFile::stream`] tokenizes it.
pub struct PlannedFile {
    source: RowTagged,
    plan: Option<TokenizePlan>,
    opts: TokenizeOptions,
    check: CellCheck,
    /// What tokenization keeps.
    pub qc: QcReport,
    /// Cells (rows) in the file.
    pub n_obs: usize,
    /// Cells that will be tokenized.
    pub cells_out: usize,
    /// Every token a cell can hold (to fold the embedding once).
    pub token_ids: Vec<u32>,
    /// The cells' species.
    pub species: Species,
}

/// What each chunk is checked against before it reaches the model.
#[derive(Clone)]
struct CellCheck {
    file: String,
    model: String,
    vocab_size: usize,
    max_positions: usize,
}

impl OpenedFile {
    /// Pass 1: cell QC and each cell's token count, the official way (QC, median division,
    /// ranking, truncation to the model's position table).
    pub fn plan(self, annotator: &Annotator) -> Result<PlannedFile, AnnotateError> {
        self.plan_chunked(annotator, CHUNK_CELLS)
    }

    /// [`OpenedFile::plan`] reading `chunk_cells` cells at a time.
    pub fn plan_chunked(
        mut self,
        annotator: &Annotator,
        chunk_cells: usize,
    ) -> Result<PlannedFile, AnnotateError> {
        self.check()?;
        let file = self.report.file.clone();
        let opts = TokenizeOptions {
            label_column: Some(RowTagged::COLUMN.into()),
            max_len: Some(annotator.config.max_position_embeddings.min(2048)),
            chunk_cells,
            ..Default::default()
        };
        let plan = plan_tokenize(
            &mut self.source,
            &annotator.vocab,
            &annotator.medians,
            &opts,
        )?;
        let s = plan.summary();
        if s.cells_out == 0 {
            return Err(AnnotateError::NoCells {
                file,
                cells_in: s.qc.cells_in,
            });
        }
        let qc = QcReport {
            cells_in: s.qc.cells_in,
            cells_kept: s.cells_out,
            cells_empty: s.cells_empty,
            cells_truncated: s.cells_truncated,
            count_share: s.genes.matched_count_share,
            genes_used: s.genes_used,
            genes_without_median: s.genes_without_median,
            medians: annotator.has_medians,
            top_unmatched: s.genes.top_unmatched.iter().take(10).cloned().collect(),
        };
        Ok(PlannedFile {
            n_obs: self.report.n_cells,
            cells_out: s.cells_out,
            token_ids: plan.token_ids(),
            species: plan.species(),
            plan: Some(plan),
            opts,
            check: CellCheck {
                file,
                model: annotator.name.clone(),
                vocab_size: annotator.config.vocab_size,
                max_positions: annotator.config.max_position_embeddings,
            },
            qc,
            source: self.source,
        })
    }

    /// Tokenizes every cell into memory (what tests and small callers want; the worker streams
    /// with [`OpenedFile::plan`]).
    pub fn tokenize(self, annotator: &Annotator) -> Result<TokenizedFile, AnnotateError> {
        let mut planned = self.plan(annotator)?;
        let (mut cells, mut rows, mut names) = (Vec::new(), Vec::new(), Vec::new());
        let mut padded_len = None;
        let mut stream = planned.stream()?;
        while let Some(chunk) = stream.next_chunk()? {
            padded_len = chunk.cells.padded_len;
            cells.extend(chunk.cells.cells);
            rows.extend(chunk.rows);
            names.extend(chunk.names);
        }
        Ok(TokenizedFile {
            cells: CellSet { cells, padded_len },
            rows,
            names,
            qc: planned.qc,
            n_obs: planned.n_obs,
            obs: planned.source.into_file_cells(),
        })
    }
}

impl PlannedFile {
    /// Pass 2, chunk by chunk. Only one stream per planned file.
    pub fn stream(&mut self) -> Result<ChunkStream<'_>, AnnotateError> {
        let plan = self.plan.take().ok_or_else(|| AnnotateError::Model {
            name: self.check.model.clone(),
            message: "internal error: the file was already tokenized".into(),
        })?;
        let Self {
            source,
            opts,
            check,
            ..
        } = self;
        // The file's names, cloned out of the reader the stream borrows.
        let names = source.file_cells().names.clone();
        Ok(ChunkStream {
            inner: TokenizeStream::new(source, plan, opts)?,
            names,
            padded_len: opts.max_len,
            check: check.clone(),
        })
    }

    /// The file's cell table (names and metadata columns), dropping the reader.
    pub fn into_obs(self) -> CellTable {
        self.source.into_file_cells()
    }
}

/// Pass 2 of a [`PlannedFile`].
pub struct ChunkStream<'a> {
    inner: TokenizeStream<'a>,
    names: Vec<String>,
    padded_len: Option<usize>,
    check: CellCheck,
}

impl ChunkStream<'_> {
    /// The next chunk's cells (checked to fit the model), or `None` at the end of the file.
    /// Chunks whose cells QC dropped are skipped.
    pub fn next_chunk(&mut self) -> Result<Option<TokenizedChunk>, AnnotateError> {
        loop {
            let Some(mut cells) = self.inner.next_cells()? else {
                return Ok(None);
            };
            if cells.is_empty() {
                continue;
            }
            return self.chunk(&mut cells).map(Some);
        }
    }

    fn chunk(&self, cells: &mut Vec<TokenizedCell>) -> Result<TokenizedChunk, AnnotateError> {
        let c = &self.check;
        let lost = || AnnotateError::Model {
            name: c.model.clone(),
            message: "internal error: a tokenized cell lost its file row".into(),
        };
        let rows = RowTagged::rows_of(cells).ok_or_else(lost)?;
        let names = rows
            .iter()
            .map(|&r| {
                self.names
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| format!("cell_{r}"))
            })
            .collect();
        let cells = CellSet {
            cells: std::mem::take(cells),
            padded_len: self.padded_len,
        };
        validate_cells(&cells, &c.file, c.vocab_size, c.max_positions).map_err(|e| {
            AnnotateError::Model {
                name: c.model.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(TokenizedChunk { cells, rows, names })
    }
}
