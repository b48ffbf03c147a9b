//! Ranking cells without sorting them. Without library-size normalisation a gene's value
//! depends only on its count and median, and most counts are small (counts 1–8 are 96 % of a
//! 1 GB Poisson-resampled Baron corpus): every (column, small count) pair is ranked once, up
//! front, by the same key the sort would use, and a cell's genes are then ordered by sorting
//! their global ranks: small integers, which two counting passes sort, where the 64-bit keys
//! needed a comparison sort. Each of the few genes with a larger count is placed among the
//! table's keys by binary search and sorts with the ranks. Sorting each cell was a fifth of
//! tokenizing a large file; `benches/rank_cells.rs` measures the two on real cells. A large
//! file gets a larger table (counts up to 16 or 32, [`RankTable::counts_for`]): each count
//! above the table costs a logarithm and a binary search.

use super::transform::{RankedCell, from_ordered, is_kept, log2_1p, median_divide, token_key};

/// The counts ranked up front (`1..=counts`) a table may have.
const COUNT_RANGES: [usize; 3] = [8, 16, 32];
/// One key in this many is a fence ([`RankTable::position`]): a cache line of keys.
const FENCE: usize = 8;
/// A column that does not enter the transform.
const NOT_USED: u32 = u32::MAX;
/// A (column, count) pair whose value is dropped (0 or NaN: a NaN or infinite median).
const DROPPED: u32 = u32::MAX - 1;

/// The global order of every (column, small count) pair of a file, by the sort key of
/// [`super::transform::TieBreak::TokenId`]; valid only without library-size normalisation.
#[derive(Debug, Clone)]
pub struct RankTable {
    /// The global ranks of count 1 of every column, then of count 2, and so on to `counts`:
    /// most counts are 1 to 4 (87 % of a 1 GB Poisson-resampled corpus), whose rows (60 KB
    /// each over 15,000 columns) stay in a core's cache, where one column's ranks end to end
    /// spread every lookup over the whole table.
    ranks: Vec<u32>,
    /// Columns.
    cols: usize,
    counts: usize,
    /// The sort key of each rank, ascending.
    keys: Vec<u64>,
    /// Every [`FENCE`]th key, to place the large counts' keys among them.
    fences: Vec<u64>,
    /// Each column's token and median (`None`: not in the transform), for counts outside the
    /// table.
    used: Vec<Option<(u32, f64)>>,
}

/// One thread's working memory for [`RankTable::rank`], reused from cell to cell.
#[derive(Debug, Default)]
pub struct RankScratch {
    /// The cell's items (`2 · rank + 1` for a table gene, `2 · position` for a large
    /// count), then sorted: the first `n` (the buffer only grows, so that it is never zeroed
    /// per cell, and appending needs no length kept in memory).
    ranks: Vec<u32>,
    n: usize,
    /// The radix sort's other buffer (grown like `ranks`) and counters.
    sorted: Vec<u32>,
    counts: Vec<u32>,
    /// Keys of the counts outside the table.
    large: Vec<u64>,
}

impl RankTable {
    /// The table for columns entering the transform as `(token, median)` (`None`: a column
    /// that does not), ranking counts `1..=counts` (8, 16 or 32).
    pub fn new(used: &[Option<(u32, f64)>], counts: usize) -> Self {
        assert!(
            COUNT_RANGES.contains(&counts),
            "a rank table ranks counts up to one of {COUNT_RANGES:?}, not {counts}"
        );
        let cols = used.len();
        let mut ranks = vec![NOT_USED; cols * counts];
        let mut entries: Vec<(u64, u32)> = Vec::new();
        for (j, u) in used.iter().enumerate() {
            let Some((token, m)) = *u else { continue };
            for c in 1..=counts {
                let slot = (c - 1) * cols + j;
                // The very expression `rank_cell` evaluates, so the keys are identical.
                let x = log2_1p(median_divide(c as f64, m)) as f32;
                if is_kept(x) {
                    entries.push((token_key(x, token), slot as u32));
                } else {
                    ranks[slot] = DROPPED;
                }
            }
        }
        entries.sort_unstable();
        for (r, &(_, slot)) in entries.iter().enumerate() {
            ranks[slot as usize] = r as u32;
        }
        let keys: Vec<u64> = entries.into_iter().map(|(k, _)| k).collect();
        Self {
            ranks,
            cols,
            counts,
            fences: keys.iter().step_by(FENCE).copied().collect(),
            keys,
            used: used.to_vec(),
        }
    }

