//! Co-expressed gene pairs from a count matrix, following the paper's recipe (spec §5.2):
//! sample 3,000 cells per matrix, keep gene pairs whose Pearson correlation computed on non-zero
//! expression is ≥ 0.8. The pairs of all matrices are then embedded with gene2vec ([`super::sgns`]).
//!
//! "On non-zero expression" is read as: for genes `x`, `y` only the cells where both are detected
//! count. Two additions, recorded in the manifest and documented in `docs/priors.md`:
//! - `min_cells`: a pair needs at least this many co-detected cells (with 2 or 3 cells any pair
//!   correlates perfectly, which would flood the graph with noise);
//! - `max_genes`: only the most often detected genes of each matrix are paired, which bounds the
//!   pair table (`max_genes²/2` accumulators) and the time (`Σ_cells detected²/2`).
//!
//! Values are library-size normalised and log-transformed (`ln(1 + 10⁴·count/total)`) by default,
//! so that correlations are not driven by sequencing depth; the paper does not say.

use serde::{Deserialize, Serialize};

use super::SplitMix64;
use super::graphs::GeneGraph;
use crate::data::CsrChunk;

/// Options (recorded in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoexpOptions {
    /// Cells sampled per matrix (official: 3,000; all when the matrix has fewer).
    pub cells_per_matrix: usize,
    /// Keep pairs with Pearson r ≥ this (official: 0.8).
    pub min_pearson: f32,
    /// Co-detected cells a pair needs (not in the paper; see the module docs).
    pub min_cells: usize,
    /// Most-detected genes paired per matrix (not in the paper; see the module docs).
    pub max_genes: usize,
    /// Normalise to 10⁴ counts per cell and apply `ln(1 + x)` before correlating.
    pub normalize: bool,
    /// Seed of the cell sample.
    pub seed: u64,
}

impl Default for CoexpOptions {
    fn default() -> Self {
        Self {
            cells_per_matrix: 3000,
            min_pearson: 0.8,
            min_cells: 20,
            max_genes: 2000,
            normalize: true,
            seed: 42,
        }
    }
}

/// A tested gene pair (matrix column indices, `a < b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairCorrelation {
    /// First gene column.
    pub a: u32,
    /// Second gene column.
    pub b: u32,
    /// Pearson r over co-detected cells.
    pub r: f32,
    /// Number of co-detected cells.
    pub n: u32,
}

/// What one matrix gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CoexpStats {
    /// Cells sampled.
    pub cells_used: usize,
    /// Genes detected in at least `min_cells` sampled cells (before `max_genes`).
    pub genes_detected: usize,
    /// Genes paired.
    pub genes_paired: usize,
    /// Pairs with at least `min_cells` co-detected cells.
    pub pairs_tested: usize,
    /// Pairs with r ≥ `min_pearson`.
    pub pairs_kept: usize,
}

/// The result for one matrix.
#[derive(Debug, Clone, Default)]
pub struct CoexpResult {
    /// Pairs with r ≥ `min_pearson`.
    pub kept: Vec<PairCorrelation>,
    /// Every tested pair (only when asked for: used by the quality check).
    pub tested: Vec<PairCorrelation>,
    /// Statistics.
    pub stats: CoexpStats,
}

/// Index of pair `(a, b)`, `a < b < g`, in the packed upper triangle.
fn tri(a: usize, b: usize, g: usize) -> usize {
    a * g - a * (a + 1) / 2 + (b - a - 1)
}

