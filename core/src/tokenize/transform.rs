//! Official steps 6–8 on one cell: (optional library-size normalisation), division by gene
//! medians, `log2(1 + x)`, ranking and truncation.

use serde::Serialize;

/// Order of genes with equal values.
///
/// The official `np.argsort(-v)` uses numpy's default quicksort, which is not stable, so the order
/// of ties is arbitrary there (insertion sort for < 17 genes keeps column order; introsort beyond).
/// Ties are common: genes with the same count and the same (or missing, = 1) median. Values are
/// compared as the float32 numbers that are stored, so float64 values equal up to rounding noise tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Ties by ascending token id (default; independent of the file's gene order).
    #[default]
    TokenId,
    /// Ties by the file's gene (column) order, as a stable sort would give.
    ColumnOrder,
}

/// One gene of a cell entering the transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneValue {
    /// Column in the file (for [`TieBreak::ColumnOrder`]).
    pub column: u32,
    /// Vocabulary token id.
    pub token: u32,
    /// Raw count.
    pub count: f64,
    /// Divisor: the gene's median (1 if missing from the dict; may be NaN).
    pub median: f64,
}

/// `np.nan_to_num(count / median)`: NaN → 0, ±inf → ±f64::MAX.
pub fn median_divide(count: f64, median: f64) -> f64 {
    let x = count / median;
    if x.is_nan() {
        0.0
    } else if x.is_infinite() {
        f64::MAX.copysign(x)
    } else {
        x
    }
}

/// `sc.pp.log1p(X, base=2)`: `ln(1 + x) / ln 2`.
pub fn log2_1p(x: f64) -> f64 {
    x.ln_1p() / std::f64::consts::LN_2
}

/// A gene's value before the logarithm: the count (scaled to `normalize_total` over the cell's
/// `cell_sum` when asked), divided by the gene's median.
fn divided(count: f64, cell_sum: f64, median: f64, normalize_total: Option<f64>) -> f64 {
    let c = match normalize_total {
        Some(t) if cell_sum > 0.0 => count / cell_sum * t,
        Some(_) => 0.0,
        None => count,
    };
    median_divide(c, median)
}

/// Genes whose stored value is 0 or NaN are dropped (official `np.nonzero`).
pub(crate) fn is_kept(x: f32) -> bool {
    x != 0.0 && !x.is_nan()
}

/// Whether [`rank_cell`] keeps this gene, without its logarithm where the answer is certain: the
/// streaming tokenizer uses it to size its output before the values are computed.
pub fn keeps_gene(count: f64, cell_sum: f64, median: f64, normalize_total: Option<f64>) -> bool {
    let y = divided(count, cell_sum, median, normalize_total);
    // log2(1 + y) >= y for 0 < y <= 1 and grows beyond: far above f32's smallest subnormal.
    y >= 1e-30 || is_kept(log2_1p(y) as f32)
}

/// The sort key of a gene under [`TieBreak::TokenId`]: `!value · token`, so that ascending
/// integer order is value descending, then token ascending.
#[inline]
pub(crate) fn token_key(value: f32, token: u32) -> u64 {
    u64::from(!ordered_bits(value)) << 32 | u64::from(token)
}

/// Truncates `keys` (built by [`token_key`] from kept genes) to `max_len`, sorts them, and
/// unpacks the cell.
pub(crate) fn rank_token_keys(keys: &mut Vec<u64>, max_len: Option<usize>) -> RankedCell {
    let kept = top_sorted_in_place(keys, max_len);
    RankedCell {
        input_ids: keys.iter().map(|&k| k as u32).collect(),
        values: keys
            .iter()
            .map(|&k| from_ordered(!(k >> 32) as u32))
            .collect(),
        kept,
    }
}

/// Normalises, log-transforms, ranks (descending) and truncates one cell's genes.
///
/// `normalize_total`: when `Some(t)`, counts are first scaled to sum to `t` over the given genes
/// (the official commented-out `/ per_cell_nonzero_sum * 1e4`, issue #23). Genes whose value is 0
/// after the transform are dropped (official `np.nonzero`). Returns `(token ids, values as f32)`.
pub fn rank_cell(
    genes: &[GeneValue],
    normalize_total: Option<f64>,
    tie: TieBreak,
    max_len: Option<usize>,
) -> (Vec<u32>, Vec<f32>) {
    let ranked = rank_cell_counted(genes, normalize_total, tie, max_len);
    (ranked.input_ids, ranked.values)
}

/// [`rank_cell`]'s output, with the number of genes kept before truncation.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedCell {
    /// Token ids, highest value first.
    pub input_ids: Vec<u32>,
    /// Their values.
    pub values: Vec<f32>,
    /// Genes with a non-zero value, before truncation to `max_len`.
    pub kept: usize,
}