    /// The counts a table for `genes` cells' genes in all (before truncation) over
    /// `used_columns` columns should rank (`1..=counts`), or `None` where sorting each cell
    /// is cheaper than building one. Each (column, count) of the table costs a logarithm and a
    /// sort entry; each gene saves a sort entry, and one with a count the table ranks saves a
    /// logarithm and a binary search. Counts 9–32 were 3.7 % of a 1 GB corpus's: ranking them
    /// too cut user CPU by 7–13 % there, while the larger table slowed Baron's 822 cells
    /// (1.16 M genes over 14,789 columns) from 0.10 to 0.12 s.
    pub fn counts_for(genes: usize, used_columns: usize) -> Option<usize> {
        if genes < 2 * COUNT_RANGES[0] * used_columns {
            return None;
        }
        COUNT_RANGES
            .into_iter()
            .rev()
            .find(|&c| c == COUNT_RANGES[0] || genes >= 64 * c * used_columns)
    }

    /// Column `j`'s rank of count `c` (in `1..=counts`).
    #[inline(always)]
    fn rank_of(&self, j: u32, c: u32) -> u32 {
        self.ranks[(c - 1) as usize * self.cols + j as usize]
    }

    /// The cell whose genes are columns `idx` with counts `val`, as
    /// [`super::transform::rank_cell_counted`] ranks it with [`super::transform::TieBreak::TokenId`]
    /// and no normalisation.
    pub fn rank(
        &self,
        idx: &[u32],
        val: &[f32],
        s: &mut RankScratch,
        max_len: Option<usize>,
    ) -> RankedCell {
        let kept = self.order(idx, val, s);
        let cap = max_len.map_or(kept, |m| m.min(kept));
        let mut input_ids = vec![0; cap];
        let mut values = vec![0.0; cap];
        self.unpack(s, &mut input_ids, &mut values);
        RankedCell {
            input_ids,
            values,
            kept,
        }
    }

    /// [`Self::rank`] into memory the caller provides (the output file's, for the ragged
    /// layout): writes the first `min(kept, ids.len())` tokens and values and returns how many
    /// genes the cell keeps before truncation, which the caller compares with the slots'
    /// length. No vectors per cell to allocate and zero (5–6 % of the CPU time on a 1 GB file).
    pub fn rank_into(
        &self,
        idx: &[u32],
        val: &[f32],
        s: &mut RankScratch,
        ids: &mut [u32],
        values: &mut [f32],
    ) -> usize {
        let kept = self.order(idx, val, s);
        let n = kept.min(ids.len()).min(values.len());
        self.unpack(s, &mut ids[..n], &mut values[..n]);
        kept
    }

