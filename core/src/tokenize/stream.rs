//! Tokenization as a stream: pass 1 ([`plan_tokenize`]) decides which cells are written and how
//! long each is; pass 2 ([`TokenizeStream`], [`tokenize_each`]) tokenizes them chunk by chunk, so
//! memory is bounded by the chunk, not the file. [`tokenize`] collects both into memory.

use super::pipeline::{Plan, Prepared, TokenizeOptions, TokenizeSummary, prepare, text_column};
use super::qc::QcCounts;
use rayon::prelude::*;

use super::rank_table::{RankScratch, RankTable};
use super::transform::{GeneValue, RankedCell, TieBreak, rank_cell_counted};
use super::{GeneMatch, GeneMatchReport, GeneMedians, TokenDictionary, TokenizeError};
use crate::cells::{CellSet, Species, TokenizedCell};
use crate::data::{CellSource, CsrChunk, DataError};

mod into;
pub use into::TokenSlots;

/// Pass 1's outcome: which cells pass 2 writes and how many tokens each gets, known before it
/// writes anything, so that an output file can be sized up front and filled as cells stream.
#[derive(Debug)]
pub struct TokenizePlan {
    gm: GeneMatch,
    plan: Plan,
    /// Per input cell: the genes it keeps (before truncation) when it is written, else 0.
    lens: Vec<u32>,
    max_len: Option<usize>,
    labels: Option<Vec<String>>,
    qc: QcCounts,
    vocab_sha256: String,
    genes_without_median: usize,
    /// Cells that pass QC but keep no gene after the vocabulary filter (not written).
    cells_empty: usize,
}

impl TokenizePlan {
    /// Cells that pass 2 will write.
    pub fn cells_out(&self) -> usize {
        self.lens.iter().filter(|&&l| l > 0).count()
    }

    /// The longest written cell, in tokens (0 when none is written).
    pub fn longest(&self) -> usize {
        let l = self.lens.iter().copied().max().unwrap_or(0) as usize;
        self.max_len.map_or(l, |m| l.min(m))
    }

    /// Tokens over all written cells (after truncation).
    pub fn tokens(&self) -> usize {
        let cap = self.max_len.unwrap_or(usize::MAX);
        self.lens.iter().map(|&l| (l as usize).min(cap)).sum()
    }

    /// Each written cell's token count (after truncation), in order: the ragged layout's
    /// offsets, known before pass 2.
    pub fn written_lengths(&self) -> impl Iterator<Item = usize> + '_ {
        let cap = self.max_len.unwrap_or(usize::MAX);
        self.lens
            .iter()
            .filter(|&&l| l > 0)
            .map(move |&l| (l as usize).min(cap))
    }

    /// What [`tokenize_each`] will report, known before it runs (it checks every cell against
    /// it), so that the summary can go into an output file's header.
    pub fn summary(&self) -> TokenizeSummary {
        TokenizeSummary {
            vocab_sha256: self.vocab_sha256.clone(),
            genes: self.gm.report.clone(),
            qc: self.qc,
            genes_used: self.plan.used.iter().filter(|u| u.is_some()).count(),
            genes_without_median: self.genes_without_median,
            cells_empty: self.cells_empty,
            cells_out: self.cells_out(),
            cells_truncated: match self.max_len {
                Some(m) => self.lens.iter().filter(|&&l| l as usize > m).count(),
                None => 0,
            },
            min_genes_counted_all: self.plan.counted_all,
        }
    }

    /// The labels of the written cells, in order (when a label column was asked for).
    pub fn labels_out(&self) -> Option<Vec<String>> {
        let labels = self.labels.as_ref()?;
        Some(
            self.lens
                .iter()
                .zip(labels)
                .filter(|(l, _)| **l > 0)
                .map(|(_, label)| label.clone())
                .collect(),
        )
    }

    /// Cells remaining after each QC step.
    pub fn qc(&self) -> &QcCounts {
        &self.qc
    }

    /// Gene matching and count coverage.
    pub fn genes(&self) -> &GeneMatchReport {
        &self.gm.report
    }

    /// Every token a written cell can hold (the vocabulary genes of the file that enter the
    /// transform), so that per-token work (the folded embedding) can be done once, up front.
    pub fn token_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.plan.used.iter().flatten().map(|&(t, _)| t).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The species the written cells are tagged with.
    pub fn species(&self) -> Species {
        self.gm.species
    }
}

/// Pass 1 of [`tokenize`]: gene matching, cell statistics and QC, and each cell's token count.
pub fn plan_tokenize(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    medians: &GeneMedians,
    opts: &TokenizeOptions,
) -> Result<TokenizePlan, TokenizeError> {
    plan_from(source, vocab, medians, opts, None)
}

