//! The official tokenization path (`preprocess/preprocess.py`, spec §3) over a [`CellSource`], in two
//! streaming passes so that memory is bounded by the chunk size (plus a few numbers per cell):
//!
//! 1. gene identity ([`super::genes`]): genes without an Ensembl id are dropped (official step 1);
//! 2. **pass 1** — per-cell totals, mitochondrial counts and expressed-gene counts; cell QC
//!    ([`super::qc`]: total > 0, z-scores within sample inside (−3, 3), > 6 expressed genes);
//! 3. **pass 2** — for kept cells: vocabulary filter, optional `normalize_total`, division by the gene
//!    median, `log2(1+x)`, ranking, truncation ([`super::transform`]).

use rayon::prelude::*;

use super::genes::{GeneMatch, GeneMatchOptions, GeneMatchReport, match_genes};
use super::medians::{GeneMedians, MedianAccumulator, MedianMode};
use super::qc::{CellQcOptions, CellStats, GeneCountFilter, QcCounts, select_cells};
use super::transform::{TieBreak, keeps_gene};
use super::{TokenDictionary, TokenizeError};
use crate::cells::Species;
use crate::data::{CellSource, CsrChunk, ObsColumn};
use serde::Serialize;

/// All tokenizer options; `Default` is the official behaviour wherever it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeOptions {
    /// Species override and (unofficial) ortholog fallback.
    pub species: Option<Species>,
    /// Not official: map genes missing from the vocabulary through one-to-one orthologs.
    pub ortholog_fallback: bool,
    /// Step 2: cell QC.
    pub qc: CellQcOptions,
    /// Steps 3–4: gene filter and minimum expressed genes.
    pub gene_filter: GeneCountFilter,
    /// Library-size normalisation to this total **before** the median division. `None` (default):
    /// the official line `/ per_cell_nonzero_sum * 1e4` is commented out in `Normalized`
    /// (GitHub issue #23), so raw counts are divided by the medians. `Some(1e4)` enables it; the
    /// total is taken over the genes that reach this step (after the vocabulary filter), as in that line.
    pub normalize_total: Option<f64>,
    /// Truncation length (official 2048); `None` keeps every expressed gene.
    pub max_len: Option<usize>,
    /// Order of equal values (the official order is arbitrary).
    pub tie_break: TieBreak,
    /// `obs` column copied into [`TokenizedCell::label`].
    pub label_column: Option<String>,
    /// Cells per chunk read from the source.
    pub chunk_cells: usize,
    /// Refuse matrices whose values are not non-negative integers (default true).
    pub require_counts: bool,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            species: None,
            ortholog_fallback: false,
            qc: CellQcOptions::default(),
            gene_filter: GeneCountFilter::default(),
            normalize_total: None,
            max_len: Some(2048),
            tie_break: TieBreak::TokenId,
            label_column: None,
            chunk_cells: 1024,
            require_counts: true,
        }
    }
}

impl TokenizeOptions {
    /// The gene-matching options these tokenizer options imply.
    pub fn gene_match(&self) -> GeneMatchOptions {
        GeneMatchOptions {
            species: self.species,
            ortholog_fallback: self.ortholog_fallback,
        }
    }
}

/// What tokenization did; record it next to the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizeSummary {
    /// SHA-256 of the token dictionary ([`TokenDictionary::sha256`]).
    pub vocab_sha256: String,
    /// Gene matching, including count coverage.
    pub genes: GeneMatchReport,
    /// Cells remaining after each QC step.
    pub qc: QcCounts,
    /// Genes entering the transform (in vocabulary and passing the gene filter).
    pub genes_used: usize,
    /// Of those, genes absent from the median dict (divided by 1, as officially).
    pub genes_without_median: usize,
    /// Kept cells with no gene left after the vocabulary filter; dropped (the official code would
    /// write an all-padding row).
    pub cells_empty: usize,
    /// Cells written.
    pub cells_out: usize,
    /// Cells cut to `max_len`.
    pub cells_truncated: usize,
    /// Whether step 4 counted all mapped genes because no gene had a protein-coding/miRNA biotype.
    pub min_genes_counted_all: bool,
}

