//! Tokenization reads a file twice (QC statistics, then tokens). For a file whose matrix fits
//! in a fixed budget, the second read is served from the chunks the first one decoded, instead
//! of reading and decompressing the file again; larger files are read twice as before, so
//! memory stays bounded by the budget, not the file size.

use super::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo, MemCsr};

/// A [`CellSource`] that keeps what its first full pass read, while that fits in `budget`
/// bytes, and replays it after [`CellSource::rewind`].
pub struct Replay<S> {
    inner: S,
    budget: usize,
    /// The cells read since the last rewind of the inner source, in order from cell 0.
    kept: MemCsr,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the inner source and keeping its chunks.
    Recording,
    /// Reading the inner source; the kept chunks went over the budget (or a pass stopped early).
    Passthrough,
    /// The first pass read every cell and `kept` holds them all.
    Complete,
    /// Serving `kept` from this cell on; the inner source is not read.
    Replaying(usize),
}

/// Bytes of a CSR matrix of `rows` offsets and `entries` values.
fn csr_bytes(rows: usize, entries: usize) -> usize {
    rows * size_of::<usize>() + entries * (size_of::<u32>() + size_of::<f32>())
}

impl<S: CellSource> Replay<S> {
    /// Wraps `inner`, keeping at most `budget` bytes of decoded chunks.
    pub fn new(inner: S, budget: usize) -> Self {
        let mut r = Self {
            inner,
            budget,
            kept: MemCsr::default(),
            state: State::Recording,
        };
        r.state = r.first_state();
        r
    }

    /// How a pass read from the file starts: recording, unless the file says its matrix is
    /// larger than the budget. Finding that out by copying chunks copied the first 128 MiB of
    /// a 1 GB file in each pass, only to drop it (45,000 page faults).
    fn first_state(&self) -> State {
        let rows = self.inner.info().n_cells + 1;
        match self.inner.stored_entries() {
            Some(entries) if csr_bytes(rows, entries) > self.budget => State::Passthrough,
            _ => State::Recording,
        }
    }

    /// True when the next pass will be served from memory.
    pub fn replays(&self) -> bool {
        matches!(self.state, State::Complete | State::Replaying(_))
    }

    /// Appends `c` to what is kept, or drops everything when that would exceed the budget.
    fn record(&mut self, c: &CsrChunk) {
        let k = &self.kept;
        let after = csr_bytes(
            k.indptr.len() + c.indptr.len(),
            k.indices.len() + c.indices.len(),
        );
        if after > self.budget {
            self.kept = MemCsr::default();
            self.state = State::Passthrough;
            return;
        }
        let k = &mut self.kept;
        let base = k.indices.len();
        if k.indptr.is_empty() {
            k.indptr.push(0);
            // Natively, the entries can never outgrow the budget, so reserve that once:
            // doubling would copy, and the freed halves would stay resident (the CLI keeps
            // freed memory), while pages never written cost no memory. A wasm heap only grows,
            // so there a small file's replay grows as it needs.
            #[cfg(not(target_arch = "wasm32"))]
            {
                let entries = self.budget / (size_of::<u32>() + size_of::<f32>());
                k.indices.reserve_exact(entries);
                k.data.reserve_exact(entries);
            }
        }
        k.indptr.extend(c.indptr[1..].iter().map(|p| base + p));
        k.indices.extend_from_slice(&c.indices);
        k.data.extend_from_slice(&c.data);
    }
}

impl<S: CellSource> CellSource for Replay<S> {
    fn info(&self) -> &MatrixInfo {
        self.inner.info()
    }

    fn genes(&self) -> &GeneColumns {
        self.inner.genes()
    }

    fn cells(&self) -> &CellTable {
        self.inner.cells()
    }

    fn warnings(&self) -> &[String] {
        self.inner.warnings()
    }

