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
fn is_kept(x: f32) -> bool {
    x != 0.0 && !x.is_nan()
}

/// Whether [`rank_cell`] keeps this gene, without its logarithm where the answer is certain: the
/// streaming tokenizer uses it to size its output before the values are computed.
pub fn keeps_gene(count: f64, cell_sum: f64, median: f64, normalize_total: Option<f64>) -> bool {
    let y = divided(count, cell_sum, median, normalize_total);
    // log2(1 + y) >= y for 0 < y <= 1 and grows beyond: far above f32's smallest subnormal.
    y >= 1e-30 || is_kept(log2_1p(y) as f32)
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
    // Same operation order as the official (commented-out) line `x / cell_sum * 1e4 / median`,
    // so that values equal in exact arithmetic round identically and ties rank identically.
    let cell_sum: f64 = genes.iter().map(|g| g.count).sum();
    // Ranked on the stored float32 value: float64 values that differ only in the last bits (e.g.
    // 6/2 vs 4/(4/3) after the division) are ties, broken by `tie`, instead of being ordered by
    // rounding noise of the platform's log1p (numpy's SIMD log1p and libm disagree at that level).
    let mut v: Vec<(f32, &GeneValue)> = genes
        .iter()
        .map(|g| {
            (
                log2_1p(divided(g.count, cell_sum, g.median, normalize_total)) as f32,
                g,
            )
        })
        .filter(|(x, _)| is_kept(*x))
        .collect();
    v.sort_by(|a, b| {
        b.0.total_cmp(&a.0).then_with(|| match tie {
            TieBreak::TokenId => a.1.token.cmp(&b.1.token).then(a.1.column.cmp(&b.1.column)),
            TieBreak::ColumnOrder => a.1.column.cmp(&b.1.column),
        })
    });
    if let Some(m) = max_len {
        v.truncate(m);
    }
    (
        v.iter().map(|(_, g)| g.token).collect(),
        v.iter().map(|(x, _)| *x).collect(),
    )
}