/// Per-column decisions derived from the gene match and options.
#[derive(Debug)]
pub(super) struct Plan {
    mapped: Vec<bool>,
    /// The per-column facts pass 1 reads for every value, packed into one byte ([`USED`],
    /// [`MAPPED`], [`MITO`], [`COUNTED`], [`KEEPS_COUNTS`]) so that they cost one cache line,
    /// not five.
    flags: Vec<u8>,
    /// `Some((token, divisor))` for genes entering the transform.
    pub(super) used: Vec<Option<(u32, f64)>>,
    pub(super) counted_all: bool,
}

const USED: u8 = 1;
const MAPPED: u8 = 2;
const MITO: u8 = 4;
const COUNTED: u8 = 8;
/// A used column whose divisor keeps every count of 1 or more (a positive median up to 1e29):
/// pass 1 then counts the cell's kept genes without dividing (the division was most of its
/// per-value work).
const KEEPS_COUNTS: u8 = 16;
/// A column with a vocabulary token (the coverage report's "matched").
const TOKEN: u8 = 32;

fn plan(gm: &GeneMatch, medians: Option<&GeneMedians>, opts: &TokenizeOptions) -> Plan {
    let prefix = opts
        .qc
        .mito_prefix
        .clone()
        .unwrap_or_else(|| match gm.species {
            Species::Human => "MT-".into(),
            Species::Mouse => "mt-".into(),
            // No table names an added species' genes; pass --mito-prefix for its own symbols.
            Species::Added(_) => "MT-".into(),
        });
    let n = gm.ensembl.len();
    let bio_ok = |j: usize, list: &[String]| {
        gm.biotypes[j]
            .as_ref()
            .is_some_and(|b| list.iter().any(|x| x == b))
    };
    let pass_filter = |j: usize| match &opts.gene_filter.gene_biotypes {
        Some(list) => bio_ok(j, list),
        None => true,
    };
    let mapped: Vec<bool> = gm.ensembl.iter().map(Option::is_some).collect();
    let mito: Vec<bool> = (0..n)
        .map(|j| {
            mapped[j]
                && gm.symbols[j]
                    .as_ref()
                    .is_some_and(|s| s.starts_with(&prefix))
        })
        .collect();
    let mut counted: Vec<bool> = (0..n)
        .map(|j| mapped[j] && pass_filter(j) && bio_ok(j, &opts.gene_filter.count_biotypes))
        .collect();
    let counted_all = !counted.iter().any(|&c| c);
    if counted_all {
        counted = (0..n).map(|j| mapped[j] && pass_filter(j)).collect();
    }
    let used: Vec<Option<(u32, f64)>> = (0..n)
        .map(|j| {
            let t = gm.tokens[j].filter(|_| pass_filter(j))?;
            let e = gm.ensembl[j].as_deref().unwrap_or("");
            Some((t, medians.map(|m| m.divisor(e)).unwrap_or(1.0)))
        })
        .collect();
    let flags = (0..n)
        .map(|j| {
            (u8::from(used[j].is_some()) * USED)
                | (u8::from(mapped[j]) * MAPPED)
                | (u8::from(mito[j]) * MITO)
                | (u8::from(counted[j]) * COUNTED)
                | (u8::from(used[j].is_some_and(|(_, m)| m > 0.0 && m <= 1e29)) * KEEPS_COUNTS)
                | (u8::from(gm.tokens[j].is_some()) * TOKEN)
        })
        .collect();
    Plan {
        mapped,
        flags,
        used,
        counted_all,
    }
}

pub(super) fn text_column(
    source: &dyn CellSource,
    name: &str,
    what: &str,
) -> Result<Vec<String>, TokenizeError> {
    let cells = source.cells();
    match cells.column(name) {
        Some(ObsColumn::Text(v)) => Ok(v.clone()),
        Some(ObsColumn::Number(v)) => Ok(v.iter().map(|x| x.to_string()).collect()),
        None => Err(TokenizeError::Options(format!(
            "{}: {what} column {name:?} not found in the cell metadata; available columns: {:?}",
            source.info().matrix_path,
            cells
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
        ))),
    }
}