/// [`plan_tokenize`] for a caller that already matched the source's genes (to report them
/// before pass 1): `matched` must be [`super::match_genes`] of `source.genes()` with `vocab`
/// and `opts.gene_match()`, as checked here by its size and species.
pub fn plan_tokenize_matched(
    source: &mut dyn CellSource,
    matched: GeneMatch,
    vocab: &TokenDictionary,
    medians: &GeneMedians,
    opts: &TokenizeOptions,
) -> Result<TokenizePlan, TokenizeError> {
    let n = source.genes().names.len();
    if matched.tokens.len() != n || opts.species.is_some_and(|s| s != matched.species) {
        return Err(TokenizeError::Options(format!(
            "the gene match given to pass 1 does not belong to this input ({} genes, species {}; \
             the input has {n} genes): match the genes again with the same options",
            matched.tokens.len(),
            matched.species.name()
        )));
    }
    plan_from(source, vocab, medians, opts, Some(matched))
}

fn plan_from(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    medians: &GeneMedians,
    opts: &TokenizeOptions,
    matched: Option<GeneMatch>,
) -> Result<TokenizePlan, TokenizeError> {
    let Prepared {
        gm,
        plan,
        keep,
        qc,
        mut lens,
    } = prepare(source, vocab, Some(medians), opts, matched)?;
    let mut cells_empty = 0;
    for (l, &k) in lens.iter_mut().zip(&keep) {
        if !k {
            *l = 0;
        } else if *l == 0 {
            cells_empty += 1;
        }
    }
    let labels = match &opts.label_column {
        Some(c) => Some(text_column(source, c, "label")?),
        None => None,
    };
    let genes_without_median = plan
        .used
        .iter()
        .zip(&gm.ensembl)
        .filter(|(u, e)| u.is_some() && e.as_ref().is_some_and(|e| medians.get(e).is_none()))
        .count();
    Ok(TokenizePlan {
        gm,
        plan,
        lens,
        max_len: opts.max_len,
        labels,
        qc,
        vocab_sha256: vocab.sha256().to_string(),
        genes_without_median,
        cells_empty,
    })
}

/// Pass 2 of [`tokenize`], pulled one source chunk at a time: each call to
/// [`TokenizeStream::next_cells`] reads one chunk and returns its written cells, so memory stays
/// bounded by the chunk size and a caller can hand control back between chunks (the browser
/// awaits its GPU between them). A cell whose token count differs from the plan's (the file
/// changed between the passes) stops the stream with an error.
pub struct TokenizeStream<'s> {
    source: &'s mut dyn CellSource,
    gm: GeneMatch,
    used: Vec<Option<(u32, f64)>>,
    lens: Vec<u32>,
    max_len: Option<usize>,
    labels: Option<Vec<String>>,
    opts: TokenizeOptions,
    summary: TokenizeSummary,
    seen: usize,
    written: usize,
    finished: bool,
    /// The next chunk's read, done while the last chunk ranked (native builds).
    ahead: Option<Result<Option<CsrChunk>, DataError>>,
    /// The global ranks of small counts, when the options allow it and the file is large
    /// enough to repay the table.
    table: Option<RankTable>,
}

impl<'s> TokenizeStream<'s> {
    /// Rewinds `source` for pass 2 of `plan`.
    pub fn new(
        source: &'s mut dyn CellSource,
        plan: TokenizePlan,
        opts: &TokenizeOptions,
    ) -> Result<Self, TokenizeError> {
        let summary = plan.summary();
        source.rewind()?;
        // Whether a table pays off, and how large, depends on the genes it ranks.
        let genes: usize = plan.lens.iter().map(|&l| l as usize).sum();
        let used_columns = plan.plan.used.iter().flatten().count();
        let table = (opts.normalize_total.is_none() && opts.tie_break == TieBreak::TokenId)
            .then(|| RankTable::counts_for(genes, used_columns))
            .flatten()
            .map(|counts| RankTable::new(&plan.plan.used, counts));
        Ok(Self {
            source,
            gm: plan.gm,
            used: plan.plan.used,
            lens: plan.lens,
            max_len: plan.max_len,
            labels: plan.labels,
            opts: opts.clone(),
            summary,
            seen: 0,
            written: 0,
            finished: false,
            ahead: None,
            table,
        })
    }

    /// What the stream reports, known before it runs.
    pub fn summary(&self) -> &TokenizeSummary {
        &self.summary
    }