/// [`rank_cell`], also counting the genes that truncation dropped.
///
/// Each gene is sorted as one integer key (value descending in the high bits, then the
/// tie-break fields), so the sort compares integers instead of following references; with
/// `max_len`, only the genes that survive truncation are fully sorted.
pub fn rank_cell_counted(
    genes: &[GeneValue],
    normalize_total: Option<f64>,
    tie: TieBreak,
    max_len: Option<usize>,
) -> RankedCell {
    // Same operation order as the official (commented-out) line `x / cell_sum * 1e4 / median`,
    // so that values equal in exact arithmetic round identically and ties rank identically.
    let cell_sum: f64 = genes.iter().map(|g| g.count).sum();
    // Ranked on the stored float32 value: float64 values that differ only in the last bits (e.g.
    // 6/2 vs 4/(4/3) after the division) are ties, broken by `tie`, instead of being ordered by
    // rounding noise of the platform's log1p (numpy's SIMD log1p and libm disagree at that level).
    let value =
        |g: &GeneValue| log2_1p(divided(g.count, cell_sum, g.median, normalize_total)) as f32;
    match tie {
        TieBreak::TokenId => {
            // `!value · token`: the column orders only equal (value, token) pairs (one gene in
            // two columns), which rank to identical output, so 64 bits are enough.
            let mut keys: Vec<u64> = genes
                .iter()
                .filter_map(|g| {
                    let x = value(g);
                    is_kept(x).then(|| token_key(x, g.token))
                })
                .collect();
            rank_token_keys(&mut keys, max_len)
        }
        TieBreak::ColumnOrder => {
            // `!value · column · token`: a column appears once, so the token never decides.
            let keys = genes.iter().filter_map(|g| {
                let x = value(g);
                is_kept(x).then(|| {
                    u128::from(!ordered_bits(x)) << 64
                        | u128::from(g.column) << 32
                        | u128::from(g.token)
                })
            });
            let mut keys: Vec<u128> = keys.collect();
            let kept = top_sorted_in_place(&mut keys, max_len);
            RankedCell {
                input_ids: keys.iter().map(|&k| k as u32).collect(),
                values: keys
                    .iter()
                    .map(|&k| from_ordered(!(k >> 64) as u32))
                    .collect(),
                kept,
            }
        }
    }
}

/// Leaves the `max_len` smallest keys, sorted; returns how many there were before the cut.
fn top_sorted_in_place<K: Ord>(keys: &mut Vec<K>, max_len: Option<usize>) -> usize {
    let kept = keys.len();
    match max_len {
        Some(0) => keys.clear(),
        Some(m) if m < keys.len() => {
            keys.select_nth_unstable(m - 1);
            keys.truncate(m);
        }
        _ => {}
    }
    keys.sort_unstable();
    kept
}

/// `f32::total_cmp` order as an unsigned integer order.
fn ordered_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The inverse of [`ordered_bits`].
pub(crate) fn from_ordered(o: u32) -> f32 {
    f32::from_bits(if o & 0x8000_0000 != 0 {
        o & 0x7fff_ffff
    } else {
        !o
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comparison sort the keys replaced: value descending (`total_cmp`), then the tie-break.
    fn by_comparison(genes: &[GeneValue], tie: TieBreak, max_len: Option<usize>) -> RankedCell {
        let mut v: Vec<(f32, &GeneValue)> = genes
            .iter()
            .map(|g| (log2_1p(divided(g.count, 0.0, g.median, None)) as f32, g))
            .filter(|(x, _)| is_kept(*x))
            .collect();
        let kept = v.len();
        v.sort_by(|a, b| {
            b.0.total_cmp(&a.0).then_with(|| match tie {
                TieBreak::TokenId => a.1.token.cmp(&b.1.token).then(a.1.column.cmp(&b.1.column)),
                TieBreak::ColumnOrder => a.1.column.cmp(&b.1.column),
            })
        });
        v.truncate(max_len.unwrap_or(usize::MAX));
        RankedCell {
            input_ids: v.iter().map(|(_, g)| g.token).collect(),
            values: v.iter().map(|(x, _)| *x).collect(),
            kept,
        }
    }

    #[test]
    fn integer_keys_rank_exactly_as_the_comparison_sort() {
        let mut next = crate::tokenize::test_rng(7);
        for case in 0..300 {
            let len = next(400) as usize;
            let genes: Vec<GeneValue> = (0..len)
                .map(|c| GeneValue {
                    // Columns out of order, tokens repeated (duplicate columns of one gene).
                    column: (c as u32 * 7919) % 1009,
                    token: next(60) as u32 + 2,
                    // Few distinct counts: many ties; zeros and negatives too.
                    count: next(12) as f64 - 1.0,
                    median: [1.0, 0.5, 2.0, f64::NAN, 3.0][next(5) as usize],
                })
                .collect();
            for tie in [TieBreak::TokenId, TieBreak::ColumnOrder] {
                for max_len in [None, Some(0), Some(1), Some(17), Some(len / 2)] {
                    let want = by_comparison(&genes, tie, max_len);
                    let got = rank_cell_counted(&genes, None, tie, max_len);
                    assert_eq!(got, want, "case {case}, {tie:?}, max_len {max_len:?}");
                }
            }
        }
    }

    #[test]
    fn ordered_bits_round_trip_and_follow_total_cmp() {
        let xs = [
            -f32::MAX,
            -0.5,
            -1e-40,
            1e-40,
            0.5,
            1.0,
            3.25,
            f32::MAX,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(
                ordered_bits(w[0]) < ordered_bits(w[1]),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for x in xs {
            assert_eq!(from_ordered(ordered_bits(x)).to_bits(), x.to_bits());
        }
    }
}