fn not_counts(source: &dyn CellSource, cell: usize, gene: &str, v: f32) -> TokenizeError {
    let info = source.info();
    TokenizeError::NotCounts(format!(
        "{} ({}): the matrix `{}` does not hold raw counts (cell {cell}, gene {gene}: value {v}); GeneCompass \
         tokenizes raw integer counts. If the file also stores raw counts (h5ad `raw/X` or a layer such as \
         `layers/counts`), select that matrix when opening the file; log-normalised or scaled data cannot be \
         tokenized the official way (set require_counts = false only if you know the values are counts){}",
        info.format,
        info.matrix_path,
        info.matrix_path,
        if source.warnings().is_empty() {
            String::new()
        } else {
            format!(". Reader notes: {}", source.warnings().join("; "))
        }
    ))
}

/// What pass 1 measured.
struct PassOne {
    stats: Vec<CellStats>,
    totals: CountTotals,
    /// Genes each cell keeps after the transform, before QC and truncation.
    lens: Vec<u32>,
}

/// Gene matching, pass 1 and cell selection.
pub(super) struct Prepared {
    pub(super) gm: GeneMatch,
    pub(super) plan: Plan,
    pub(super) keep: Vec<bool>,
    pub(super) qc: QcCounts,
    pub(super) lens: Vec<u32>,
}

/// A non-negative whole number (what `v >= 0 && v.fract() == 0` says), without branches or
/// libm, so that a chunk's values are checked in one vectorised pass: below 2^23, adding 2^23
/// rounds to a whole number, which is `v` only when `v` is one; every finite f32 from 2^23 up
/// is whole.
// `&` on the comparisons (not `contains`, whose `&&` may branch) keeps the loop vectorisable.
#[allow(clippy::manual_range_contains)]
fn is_count(v: f32) -> bool {
    const WHOLE: f32 = 8_388_608.0;
    let small = (v >= 0.0) & (v < WHOLE) & ((v + WHOLE) - WHOLE == v);
    let large = (v >= WHOLE) & (v <= f32::MAX);
    small | large
}

/// One cell's pass-1 facts, or the first value that is not a count (column, value).
type CellFacts = Result<(CellStats, u32), (usize, f32)>;

/// What pass 1 adds up for the coverage report ([`GeneMatch::record_counts`]): all counts,
/// those on vocabulary genes, and per column only for the columns off the vocabulary (the
/// report names the largest); a per-column total for every value was a scattered addition
/// per value. Counts are integers, so no total depends on the order of the additions.
#[derive(Debug, Default)]
struct CountTotals {
    all: f64,
    matched: f64,
    /// Per column (empty until a column off the vocabulary has a count).
    unmatched: Vec<f64>,
}

impl CountTotals {
    /// Adds `v` to column `j` of the `n` columns.
    fn add_unmatched(&mut self, j: usize, v: f64, n: usize) {
        if self.unmatched.is_empty() {
            self.unmatched.resize(n, 0.0);
        }
        self.unmatched[j] += v;
    }

    fn add(&mut self, other: &CountTotals) {
        self.all += other.all;
        self.matched += other.matched;
        if self.unmatched.is_empty() {
            self.unmatched = other.unmatched.clone();
        } else {
            for (x, y) in self.unmatched.iter_mut().zip(&other.unmatched) {
                *x += y;
            }
        }
    }
}