    /// Cells written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The next source chunk (read ahead or now), or `None` once the source is exhausted and
    /// its cell count checked against the plan.
    fn take_chunk(&mut self) -> Result<Option<CsrChunk>, TokenizeError> {
        if self.finished {
            return Ok(None);
        }
        let next = match self.ahead.take() {
            Some(read) => read,
            None => self.source.next_chunk(self.opts.chunk_cells.max(1)),
        };
        let Some(chunk) = next? else {
            self.finished = true;
            if self.seen != self.lens.len() {
                return Err(changed(
                    self.source,
                    &format!(
                        "has {} cells, {} in the first pass",
                        self.seen,
                        self.lens.len()
                    ),
                ));
            }
            return Ok(None);
        };
        self.seen = self.seen.max(chunk.first_cell + chunk.n_cells());
        if chunk.first_cell + chunk.n_cells() > self.lens.len() {
            return Err(changed(
                self.source,
                "has more cells than in the first pass",
            ));
        }
        Ok(Some(chunk))
    }

    /// The written cells of the next source chunk (none when QC dropped them all), or `None`
    /// once the source is exhausted and its cell count checked against the plan.
    pub fn next_cells(&mut self) -> Result<Option<Vec<TokenizedCell>>, TokenizeError> {
        let Some(chunk) = self.take_chunk()? else {
            return Ok(None);
        };
        let ranker = Ranker {
            used: &self.used,
            lens: &self.lens,
            opts: &self.opts,
            max_len: self.max_len,
            table: self.table.as_ref(),
        };
        // Natively, the next chunk is read while this one ranks (reading is serial, ranking
        // runs on every core). Wasm has no threads to spare: it reads when asked.
        #[cfg(not(target_arch = "wasm32"))]
        let ranked = {
            let n = self.opts.chunk_cells.max(1);
            let source = &mut *self.source;
            let (ranked, ahead) = std::thread::scope(|s| {
                let ranking = s.spawn(|| ranker.rank(&chunk));
                let ahead = source.next_chunk(n);
                match ranking.join() {
                    Ok(ranked) => (ranked, ahead),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
            self.ahead = Some(ahead);
            ranked
        };
        #[cfg(target_arch = "wasm32")]
        let ranked = ranker.rank(&chunk);
        let mut out = Vec::new();
        for (i, r) in ranked.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let cell = chunk.first_cell + i;
            let expected = self.lens[cell];
            if r.kept != expected as usize {
                return Err(changed(
                    self.source,
                    &format!(
                        "cell {cell} has {} tokens, {expected} in the first pass",
                        r.kept
                    ),
                ));
            }
            let label = self.labels.as_mut().map(|l| std::mem::take(&mut l[cell]));
            out.push(TokenizedCell {
                input_ids: r.input_ids,
                values: r.values,
                species: self.gm.species,
                label,
            });
        }
        self.source.recycle(chunk);
        self.written += out.len();
        Ok(Some(out))
    }
}

/// Pass 2 of [`tokenize`]: hands each written cell to `sink` as soon as it is tokenized (see
/// [`TokenizeStream`]); the summary returned is always [`TokenizePlan::summary`].
pub fn tokenize_each(
    source: &mut dyn CellSource,
    plan: TokenizePlan,
    opts: &TokenizeOptions,
    sink: &mut dyn FnMut(TokenizedCell) -> Result<(), TokenizeError>,
) -> Result<TokenizeSummary, TokenizeError> {
    let mut stream = TokenizeStream::new(source, plan, opts)?;
    while let Some(cells) = stream.next_cells()? {
        for c in cells {
            sink(c)?;
        }
    }
    Ok(stream.summary)
}

/// What ranking a chunk's cells needs from the stream (shareable across threads).
struct Ranker<'a> {
    used: &'a [Option<(u32, f64)>],
    lens: &'a [u32],
    opts: &'a TokenizeOptions,
    max_len: Option<usize>,
    table: Option<&'a RankTable>,
}

impl Ranker<'_> {
    /// Each cell of `chunk` ranked, or `None` where pass 1 dropped it. Cells rank independently:
    /// across rayon's threads (natively; one thread in wasm).
    fn rank(&self, chunk: &CsrChunk) -> Vec<Option<RankedCell>> {
        if let Some(table) = self.table {
            return self.rank_counts(chunk, table);
        }
        (0..chunk.n_cells())
            .into_par_iter()
            .map_init(Vec::new, |buf: &mut Vec<GeneValue>, i| {
                if self.lens[chunk.first_cell + i] == 0 {
                    // Dropped by QC, or no gene left after the vocabulary filter.
                    return None;
                }
                let (idx, val) = chunk.cell(i);
                Some(self.rank_sorting(idx, val, buf))
            })
            .collect()
    }