    /// Puts the cell's kept genes in rank order into `s.ranks[..s.n]` (and `s.large`); returns how
    /// many genes it keeps.
    fn order(&self, idx: &[u32], val: &[f32], s: &mut RankScratch) -> usize {
        s.large.clear();
        if s.ranks.len() < idx.len() {
            s.ranks.resize(idx.len(), 0);
        }
        let items = &mut s.ranks[..idx.len()];
        let mut n = 0;
        for (&j, &v) in idx.iter().zip(val) {
            let c = v as u32;
            if c.wrapping_sub(1) < self.counts as u32 && c as f32 == v {
                let r = self.rank_of(j, c);
                if r < DROPPED {
                    items[n] = r << 1 | 1;
                    n += 1;
                }
            } else if v != 0.0
                && let Some((token, m)) = self.used[j as usize]
            {
                let x = log2_1p(median_divide(f64::from(v), m)) as f32;
                if is_kept(x) {
                    s.large.push(token_key(x, token));
                }
            }
        }
        let kept = n + s.large.len();
        // Each large count sorts just before the first table key above it: `2p` against the
        // table's `2r + 1`. Equal positions keep the large keys' order, which is taken from
        // `large` itself as the positions are read.
        s.large.sort_unstable();
        for &l in &s.large {
            items[n] = (self.position(l) as u32) << 1;
            n += 1;
        }
        s.n = n;
        self.sort_ranks(s);
        kept
    }

    /// Writes the first `ids.len()` genes [`Self::order`] left in `s` (at most as many as it
    /// kept), as tokens and values.
    fn unpack(&self, s: &RankScratch, ids: &mut [u32], values: &mut [f32]) {
        // The keys, in order: from the table (about a core's cache in size, so each is asked
        // for a few genes ahead) or the next large count, unpacked as they are read.
        let first = &s.ranks[..ids.len()];
        let mut large = s.large.iter();
        for (i, ((id, value), &item)) in ids.iter_mut().zip(values).zip(first).enumerate() {
            if let Some(&ahead) = first.get(i + PREFETCH_AHEAD) {
                prefetch(self.keys.as_ptr().wrapping_add((ahead >> 1) as usize));
            }
            let k = if item & 1 == 1 {
                self.keys[(item >> 1) as usize]
            } else {
                *large.next().expect("one large count per even item")
            };
            *id = k as u32;
            *value = from_ordered(!(k >> 32) as u32);
        }
    }

    /// How many table keys are at most `key`: found among every [`FENCE`]th key (a table a
    /// core's cache holds), then within the one cache line of keys between two of them.
    fn position(&self, key: u64) -> usize {
        let block = self.fences.partition_point(|&k| k <= key);
        if block == 0 {
            return 0;
        }
        let from = (block - 1) * FENCE;
        let to = (from + FENCE).min(self.keys.len());
        from + self.keys[from..to].partition_point(|&k| k <= key)
    }

    /// Sorts `s.ranks[..s.n]`: two counting passes over half the rank bits each (least significant
    /// first) for cells long enough to repay the counters, a comparison sort otherwise.
    fn sort_ranks(&self, s: &mut RankScratch) {
        let n = s.n;
        let items = &mut s.ranks[..n];
        // Items are `2 · rank (+ 1)`, below `2 · len + 2`.
        let bits = u32::BITS - (2 * self.keys.len() as u32 + 1).leading_zeros();
        let low = bits.div_ceil(2);
        let buckets = 1usize << low;
        if n < 64 || n < buckets / 8 {
            items.sort_unstable();
            return;
        }
        let mask = (buckets - 1) as u32;
        s.counts.clear();
        s.counts.resize(2 * buckets, 0);
        let (lo, hi) = s.counts.split_at_mut(buckets);
        for &r in &*items {
            lo[(r & mask) as usize] += 1;
            hi[(r >> low) as usize] += 1;
        }
        for h in [&mut *lo, &mut *hi] {
            let mut sum = 0;
            for c in h.iter_mut() {
                let k = *c;
                *c = sum;
                sum += k;
            }
        }
        if s.sorted.len() < n {
            s.sorted.resize(n, 0);
        }
        let sorted = &mut s.sorted[..n];
        for &r in &*items {
            let at = &mut lo[(r & mask) as usize];
            sorted[*at as usize] = r;
            *at += 1;
        }
        for &r in &*sorted {
            let at = &mut hi[(r >> low) as usize];
            items[*at as usize] = r;
            *at += 1;
        }
    }
}