/// One cell's pass-1 facts when every value is a whole number (the usual count matrix).
/// Sums over all columns are taken once, in eight lanes (vectorised), and the few columns off
/// the vocabulary, unmapped or mitochondrial are added up on their own; the per-value loop
/// then carries no floating-point sum, which had kept it waiting on one addition after
/// another. Whole numbers add exactly in any order, so the results are those of the loop
/// that adds each value in turn.
fn count_facts(
    idx: &[u32],
    val: &[f32],
    p: &Plan,
    opts: &TokenizeOptions,
    totals: &mut CountTotals,
) -> (CellStats, u32) {
    let all = sum_whole(val);
    let (mut off_vocab, mut unmapped, mut mito) = (0f64, 0f64, 0f64);
    let (mut kept, mut n_counted) = (0u32, 0u32);
    let fused = opts.normalize_total.is_none();
    for (&j, &v) in idx.iter().zip(val) {
        let j = j as usize;
        let f = p.flags[j];
        if f & (TOKEN | MAPPED | MITO) != TOKEN | MAPPED {
            let v = f64::from(v);
            if f & TOKEN == 0 {
                off_vocab += v;
                totals.add_unmatched(j, v, p.mapped.len());
            }
            if f & MAPPED == 0 {
                unmapped += v;
            } else if f & MITO != 0 {
                mito += v;
            }
        }
        // Counted and mitochondrial columns are mapped ones.
        n_counted += u32::from(f & COUNTED != 0 && v != 0.0);
        if fused && f & USED != 0 {
            // A count of 1 or more divided by a median up to 1e29 is at least 1e-29; 0 is
            // never kept.
            kept += u32::from(if f & KEEPS_COUNTS != 0 {
                v >= 1.0
            } else {
                p.used[j].is_some_and(|(_, m)| keeps_gene(f64::from(v), 0.0, m, None))
            });
        }
    }
    totals.all += all;
    totals.matched += all - off_vocab;
    let s = CellStats {
        total: all - unmapped,
        mito,
        n_counted,
    };
    if fused {
        return (s, kept);
    }
    let used_sum = idx
        .iter()
        .zip(val)
        .filter(|&(&j, _)| p.flags[j as usize] & USED != 0)
        .map(|(_, &v)| f64::from(v))
        .sum();
    (s, kept_normalized(idx, val, p, opts, used_sum))
}

/// The sum of whole-number values (exact in any order), in eight lanes.
fn sum_whole(val: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = val.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f64::from(v);
        }
    }
    lanes.iter().sum::<f64>()
        + chunks
            .remainder()
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
}

/// With library-size normalisation: the genes pass 2's `rank_cell` keeps, so that the output
/// can be sized up front.
fn kept_normalized(
    idx: &[u32],
    val: &[f32],
    p: &Plan,
    opts: &TokenizeOptions,
    used_sum: f64,
) -> u32 {
    idx.iter()
        .zip(val)
        .filter(|&(&j, &v)| {
            p.used[j as usize].is_some_and(|(_, median)| {
                keeps_gene(v as f64, used_sum, median, opts.normalize_total)
            })
        })
        .count() as u32
}

/// Pass 1 on one chunk: each cell's facts (by position in the chunk, in any order) and the
/// chunk's count totals.
fn chunk_stats(
    chunk: &CsrChunk,
    p: &Plan,
    opts: &TokenizeOptions,
) -> (Vec<(usize, CellFacts)>, CountTotals) {
    // Every value checked at once; cells are checked one by one only to name the first
    // offender.
    let whole = chunk.data.iter().fold(true, |ok, &v| ok & is_count(v));
    let check = opts.require_counts && !whole;
    let fused = opts.normalize_total.is_none();
    // Cells are independent: rayon's threads take them (natively; one thread in wasm), each
    // with its own totals, added up after the chunk.
    let per_cell = |totals: &mut CountTotals, i: usize| -> CellFacts {
        let (idx, val) = chunk.cell(i);
        if whole {
            return Ok(count_facts(idx, val, p, opts, totals));
        }
        let (mut all, mut matched) = (0f64, 0f64);
        let mut s = CellStats::default();
        let mut used_sum = 0f64;
        // Without normalisation a gene's fate does not depend on the cell's sum: count
        // the kept genes in this same loop.
        let mut kept = 0u32;
        for (&j, &v) in idx.iter().zip(val) {
            let j = j as usize;
            if check && !is_count(v) {
                return Err((j, v));
            }
            let f = p.flags[j];
            let v = v as f64;
            all += v;
            if f & TOKEN != 0 {
                matched += v;
            } else {
                totals.add_unmatched(j, v, p.mapped.len());
            }
            if f & USED != 0 {
                used_sum += v;
                if fused
                    && let Some((_, median)) = p.used[j]
                    && keeps_gene(v, 0.0, median, None)
                {
                    kept += 1;
                }
            }
            if f & MAPPED != 0 {
                s.total += v;
                if f & MITO != 0 {
                    s.mito += v;
                }
                if f & COUNTED != 0 && v != 0.0 {
                    s.n_counted += 1;
                }
            }
        }
        totals.all += all;
        totals.matched += matched;
        if fused {
            return Ok((s, kept));
        }
        Ok((s, kept_normalized(idx, val, p, opts, used_sum)))
    };
    (0..chunk.n_cells())
        .into_par_iter()
        // A few cells per task: a task's totals may hold a vector as long as the file has
        // genes, added up after the chunk.
        .with_min_len(chunk.n_cells().div_ceil(4).max(1))
        .fold(
            || (Vec::new(), CountTotals::default()),
            |(mut cells, mut totals), i| {
                cells.push((i, per_cell(&mut totals, i)));
                (cells, totals)
            },
        )
        .reduce(
            || (Vec::new(), CountTotals::default()),
            |(mut a, mut ta), (b, tb)| {
                a.extend(b);
                ta.add(&tb);
                (a, ta)
            },
        )
}

