//! Pass 2 straight into memory the caller provides, for the ragged layout (written cells end to
//! end): pass 1 knows every written cell's length, so each cell's place in the output is known
//! before it is ranked, and the ranking threads write the tokens where they will lie: in a
//! chunk's buffer, written out as two runs, where each cell had had two vectors of its own,
//! allocated, zeroed and written out as two more parts of a vectored write.

use std::ops::Range;

use rayon::prelude::*;

use super::{Ranker, TokenizeStream, changed};
use crate::data::CsrChunk;
use crate::tokenize::rank_table::RankScratch;
use crate::tokenize::{TokenizeError, TokenizeSummary};

/// Memory for a run of consecutive tokens of the ragged output, which pass 2 fills.
pub trait TokenSlots {
    /// The run's token ids and values, each exactly as long as the run.
    fn slots(&mut self) -> (&mut [u32], &mut [f32]);
}

/// Slots in the process's own memory.
impl TokenSlots for (Vec<u32>, Vec<f32>) {
    fn slots(&mut self) -> (&mut [u32], &mut [f32]) {
        (&mut self.0, &mut self.1)
    }
}

/// A chunk's slots and the cells and tokens they are for.
struct Opened<S> {
    cells: Range<usize>,
    tokens: Range<usize>,
    slots: S,
}

impl TokenizeStream<'_> {
    /// Pass 2 into memory the caller provides: `open(tokens)` returns the slots of the written
    /// tokens `tokens` (positions among all written cells' tokens, end to end and truncated, in
    /// cell order), once per source chunk and in order, and `filled` gets them back once the
    /// chunk's cells are in them. Natively the next chunk's slots are opened while this chunk
    /// ranks (on the reading thread). Returns [`super::TokenizePlan::summary`]'s summary once
    /// every planned token is written; a cell whose token count differs from the plan's (the
    /// file changed between the passes) stops it with an error.
    pub fn fill_ragged<S: TokenSlots>(
        mut self,
        open: &mut dyn FnMut(Range<usize>) -> Result<S, TokenizeError>,
        filled: &mut dyn FnMut(S) -> Result<(), TokenizeError>,
    ) -> Result<TokenizeSummary, TokenizeError> {
        // Where the next chunk's cells and tokens start.
        let (mut cell_end, mut tok_end) = (0usize, 0usize);
        let mut next: Option<Opened<S>> = None;
        while let Some(chunk) = self.take_chunk()? {
            let mut cur = match next.take() {
                Some(o) if o.cells.start == chunk.first_cell => o,
                _ => {
                    let cells = chunk.first_cell..chunk.first_cell + chunk.n_cells();
                    let tokens = self.planned_run(&cells, &mut cell_end, &mut tok_end)?;
                    let slots = open(tokens.clone())?;
                    Opened {
                        cells,
                        tokens,
                        slots,
                    }
                }
            };
            let want = cur.tokens.len();
            let (ids, values) = cur.slots.slots();
            if ids.len() != want || values.len() != want {
                return Err(TokenizeError::Options(format!(
                    "slots for {} token ids and {} values were given for a run of {want} tokens",
                    ids.len(),
                    values.len()
                )));
            }
            let ranker = Ranker {
                used: &self.used,
                lens: &self.lens,
                opts: &self.opts,
                max_len: self.max_len,
                table: self.table.as_ref(),
            };
            // Natively, the next chunk is read and its slots opened while this one ranks.
            #[cfg(not(target_arch = "wasm32"))]
            let ranked = {
                let n = self.opts.chunk_cells.max(1);
                let source = &mut *self.source;
                let lens = &self.lens;
                let max_len = self.max_len;
                let (ranked, ahead, opened) = std::thread::scope(|s| {
                    let ranking = s.spawn(|| ranker.rank_into(&chunk, ids, values));
                    let ahead = source.next_chunk(n);
                    let mut opened = None;
                    if let Ok(Some(a)) = &ahead {
                        let cells = a.first_cell..a.first_cell + a.n_cells();
                        // Out of order or past the plan: `take_chunk` reports it next.
                        if cells.start == cell_end && cells.end <= lens.len() {
                            let tokens = tok_end..tok_end + run_tokens(lens, max_len, &cells);
                            opened = Some(open(tokens.clone()).map(|slots| Opened {
                                cells,
                                tokens,
                                slots,
                            }));
                        }
                    }
                    match ranking.join() {
                        Ok(ranked) => (ranked, ahead, opened),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                });
                self.ahead = Some(ahead);
                if let Some(o) = opened {
                    let o = o?;
                    (cell_end, tok_end) = (o.cells.end, o.tokens.end);
                    next = Some(o);
                }
                ranked
            };
            #[cfg(target_arch = "wasm32")]
            let ranked = ranker.rank_into(&chunk, ids, values);
            if let Err((i, kept)) = ranked {
                let cell = chunk.first_cell + i;
                return Err(changed(
                    self.source,
                    &format!(
                        "cell {cell} has {kept} tokens, {} in the first pass",
                        self.lens[cell]
                    ),
                ));
            }
            self.written += self.lens[cur.cells.clone()]
                .iter()
                .filter(|&&l| l > 0)
                .count();
            self.source.recycle(chunk);
            filled(cur.slots)?;
        }
        Ok(self.summary)
    }

    /// The tokens of the chunk of `cells`, which must start where the last one ended
    /// (`cell_end`, whose tokens ended at `tok_end`; both moved past it).
    fn planned_run(
        &self,
        cells: &Range<usize>,
        cell_end: &mut usize,
        tok_end: &mut usize,
    ) -> Result<Range<usize>, TokenizeError> {
        if cells.start != *cell_end {
            return Err(changed(
                self.source,
                &format!(
                    "gave cells from {} where cell {} was next",
                    cells.start, cell_end
                ),
            ));
        }
        let tokens = *tok_end..*tok_end + run_tokens(&self.lens, self.max_len, cells);
        (*cell_end, *tok_end) = (cells.end, tokens.end);
        Ok(tokens)
    }
}

