//! Pass 1 of tokenization: each cell's statistics for QC (total and mitochondrial counts,
//! expressed genes), the count totals of the coverage report, the number of genes each cell
//! keeps, and the check that the matrix holds counts; one streaming read of the matrix, each
//! chunk counted across rayon's threads while the next is read.

use rayon::prelude::*;

use super::TokenizeError;
use super::pipeline::{
    COUNTED, KEEPS_COUNTS, MAPPED, MITO, Plan, READS_VALUES, TOKEN, TokenizeOptions, USED,
};
use super::qc::CellStats;
use super::transform::keeps_gene;
use crate::data::{CellSource, CsrChunk};

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
pub(super) struct PassOne {
    pub(super) stats: Vec<CellStats>,
    pub(super) totals: CountTotals,
    /// Genes each cell keeps after the transform, before QC and truncation.
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
pub(super) struct CountTotals {
    pub(super) all: f64,
    pub(super) matched: f64,
    /// Per column (empty until a column off the vocabulary has a count).
    pub(super) unmatched: Vec<f64>,
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
/// the vocabulary, unmapped or mitochondrial are added up on their own ([`READS_VALUES`]);
/// whole numbers add exactly in any order, so the results are those of the loop that adds
/// each value in turn. Of the other columns the per-value loop only counts non-zero entries
/// (a count of 1 or more is kept by a divisor of [`KEEPS_COUNTS`]), so that where the chunk
/// has no stored zero (`zeros` false) it reads no value at all: the floating-point sums and
/// comparisons had kept it waiting on each value in turn.
fn count_facts(
    idx: &[u32],
    val: &[f32],
    p: &Plan,
    opts: &TokenizeOptions,
    totals: &mut CountTotals,
    zeros: bool,
) -> (CellStats, u32) {
    let all = sum_whole(val);
    let facts = if zeros {
        entry_facts::<true>(idx, val, p, totals)
    } else {
        entry_facts::<false>(idx, val, p, totals)
    };
    totals.all += all;
    totals.matched += all - facts.off_vocab;
    let s = CellStats {
        total: all - facts.unmapped,
        mito: facts.mito,
        n_counted: facts.n_counted,
    };
    if opts.normalize_total.is_none() {
        return (s, facts.kept);
    }
    let used_sum = idx
        .iter()
        .zip(val)
        .filter(|&(&j, _)| p.flags[j as usize] & USED != 0)
        .map(|(_, &v)| f64::from(v))
        .sum();
    (s, kept_normalized(idx, val, p, opts, used_sum))
}

/// What [`count_facts`] gathers entry by entry.
#[derive(Default)]
struct EntryFacts {
    off_vocab: f64,
    unmapped: f64,
    mito: f64,
    n_counted: u32,
    /// Genes kept without normalisation.
    kept: u32,
}

impl EntryFacts {
    /// A value of a [`READS_VALUES`] column; returns whether its gene is kept (a used column
    /// whose divisor may drop a count). Out of line, so that the usual loop keeps its
    /// counters in registers.
    #[inline(never)]
    fn read_value(&mut self, j: usize, f: u8, v: f32, p: &Plan, totals: &mut CountTotals) -> u32 {
        let v = f64::from(v);
        if f & TOKEN == 0 {
            self.off_vocab += v;
            totals.add_unmatched(j, v, p.mapped.len());
        }
        if f & MAPPED == 0 {
            self.unmapped += v;
        } else if f & MITO != 0 {
            self.mito += v;
        }
        u32::from(
            f & (USED | KEEPS_COUNTS) == USED
                && p.used[j].is_some_and(|(_, m)| keeps_gene(v, 0.0, m, None)),
        )
    }
}

/// [`count_facts`]' loop over a cell's entries, whose values are whole numbers; `ZEROS`:
/// some may be 0 (stored zeros), else none is. Out of line: inlined into the chunk's closure
/// it kept a counter on the stack, a store and a load per entry.
#[inline(never)]
fn entry_facts<const ZEROS: bool>(
    idx: &[u32],
    val: &[f32],
    p: &Plan,
    totals: &mut CountTotals,
) -> EntryFacts {
    let mut x = EntryFacts::default();
    let (mut n_counted, mut kept) = (0u32, 0u32);
    let val = &val[..idx.len()];
    for (k, &j) in idx.iter().enumerate() {
        let f = p.flags[j as usize];
        let non_zero = if ZEROS { u32::from(val[k] != 0.0) } else { 1 };
        // Counted and mitochondrial columns are mapped ones.
        n_counted += u32::from(f & COUNTED != 0) & non_zero;
        kept += u32::from(f & KEEPS_COUNTS != 0) & non_zero;
        if f & READS_VALUES != 0 && non_zero != 0 {
            kept += x.read_value(j as usize, f, val[k], p, totals);
        }
    }
    x.n_counted = n_counted;
    x.kept = kept;
    x
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
    // Every value checked at once (and stored zeros looked for); cells are checked one by
    // one only to name the first offender.
    let (whole, zeros) = chunk.data.iter().fold((true, false), |(ok, z), &v| {
        (ok & is_count(v), z | (v == 0.0))
    });
    let check = opts.require_counts && !whole;
    let fused = opts.normalize_total.is_none();
    // Cells are independent: rayon's threads take them (natively; one thread in wasm), each
    // with its own totals, added up after the chunk.
    let per_cell = |totals: &mut CountTotals, i: usize| -> CellFacts {
        let (idx, val) = chunk.cell(i);
        if whole {
            return Ok(count_facts(idx, val, p, opts, totals, zeros));
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
pub(super) fn stats_pass(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::pipeline::column_flags;

    /// Pass 1's entry loop gives the facts of their definitions, whether or not it looks for
    /// stored zeros: random cells over columns of every kind (used with a divisor that keeps
    /// every count or one that may drop some, unmapped, mitochondrial, off the vocabulary,
    /// counted or not), with stored zeros, then without them.
    #[test]
    fn cell_facts_follow_their_definitions() {
        let mut next = crate::tokenize::test_rng(5);
        let n = 60;
        let divisors = [1.0, 0.5, 2.0, 3.0, 0.0, f64::NAN, 1e30, -1.0, f64::INFINITY];
        let mut plan = Plan {
            mapped: Vec::new(),
            flags: Vec::new(),
            used: Vec::new(),
            counted_all: false,
        };
        for _ in 0..n {
            let mapped = next(5) != 0;
            let token = next(4) != 0;
            let used =
                (token && next(4) != 0).then(|| (next(100) as u32, divisors[next(9) as usize]));
            let (mito, counted) = (mapped && next(6) == 0, mapped && next(3) != 0);
            plan.flags.push(column_flags(
                used.map(|u| u.1),
                mapped,
                mito,
                counted,
                token,
            ));
            plan.mapped.push(mapped);
            plan.used.push(used);
        }
        let opts = TokenizeOptions::default();
        for case in 0..300 {
            let mut idx: Vec<u32> = (0..next(n as u64)).map(|_| next(n as u64) as u32).collect();
            idx.sort_unstable();
            idx.dedup();
            let val: Vec<f32> = idx
                .iter()
                .map(|_| if next(5) == 0 { 0.0 } else { next(12) as f32 })
                .collect();
            let f = |j: u32| plan.flags[j as usize];
            let sum = |keep: &dyn Fn(u8) -> bool| -> f64 {
                idx.iter()
                    .zip(&val)
                    .filter(|&(&j, _)| keep(f(j)))
                    .map(|(_, &v)| f64::from(v))
                    .sum()
            };
            let all = sum(&|_| true);
            let want = (
                all - sum(&|f| f & MAPPED == 0),
                sum(&|f| f & MAPPED != 0 && f & MITO != 0),
                idx.iter()
                    .zip(&val)
                    .filter(|&(&j, &v)| f(j) & COUNTED != 0 && v != 0.0)
                    .count() as u32,
                idx.iter()
                    .zip(&val)
                    .filter(|&(&j, &v)| {
                        plan.used[j as usize]
                            .is_some_and(|(_, m)| keeps_gene(f64::from(v), 0.0, m, None))
                    })
                    .count() as u32,
                all - sum(&|f| f & TOKEN == 0),
            );
            let (nz_idx, nz_val): (Vec<u32>, Vec<f32>) = idx
                .iter()
                .zip(&val)
                .filter(|&(_, &v)| v != 0.0)
                .map(|(&j, &v)| (j, v))
                .unzip();
            for (idx, val, zeros) in [(&idx, &val, true), (&nz_idx, &nz_val, false)] {
                let mut totals = CountTotals::default();
                let (st, kept) = count_facts(idx, val, &plan, &opts, &mut totals, zeros);
                let got = (st.total, st.mito, st.n_counted, kept, totals.matched);
                assert_eq!(got, want, "case {case}, stored zeros {zeros}");
                assert_eq!(totals.all, all);
            }
        }
    }

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