/// Pass 1: per-cell statistics, per-gene totals and the number of genes each cell keeps after
/// the transform (before QC and before truncation to `max_len`); validates counts.
fn stats_pass(
    source: &mut dyn CellSource,
    p: &Plan,
    opts: &TokenizeOptions,
) -> Result<PassOne, TokenizeError> {
    source.rewind()?;
    let n_cells = source.info().n_cells;
    let mut stats = Vec::with_capacity(n_cells);
    let mut lens = Vec::with_capacity(n_cells);
    let mut totals = CountTotals::default();
    let n = opts.chunk_cells.max(1);
    let mut next = source.next_chunk(n)?;
    while let Some(chunk) = next.take() {
        // Natively, the next chunk is read while this one's cells are counted.
        #[cfg(not(target_arch = "wasm32"))]
        let ((mut cells, chunk_totals), ahead) = std::thread::scope(|s| {
            let counting = s.spawn(|| chunk_stats(&chunk, p, opts));
            let ahead = source.next_chunk(n);
            match counting.join() {
                Ok(counted) => (counted, ahead),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        #[cfg(target_arch = "wasm32")]
        let ((mut cells, chunk_totals), ahead) =
            (chunk_stats(&chunk, p, opts), source.next_chunk(n));
        totals.add(&chunk_totals);
        cells.sort_unstable_by_key(|c| c.0);
        for (i, r) in cells {
            match r {
                Ok((s, n)) => {
                    stats.push(s);
                    lens.push(n);
                }
                Err((j, v)) => {
                    let g = source.genes().names.get(j).cloned().unwrap_or_default();
                    return Err(not_counts(source, chunk.first_cell + i, &g, v));
                }
            }
        }
        source.recycle(chunk);
        next = ahead?;
    }
    Ok(PassOne {
        stats,
        totals,
        lens,
    })
}

/// Matching, pass 1 and cell selection, shared by [`tokenize`] and [`compute_medians`].
pub(super) fn prepare(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    medians: Option<&GeneMedians>,
    opts: &TokenizeOptions,
    matched: Option<GeneMatch>,
) -> Result<Prepared, TokenizeError> {
    let mut gm = match matched {
        Some(gm) => gm,
        None => match_genes(source.genes(), vocab, &opts.gene_match())?,
    };
    let p = plan(&gm, medians, opts);
    let samples = match &opts.qc.sample_column {
        Some(c) => Some(text_column(source, c, "sample")?),
        None => None,
    };
    let PassOne {
        stats,
        totals,
        lens,
    } = stats_pass(source, &p, opts)?;
    gm.record_counts(
        totals.all,
        totals.matched,
        &totals.unmatched,
        &source.genes().names,
    );
    let (keep, counts) = select_cells(&stats, samples.as_deref(), &opts.qc, &opts.gene_filter);
    Ok(Prepared {
        gm,
        plan: p,
        keep,
        qc: counts,
        lens,
    })
}

/// Computes a median dict from `source`: for each vocabulary gene of the file (after the same gene
/// matching and cell QC as [`tokenize`]), the median of its non-zero values over kept cells.
///
/// `normalize_total`: `Some(1e4)` (recommended, see [`super::medians`]) takes medians of counts scaled
/// to 1e4 per cell over the genes entering the transform; `None` takes medians of raw counts.
/// Two passes (QC statistics, then values); [`MedianMode::Exact`] keeps 4 bytes per non-zero value
/// of the kept cells, [`MedianMode::Histogram`] is bounded per gene. For several files pooled into
/// one dict, use [`MedianBuilder`].
pub fn compute_medians(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    opts: &TokenizeOptions,
    normalize_total: Option<f64>,
    mode: MedianMode,
) -> Result<(GeneMedians, QcCounts), TokenizeError> {
    let mut b = MedianBuilder::new(vocab, normalize_total, mode);
    let qc = b.add(source, opts)?;
    Ok((b.finish(), qc))
}

/// Pools non-zero values of vocabulary genes over several sources into one median dict (the
/// multi-file form of [`compute_medians`]): one accumulator slot per vocabulary token, so a gene
/// seen in several files gets the median of all its values.
pub struct MedianBuilder<'v> {
    vocab: &'v TokenDictionary,
    normalize_total: Option<f64>,
    acc: MedianAccumulator,
}

impl<'v> MedianBuilder<'v> {
    /// An empty builder; see [`compute_medians`] for `normalize_total` and `mode`.
    pub fn new(vocab: &'v TokenDictionary, normalize_total: Option<f64>, mode: MedianMode) -> Self {
        Self {
            vocab,
            normalize_total,
            acc: MedianAccumulator::new(vocab.len(), mode),
        }
    }

    /// Adds the kept cells of one source (gene matching and cell QC as [`tokenize`]); returns its
    /// QC counts. Reads the source twice (QC statistics, then values).
    pub fn add(
        &mut self,
        source: &mut dyn CellSource,
        opts: &TokenizeOptions,
    ) -> Result<QcCounts, TokenizeError> {
        let Prepared {
            plan: p, keep, qc, ..
        } = prepare(source, self.vocab, None, opts, None)?;
        // Slot = token id: one per distinct Ensembl id of the vocabulary.
        let slots: Vec<Option<usize>> = p.used.iter().map(|u| u.map(|(t, _)| t as usize)).collect();
        source.rewind()?;
        while let Some(chunk) = source.next_chunk(opts.chunk_cells.max(1))? {
            for i in 0..chunk.n_cells() {
                if !keep.get(chunk.first_cell + i).copied().unwrap_or(false) {
                    continue;
                }
                let (idx, val) = chunk.cell(i);
                let used = || {
                    idx.iter()
                        .zip(val)
                        .filter_map(|(&j, &v)| Some((slots[j as usize]?, v as f64)))
                };
                let sum: f64 = used().map(|(_, v)| v).sum();
                for (slot, v) in used() {
                    self.acc.add(
                        slot,
                        match self.normalize_total {
                            Some(t) if sum > 0.0 => v / sum * t,
                            Some(_) => 0.0,
                            None => v,
                        },
                    );
                }
            }
        }
        Ok(qc)
    }

    /// The medians of every vocabulary gene that had a non-zero value, keyed by token (Ensembl id).
    pub fn finish(self) -> GeneMedians {
        let medians = self
            .acc
            .finish()
            .into_iter()
            .enumerate()
            .filter_map(|(t, m)| Some((self.vocab.token(t as u32)?.to_string(), m?)))
            .collect();
        GeneMedians { medians }
    }
}

#[cfg(test)]
mod tests {
    use super::is_count;

    #[test]
    fn is_count_is_a_non_negative_whole_number() {
        let fract_rule = |v: f32| v >= 0.0 && v.fract() == 0.0;
        let cases = [
            0.0,
            -0.0,
            1.0,
            3.0,
            0.5,
            2.999_999_8,
            -1.0,
            -0.5,
            8_388_607.0,
            8_388_607.5,
            2.5,
            4_194_303.5,
            16_777_217.0,
            8_388_608.0,
            1e20,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
        ];
        for v in cases {
            assert_eq!(is_count(v), fract_rule(v), "{v}");
        }
    }
}