/// Finds co-expressed pairs in a cells × genes matrix (`cells` holds all cells; `n_genes` columns;
/// `usable[g] = false` leaves column `g` out, e.g. genes without an Ensembl id).
pub fn coexpressed_pairs(
    cells: &CsrChunk,
    n_genes: usize,
    usable: Option<&[bool]>,
    opts: &CoexpOptions,
    keep_tested: bool,
) -> CoexpResult {
    let usable = |g: u32| usable.is_none_or(|u| u.get(g as usize).copied().unwrap_or(false));
    let mut rng = SplitMix64::stream(opts.seed, 3);
    let sample = rng.sample_indices(cells.n_cells(), opts.cells_per_matrix);
    // Normalised sampled cells and detection counts.
    let mut detected = vec![0u32; n_genes];
    let mut rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(sample.len());
    for &c in &sample {
        let (idx, val) = cells.cell(c);
        let total: f64 = val.iter().map(|&v| v as f64).sum();
        let row: Vec<(u32, f64)> = idx
            .iter()
            .zip(val)
            .filter(|(g, v)| **v != 0.0 && (**g as usize) < n_genes && usable(**g))
            .map(|(&g, &v)| {
                let x = if opts.normalize && total > 0.0 {
                    (1.0 + 1e4 * v as f64 / total).ln()
                } else {
                    v as f64
                };
                (g, x)
            })
            .collect();
        for &(g, _) in &row {
            detected[g as usize] += 1;
        }
        rows.push(row);
    }
    let min_cells = opts.min_cells.max(3) as u32;
    let mut genes: Vec<u32> = (0..n_genes as u32)
        .filter(|&g| detected[g as usize] >= min_cells)
        .collect();
    let genes_detected = genes.len();
    genes.sort_by_key(|&g| (std::cmp::Reverse(detected[g as usize]), g));
    genes.truncate(opts.max_genes);
    genes.sort_unstable();
    let g = genes.len();
    let mut compact = vec![u32::MAX; n_genes];
    for (k, &gene) in genes.iter().enumerate() {
        compact[gene as usize] = k as u32;
    }
    let n_pairs = g * g.saturating_sub(1) / 2;
    let mut count = vec![0u32; n_pairs];
    // [sx, sy, sxx, syy, sxy] per pair.
    let mut sums = vec![[0f64; 5]; n_pairs];
    let mut kept_row: Vec<(usize, f64)> = Vec::new();
    for row in &rows {
        kept_row.clear();
        kept_row.extend(
            row.iter()
                .filter(|(gene, _)| compact[*gene as usize] != u32::MAX)
                .map(|&(gene, x)| (compact[gene as usize] as usize, x)),
        );
        kept_row.sort_unstable_by_key(|p| p.0);
        for (i, &(a, x)) in kept_row.iter().enumerate() {
            let base = a * g - a * (a + 1) / 2;
            for &(b, y) in &kept_row[i + 1..] {
                let t = base + (b - a - 1);
                count[t] += 1;
                let s = &mut sums[t];
                s[0] += x;
                s[1] += y;
                s[2] += x * x;
                s[3] += y * y;
                s[4] += x * y;
            }
        }
    }
    let mut out = CoexpResult::default();
    for a in 0..g {
        for b in a + 1..g {
            let t = tri(a, b, g);
            let n = count[t];
            if n < min_cells {
                continue;
            }
            let [sx, sy, sxx, syy, sxy] = sums[t];
            let nf = n as f64;
            let vx = nf * sxx - sx * sx;
            let vy = nf * syy - sy * sy;
            // Constant expression over the co-detected cells: correlation undefined.
            if vx <= 1e-12 * nf * sxx.max(1e-300) || vy <= 1e-12 * nf * syy.max(1e-300) {
                continue;
            }
            let r = ((nf * sxy - sx * sy) / (vx.sqrt() * vy.sqrt())) as f32;
            let p = PairCorrelation {
                a: genes[a],
                b: genes[b],
                r,
                n,
            };
            out.stats.pairs_tested += 1;
            if r >= opts.min_pearson {
                out.kept.push(p);
            }
            if keep_tested {
                out.tested.push(p);
            }
        }
    }
    out.stats.cells_used = sample.len();
    out.stats.genes_detected = genes_detected;
    out.stats.genes_paired = g;
    out.stats.pairs_kept = out.kept.len();
    out
}

/// Co-expression graph of one matrix over Ensembl ids (`ensembl[g]` per column; `None` columns
/// are left out), with the per-pair results.
pub fn coexp_graph(
    cells: &CsrChunk,
    ensembl: &[Option<String>],
    opts: &CoexpOptions,
    keep_tested: bool,
) -> (GeneGraph, CoexpResult) {
    let usable: Vec<bool> = ensembl.iter().map(Option::is_some).collect();
    let res = coexpressed_pairs(cells, ensembl.len(), Some(&usable), opts, keep_tested);
    let mut g = GeneGraph::default();
    for p in &res.kept {
        if let (Some(a), Some(b)) = (&ensembl[p.a as usize], &ensembl[p.b as usize]) {
            g.add(a, b);
        }
    }
    (g, res)
}