    /// One cell through the general path: each gene's value computed and the cell sorted.
    fn rank_sorting(&self, idx: &[u32], val: &[f32], buf: &mut Vec<GeneValue>) -> RankedCell {
        buf.clear();
        buf.extend(idx.iter().zip(val).filter_map(|(&j, &v)| {
            let (token, median) = self.used[j as usize]?;
            Some(GeneValue {
                column: j,
                token,
                count: v as f64,
                median,
            })
        }));
        rank_cell_counted(
            buf,
            self.opts.normalize_total,
            self.opts.tie_break,
            self.max_len,
        )
    }
}

impl Ranker<'_> {
    /// [`Self::rank`] without normalisation and with token-id ties (the defaults), through the
    /// table of global ranks, with one scratch bitmap per thread.
    fn rank_counts(&self, chunk: &CsrChunk, table: &RankTable) -> Vec<Option<RankedCell>> {
        (0..chunk.n_cells())
            .into_par_iter()
            .map_init(RankScratch::default, |scratch, i| {
                if self.lens[chunk.first_cell + i] == 0 {
                    return None;
                }
                let (idx, val) = chunk.cell(i);
                Some(table.rank(idx, val, scratch, self.max_len))
            })
            .collect()
    }
}

fn changed(source: &dyn CellSource, what: &str) -> TokenizeError {
    TokenizeError::Invalid {
        file: source.info().matrix_path.clone(),
        message: format!(
            "{what}: the file changed while it was being tokenized (it is read twice); \
             tokenize it again once it is no longer being written"
        ),
    }
}

/// Tokenizes every cell of `source` as the official pipeline does (see the module docs), into
/// memory. [`plan_tokenize`] + [`tokenize_each`] do the same with bounded memory.
pub fn tokenize(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    medians: &GeneMedians,
    opts: &TokenizeOptions,
) -> Result<(CellSet, TokenizeSummary), TokenizeError> {
    let plan = plan_tokenize(source, vocab, medians, opts)?;
    let mut cells = Vec::with_capacity(plan.cells_out());
    let summary = tokenize_each(source, plan, opts, &mut |c| {
        cells.push(c);
        Ok(())
    })?;
    Ok((
        CellSet {
            cells,
            padded_len: opts.max_len,
        },
        summary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{MatrixChoice, open_path};
    use crate::tokenize::{EmbeddedGenes, GeneMatchOptions, match_genes};

    /// The rank table ranks every real cell exactly as the general path does, with medians
    /// below and above 1, a NaN median, and counts above the table.
    #[test]
    fn the_rank_table_ranks_like_the_general_path() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
        );
        let mut src = open_path(std::path::Path::new(path), MatrixChoice::Auto)
            .expect("../shared/data beside the checkout");
        let gm = match_genes(src.genes(), &EmbeddedGenes, &GeneMatchOptions::default()).unwrap();
        let ids: Vec<String> = gm.ensembl.iter().flatten().cloned().collect();
        let vocab = TokenDictionary::build(ids.clone());
        // Medians from 0.25 to 4 and one NaN, so that divisions round differently per gene.
        let medians = GeneMedians {
            medians: ids
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let m = if i == 3 {
                        f64::NAN
                    } else {
                        0.25 * (1 + i % 16) as f64
                    };
                    (e.clone(), m)
                })
                .collect(),
        };
        let opts = TokenizeOptions {
            max_len: Some(300),
            ..Default::default()
        };
        let plan = plan_tokenize(&mut src, &vocab, &medians, &opts).unwrap();
        let TokenizeStream {
            source,
            used,
            lens,
            table,
            ..
        } = TokenizeStream::new(&mut src, plan, &opts).unwrap();
        let table = table.as_ref().expect("822 cells use the table");
        let chunk = source.next_chunk(usize::MAX).unwrap().unwrap();
        assert!(chunk.data.iter().any(|&v| v as usize > 8));
        let ranker = |table| Ranker {
            used: &used,
            lens: &lens,
            opts: &opts,
            max_len: opts.max_len,
            table,
        };
        let general = ranker(None).rank(&chunk);
        assert!(general.iter().flatten().count() > 700);
        assert_eq!(ranker(Some(table)).rank(&chunk), general);
        // Into one run of the chunk's tokens, both paths: the same tokens end to end.
        let ids: Vec<u32> = general
            .iter()
            .flatten()
            .flat_map(|r| r.input_ids.clone())
            .collect();
        let values: Vec<f32> = general
            .iter()
            .flatten()
            .flat_map(|r| r.values.clone())
            .collect();
        for table in [None, Some(table)] {
            let (mut got_ids, mut got_values) = (vec![0; ids.len()], vec![0.0; ids.len()]);
            ranker(table)
                .rank_into(&chunk, &mut got_ids, &mut got_values)
                .unwrap();
            assert_eq!((&got_ids, &got_values), (&ids, &values));
        }
    }
}