/// How many genes ahead the table rows and keys are asked for.
const PREFETCH_AHEAD: usize = 16;

/// Asks for the cache line at `p` (a hint: no effect on results, none off x86-64).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    // SAFETY: SSE is part of every x86-64 target, and a prefetch never faults or reads into
    // the program, whatever the address.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::transform::{GeneValue, TieBreak, rank_cell_counted};

    /// Random cells (repeated columns, columns sharing a token, zeros, negatives, fractions,
    /// counts on both sides of the table's edge), under medians below and above 1, zero, NaN
    /// and infinite, rank exactly as the sorting path ranks them, truncated or not.
    #[test]
    fn ranks_like_the_sort_on_random_cells() {
        let mut next = crate::tokenize::test_rng(11);
        let n_cols = 300usize;
        let medians = [1.0, 0.37, 2.5, 0.0, f64::NAN, f64::INFINITY, 1e-40, 3.0];
        let used: Vec<Option<(u32, f64)>> = (0..n_cols)
            .map(|j| (j % 9 != 4).then(|| (next(200) as u32 + 1, medians[next(8) as usize])))
            .collect();
        let tables = COUNT_RANGES.map(|c| RankTable::new(&used, c));
        let mut scratch = RankScratch::default();
        for case in 0..400 {
            let len = next(500) as usize;
            let mut idx: Vec<u32> = (0..len).map(|_| next(n_cols as u64) as u32).collect();
            if case % 3 != 0 {
                // Canonical rows most of the time: each column once.
                idx.sort_unstable();
                idx.dedup();
            }
            let val: Vec<f32> = idx
                .iter()
                .map(|_| match next(20) {
                    0 => 0.0,
                    1 => -2.0,
                    2 => 1.5,
                    3 => 9.0 + next(40) as f32,
                    _ => 1.0 + next(9) as f32,
                })
                .collect();
            let genes: Vec<GeneValue> = idx
                .iter()
                .zip(&val)
                .filter_map(|(&j, &v)| {
                    let (token, median) = used[j as usize]?;
                    Some(GeneValue {
                        column: j,
                        token,
                        count: f64::from(v),
                        median,
                    })
                })
                .collect();
            for max_len in [None, Some(0), Some(1), Some(40), Some(idx.len() / 3)] {
                let want = rank_cell_counted(&genes, None, TieBreak::TokenId, max_len);
                for table in &tables {
                    let got = table.rank(&idx, &val, &mut scratch, max_len);
                    let counts = table.counts;
                    assert_eq!(
                        got, want,
                        "case {case}, max_len {max_len:?}, counts {counts}"
                    );
                    // Into the caller's memory: the same tokens, nothing written past them.
                    let n = want.input_ids.len();
                    let (mut ids, mut values) = (vec![7; n + 1], vec![0.5; n + 1]);
                    let kept =
                        table.rank_into(&idx, &val, &mut scratch, &mut ids[..n], &mut values[..n]);
                    assert_eq!(kept, want.kept, "case {case}, counts {counts}");
                    assert_eq!(ids[..n], want.input_ids[..], "case {case}, counts {counts}");
                    assert_eq!(values[..n], want.values[..], "case {case}, counts {counts}");
                    assert_eq!(
                        (ids[n], values[n]),
                        (7, 0.5),
                        "case {case}, counts {counts}"
                    );
                }
            }
        }
    }

    /// No table for a few genes, counts up to 8 for Baron's 822 cells, 32 for the 1 GB file.
    #[test]
    fn a_table_pays_off_only_for_enough_genes() {
        assert_eq!(RankTable::counts_for(1000, 15_000), None);
        assert_eq!(RankTable::counts_for(1_164_056, 14_789), Some(8));
        assert_eq!(RankTable::counts_for(20_000_000, 14_789), Some(16));
        assert_eq!(RankTable::counts_for(120_000_000, 14_789), Some(32));
    }
}