    fn stored_entries(&self) -> Option<usize> {
        self.inner.stored_entries()
    }

    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        match self.state {
            State::Recording => {
                let Some(c) = self.inner.next_chunk(max_cells)? else {
                    self.state = State::Complete;
                    return Ok(None);
                };
                self.record(&c);
                Ok(Some(c))
            }
            State::Passthrough => self.inner.next_chunk(max_cells),
            // A read after the end of the recorded pass: still the end.
            State::Complete => Ok(None),
            State::Replaying(cell) => {
                if cell >= self.kept.n_cells() {
                    self.state = State::Complete;
                    return Ok(None);
                }
                let c = self.kept.slice(cell, max_cells.max(1));
                self.state = State::Replaying(cell + c.n_cells());
                Ok(Some(c))
            }
        }
    }

    fn recycle(&mut self, chunk: CsrChunk) {
        // Replayed chunks are slices of the recorded matrix; read ones are the inner reader's.
        if matches!(self.state, State::Recording | State::Passthrough) {
            self.inner.recycle(chunk);
        }
    }

    fn rewind(&mut self) -> Result<(), DataError> {
        match self.state {
            State::Complete | State::Replaying(_) => {
                self.state = State::Replaying(0);
                Ok(())
            }
            State::Recording | State::Passthrough => {
                // A pass that stopped early, or went over the budget: read the file again, and
                // keep what this pass reads if it fits.
                self.kept = MemCsr::default();
                self.state = self.first_state();
                self.inner.rewind()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of `n` cells, cell `i` holding gene `i % 7` with value `i`, counting its reads.
    struct Cells {
        info: MatrixInfo,
        genes: GeneColumns,
        cells: CellTable,
        n: usize,
        next: usize,
        reads: usize,
        /// What [`CellSource::stored_entries`] says (`Some(n)`: one entry per cell).
        announced: Option<usize>,
    }

    impl Cells {
        fn new(n: usize) -> Self {
            Self {
                info: MatrixInfo {
                    format: "test".into(),
                    matrix_path: "X".into(),
                    n_cells: n,
                    n_genes: 7,
                },
                genes: GeneColumns::default(),
                cells: CellTable::default(),
                n,
                next: 0,
                reads: 0,
                announced: Some(n),
            }
        }
    }

    impl CellSource for Cells {
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
            if self.next >= self.n {
                return Ok(None);
            }
            self.reads += 1;
            let k = max_cells.min(self.n - self.next);
            let c = CsrChunk {
                first_cell: self.next,
                indptr: (0..=k).collect(),
                indices: (self.next..self.next + k).map(|i| (i % 7) as u32).collect(),
                data: (self.next..self.next + k).map(|i| i as f32).collect(),
            };
            self.next += k;
            Ok(Some(c))
        }
        fn rewind(&mut self) -> Result<(), DataError> {
            self.next = 0;
            Ok(())
        }
        fn stored_entries(&self) -> Option<usize> {
            self.announced
        }
    }

    /// Every (cell, gene, value) of one pass, reading `max` cells at a time.
    fn pass(s: &mut dyn CellSource, max: usize) -> Vec<(usize, u32, f32)> {
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk(max).unwrap() {
            assert!(c.n_cells() <= max);
            for i in 0..c.n_cells() {
                let (g, v) = c.cell(i);
                out.extend(g.iter().zip(v).map(|(g, v)| (c.first_cell + i, *g, *v)));
            }
        }
        out
    }

    #[test]
    fn second_pass_comes_from_memory_and_equals_the_first() {
        let mut r = Replay::new(Cells::new(10), 1 << 20);
        let first = pass(&mut r, 4);
        assert_eq!(first.len(), 10);
        assert_eq!(r.inner.reads, 3);
        r.rewind().unwrap();
        assert!(r.replays());
        // Same chunking, smaller chunks and larger ones all give the same cells.
        assert_eq!(pass(&mut r, 4), first);
        r.rewind().unwrap();
        assert_eq!(pass(&mut r, 3), first);
        r.rewind().unwrap();
        assert_eq!(pass(&mut r, 100), first);
        assert_eq!(r.inner.reads, 3, "the file was read once");
    }

    #[test]
    fn over_budget_reads_the_file_again() {
        let mut r = Replay::new(Cells::new(10), 64);
        let first = pass(&mut r, 4);
        r.rewind().unwrap();
        assert!(!r.replays());
        assert_eq!(pass(&mut r, 4), first);
        assert_eq!(r.inner.reads, 6);
        assert_eq!(r.kept, MemCsr::default());
    }

    /// A matrix the file says is over budget is never copied, though its first chunks fit;
    /// one of unknown size is copied until it is found to be over.
    #[test]
    fn a_matrix_announced_over_budget_is_never_copied() {
        // 10 cells need 11 offsets and 10 entries (168 bytes); 4 cells need 72.
        let budget = 100;
        let mut r = Replay::new(Cells::new(10), budget);
        let first = r.next_chunk(4).unwrap().unwrap();
        assert_eq!(r.kept.indices.capacity(), 0, "nothing was copied");
        let mut all = pass(&mut r, 4);
        r.rewind().unwrap();
        assert!(!r.replays());
        r.next_chunk(4).unwrap();
        assert_eq!(r.kept.indices.capacity(), 0, "nor in the next pass");
        r.rewind().unwrap();
        let again = pass(&mut r, 4);
        all.splice(
            0..0,
            (0..4).map(|i| (i, first.cell(i).0[0], first.cell(i).1[0])),
        );
        assert_eq!(again, all);

        let mut unknown = Cells::new(10);
        unknown.announced = None;
        let mut r = Replay::new(unknown, budget);
        r.next_chunk(4).unwrap();
        assert_eq!(r.kept.indices.len(), 4, "an unknown size is copied");
        pass(&mut r, 4);
        r.rewind().unwrap();
        assert!(!r.replays());
    }

    #[test]
    fn a_pass_stopped_early_is_not_replayed() {
        let mut r = Replay::new(Cells::new(10), 1 << 20);
        r.next_chunk(4).unwrap();
        r.rewind().unwrap();
        assert!(!r.replays());
        let all = pass(&mut r, 4);
        assert_eq!(all.len(), 10);
        r.rewind().unwrap();
        assert!(r.replays());
        assert_eq!(pass(&mut r, 4), all);
    }
}