/// Tokens the written cells among `cells` get, after truncation to `max_len`.
fn run_tokens(lens: &[u32], max_len: Option<usize>, cells: &Range<usize>) -> usize {
    let cap = max_len.unwrap_or(usize::MAX);
    lens[cells.clone()]
        .iter()
        .map(|&l| (l as usize).min(cap))
        .sum()
}

impl Ranker<'_> {
    /// Ranks the written cells of `chunk` into `ids` and `values` (their tokens end to end),
    /// across rayon's threads; the first cell (by position in the chunk) whose kept genes
    /// differ from the plan's, with how many it keeps, is an error.
    pub(super) fn rank_into(
        &self,
        chunk: &CsrChunk,
        ids: &mut [u32],
        values: &mut [f32],
    ) -> Result<(), (usize, usize)> {
        let cap = self.max_len.unwrap_or(usize::MAX);
        let mut parts = Vec::with_capacity(chunk.n_cells());
        let (mut ids, mut values) = (ids, values);
        for i in 0..chunk.n_cells() {
            let l = self.lens[chunk.first_cell + i] as usize;
            if l == 0 {
                continue;
            }
            let (a, rest) = std::mem::take(&mut ids).split_at_mut(l.min(cap));
            ids = rest;
            let (b, rest) = std::mem::take(&mut values).split_at_mut(l.min(cap));
            values = rest;
            parts.push((i, a, b));
        }
        parts.into_par_iter().try_for_each_init(
            || (RankScratch::default(), Vec::new()),
            |(scratch, buf), (i, ids, values)| {
                let (idx, val) = chunk.cell(i);
                let kept = match self.table {
                    Some(table) => table.rank_into(idx, val, scratch, ids, values),
                    None => {
                        let r = self.rank_sorting(idx, val, buf);
                        let n = r.input_ids.len().min(ids.len());
                        ids[..n].copy_from_slice(&r.input_ids[..n]);
                        values[..n].copy_from_slice(&r.values[..n]);
                        r.kept
                    }
                };
                if kept == self.lens[chunk.first_cell + i] as usize {
                    Ok(())
                } else {
                    Err((i, kept))
                }
            },
        )
    }
}
