//! A 2-D UMAP (McInnes, Healy & Melville 2018) of cell embeddings, in plain Rust so the browser's
//! worker (wasm32) and native code compute the same picture.
//!
//! The steps follow umap-learn 0.5 with its defaults (`local_connectivity` 1, `set_op_mix_ratio`
//! 1, `negative_sample_rate` 5, `learning_rate` 1, `repulsion_strength` 1):
//!
//! 1. exact k nearest neighbours (each cell is its own first neighbour), by a blocked brute force
//!    that computes every pair once: O(n² · d) time, O(n · k) memory (≈ 3 s for 10 000 × 256
//!    natively in release, ≈ 2× that in wasm); refused above [`MAX_CELLS`];
//! 2. `smooth_knn_dist`: ρᵢ = distance to the nearest other cell with non-zero distance, σᵢ by
//!    binary search so that Σⱼ exp(−(dᵢⱼ − ρᵢ)/σᵢ) = log₂ k;
//! 3. memberships exp(−(dᵢⱼ − ρᵢ)/σᵢ), fuzzy union A + Aᵀ − A∘Aᵀ, edges below max / n_epochs
//!    dropped;
//! 4. `a`, `b` of the low-dimensional kernel 1 / (1 + a d^{2b}) fitted to `min_dist`/`spread` by
//!    least squares, as `find_ab_params` ([`find_ab_params`]);
//! 5. initial layout: PCA (via [`super::pca`]) scaled to ±10 plus 10⁻⁴ noise, or uniform ±10;
//!    then rescaled to [0, 10] per axis;
//! 6. SGD: each edge every `max w / w` epochs, 5 negative samples per positive one, gradients
//!    clipped at ±4, learning rate 1 − epoch / n_epochs.
//!
//! Deviations, all deliberate: self is forced to be neighbour 0 and ties are broken by index
//! (umap-learn's argsort can drop self among duplicates); for the cosine metric the PCA
//! initialisation is of the L2-normalised rows; the init noise is uniform (same s.d.) rather
//! than normal; the RNG is SplitMix64, so layouts differ from umap-learn's point for point.
//!
//! Determinism: one thread, a fixed order of floating-point operations, and no platform libm:
//! `exp`/`ln`/`pow` are computed here from IEEE-exact operations ([`exp_det`], [`ln_det`]), so
//! the same input and seed give bit-identical output natively and in wasm.

use std::borrow::Cow;

use thiserror::Error;

use super::pca::pca_2d;
use crate::priors::SplitMix64;

/// Largest number of cells [`umap`] accepts: the exact neighbour search is O(n² · d). Whole runs
/// at 256 dimensions, release, one core: 10 000 cells ≈ 16 s natively (3 s of it the search),
/// ≈ 28 s in wasm (node); 20 000 cells ≈ 21 s natively (12 s of search; 200 epochs above
/// 10 000 cells), so roughly 40 s in the browser. Above it, subsample the cells (or use PCA).
pub const MAX_CELLS: usize = 20_000;

/// Distance between cells in the input space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// 1 − cos(x, y) (umap-learn's `cosine`; 0 between two zero rows, 1 with one zero row).
    #[default]
    Cosine,
    /// ‖x − y‖₂.
    Euclidean,
}

/// Starting layout of the optimisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// The first two principal components, scaled to ±10 (umap-learn `init="pca"`).
    #[default]
    Pca,
    /// Uniform in [−10, 10]² (umap-learn `init="random"`).
    Random,
}

/// Settings of [`umap`]; the defaults are umap-learn's except the metric.
#[derive(Debug, Clone, PartialEq)]
pub struct UmapOptions {
    /// Neighbours per cell, the cell itself included (≥ 2; clamped to the number of cells).
    pub n_neighbors: usize,
    /// Smallest distance between points in the layout (0 ≤ `min_dist` ≤ `spread`).
    pub min_dist: f32,
    /// Scale of the layout's distances (> 0).
    pub spread: f32,
    /// Optimisation epochs; `None`: 500 up to 10 000 cells, else 200. `Some(0)` returns the
    /// initial layout.
    pub n_epochs: Option<usize>,
    /// Seed of the initialisation noise and the negative sampling.
    pub seed: u64,
    /// Starting layout.
    pub init: Init,
    /// Input distance.
    pub metric: Metric,
}

impl Default for UmapOptions {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            seed: 42,
            init: Init::Pca,
            metric: Metric::Cosine,
        }
    }
}

/// Why [`umap`] refused its input.
#[derive(Debug, Error, PartialEq)]
pub enum UmapError {
    /// `data.len()` is not `n × dim`.
    #[error("UMAP input has {len} values, which is not {n} cells × {dim} dimensions")]
    Shape {
        /// Values given.
        len: usize,
        /// Cells claimed.
        n: usize,
        /// Dimensions claimed.
        dim: usize,
    },
    /// A NaN or infinite value.
    #[error(
        "cell {row} has a non-finite value ({value}) in dimension {col}; UMAP needs finite \
         vectors: drop or fix that cell"
    )]
    NonFinite {
        /// Cell (row) index.
        row: usize,
        /// Dimension (column) index.
        col: usize,
        /// The value.
        value: f32,
    },
    /// Values so large that squared distances overflow `f32`.
    #[error("cell {row}: distances overflow (values too large); rescale the vectors")]
    Overflow {
        /// A cell with an infinite neighbour distance.
        row: usize,
    },
    /// More cells than the exact neighbour search allows.
    #[error(
        "{n} cells is more than UMAP's limit of {max} (its exact neighbour search costs n² × \
         dimensions); subsample the cells, or use the PCA view"
    )]
    TooManyCells {
        /// Cells given.
        n: usize,
        /// [`MAX_CELLS`].
        max: usize,
    },
    /// An option out of range.
    #[error("invalid UMAP option: {0}")]
    Options(String),
}

/// 2-D UMAP layout of `n` rows of width `dim` (`data` row-major, `n × dim`). `progress` gets the
/// fraction done (0 to 1, increasing by ≥ 0.5 % a call, ending at 1).
///
/// Fewer than 2 cells give the origin; with `n ≤ n_neighbors` every cell is a neighbour of
/// every other (k is clamped to `n`).
pub fn umap(
    data: &[f32],
    n: usize,
    dim: usize,
    opts: &UmapOptions,
    mut progress: impl FnMut(f32),
) -> Result<Vec<[f32; 2]>, UmapError> {
    let bad = |m: String| Err(UmapError::Options(m));
    if opts.n_neighbors < 2 {
        return bad(format!("n_neighbors is {}, needs ≥ 2", opts.n_neighbors));
    }
    if !(opts.spread.is_finite() && opts.spread > 0.0) {
        return bad(format!("spread is {}, needs > 0", opts.spread));
    }
    if !(opts.min_dist >= 0.0 && opts.min_dist <= opts.spread) {
        return bad(format!(
            "min_dist is {}, needs 0 ≤ min_dist ≤ spread ({})",
            opts.min_dist, opts.spread
        ));
    }
    let len = data.len();
    if n.checked_mul(dim) != Some(len) || (dim == 0 && n > 0) {
        return Err(UmapError::Shape { len, n, dim });
    }
    if let Some(p) = data.iter().position(|v| !v.is_finite()) {
        let (row, col) = (p / dim, p % dim);
        return Err(UmapError::NonFinite {
            row,
            col,
            value: data[p],
        });
    }
    if n > MAX_CELLS {
        return Err(UmapError::TooManyCells { n, max: MAX_CELLS });
    }
    if n < 2 {
        progress(1.0);
        return Ok(vec![[0.0; 2]; n]);
    }
    let k = opts.n_neighbors.min(n);
    let default_epochs = if n <= 10_000 { 500 } else { 200 };
    let n_epochs = opts.n_epochs.unwrap_or(default_epochs);
    // Measured costs (release): ~0.25 ns per pair-dimension of the search, ~200 ns per
    // neighbour-epoch of the SGD. They split the progress bar, thinned to steps of 0.5 %.
    let knn_work = (n as f64) * (n as f64) * (dim as f64) * 0.5;
    let sgd_work = (n_epochs * n * k) as f64 * 800.0;
    let knn_share = (knn_work / (knn_work + sgd_work)) as f32;
    let mut last = 0f32;
    let mut report = |f: f32| {
        if f >= last + 0.005 || (f == 1.0 && last < 1.0) {
            last = f;
            progress(f);
        }
    };

    let (rows, zero) = match opts.metric {
        Metric::Euclidean => (Cow::Borrowed(data), vec![false; n]),
        Metric::Cosine => {
            let (r, z) = normalised(data, dim);
            (Cow::Owned(r), z)
        }
    };
    let (idx, dist) = knn(&rows, &zero, n, dim, k, opts.metric, |f| {
        report(f * knn_share)
    })?;
    let (head, tail, w) = fuzzy_simplicial_set(&idx, &dist, n, k);
    let mut emb = initial_layout(&rows, n, dim, opts);
    let (a, b) = find_ab_params(f64::from(opts.spread), f64::from(opts.min_dist));
    optimize(
        &mut emb,
        (&head, &tail, &w),
        (a, b),
        (n_epochs, default_epochs),
        opts.seed,
        |f| report(knn_share + (1.0 - knn_share) * f),
    );
    report(1.0);
    Ok(emb)
}

/// Unit rows (and which rows were zero) for the cosine metric.
fn normalised(data: &[f32], dim: usize) -> (Vec<f32>, Vec<bool>) {
    let mut out = data.to_vec();
    let mut zero = Vec::with_capacity(data.len() / dim);
    for row in out.chunks_mut(dim) {
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        zero.push(norm == 0.0);
        if norm > 0.0 {
            row.iter_mut()
                .for_each(|v| *v = (f64::from(*v) / norm) as f32);
        }
    }
    (out, zero)
}

/// Σ (a − b)², in a fixed order (8 partial sums) that compilers may vectorise but not reorder.
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += (x - y) * (x - y);
    }
    s
}

/// Exact kNN: for each row, itself (distance 0) then its k − 1 nearest others, ordered by
/// (distance, index). Every pair is computed once, in 64 × 64 blocks for cache reuse, and
/// offered to both rows' bounded buffers (sorted k − 1 slots; a candidate worse than the
/// current worst costs one comparison). Returns row-major `n × k` indices and distances.
fn knn(
    rows: &[f32],
    zero: &[bool],
    n: usize,
    dim: usize,
    k: usize,
    metric: Metric,
    mut progress: impl FnMut(f32),
) -> Result<(Vec<u32>, Vec<f32>), UmapError> {
    const BLOCK: usize = 64;
    let m = k - 1;
    let mut bd = vec![f32::INFINITY; n * m];
    let mut bi = vec![u32::MAX; n * m];
    let mut offer = |r: usize, d: f32, j: u32| {
        let (ds, is) = (&mut bd[r * m..(r + 1) * m], &mut bi[r * m..(r + 1) * m]);
        let better = |ds: &[f32], is: &[u32], p: usize| d < ds[p] || (d == ds[p] && j < is[p]);
        if !better(ds, is, m - 1) {
            return;
        }
        let mut p = m - 1;
        while p > 0 && better(ds, is, p - 1) {
            ds[p] = ds[p - 1];
            is[p] = is[p - 1];
            p -= 1;
        }
        ds[p] = d;
        is[p] = j;
    };
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let total = (n * (n - 1) / 2) as f64;
    let mut done = 0f64;
    for ib in (0..n).step_by(BLOCK) {
        let ie = (ib + BLOCK).min(n);
        for jb in (ib..n).step_by(BLOCK) {
            for i in ib..ie {
                let ri = row(i);
                for j in jb.max(i + 1)..(jb + BLOCK).min(n) {
                    let d = match metric {
                        Metric::Euclidean => sq_dist(ri, row(j)),
                        Metric::Cosine if zero[i] || zero[j] => f32::from(zero[i] != zero[j]),
                        Metric::Cosine => 0.5 * sq_dist(ri, row(j)),
                    };
                    offer(i, d, j as u32);
                    offer(j, d, i as u32);
                }
            }
        }
        done += ((ie - ib) * (n - ib)) as f64 - ((ie - ib) * (ie - ib + 1) / 2) as f64;
        progress((done / total) as f32);
    }
    let mut idx = Vec::with_capacity(n * k);
    let mut dist = Vec::with_capacity(n * k);
    for i in 0..n {
        idx.push(i as u32);
        dist.push(0.0);
        idx.extend_from_slice(&bi[i * m..(i + 1) * m]);
        for &d in &bd[i * m..(i + 1) * m] {
            if !d.is_finite() {
                return Err(UmapError::Overflow { row: i });
            }
            dist.push(if metric == Metric::Euclidean {
                d.sqrt()
            } else {
                d
            });
        }
    }
    Ok((idx, dist))
}

/// umap-learn's `smooth_knn_dist` (local_connectivity 1, bandwidth 1): per row (ρ, σ).
fn smooth_knn_dist(dist: &[f32], n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    const TOL: f64 = 1e-5;
    const MIN_K_DIST_SCALE: f64 = 1e-3;
    let target = ln_det(k as f64) / std::f64::consts::LN_2;
    let mean_all = dist.iter().map(|&d| f64::from(d)).sum::<f64>() / dist.len() as f64;
    let (mut rhos, mut sigmas) = (vec![0f64; n], vec![0f64; n]);
    for i in 0..n {
        let row: Vec<f64> = dist[i * k..(i + 1) * k].iter().map(|&d| d.into()).collect();
        // Sorted, so the first non-zero distance is the nearest (local_connectivity = 1).
        let rho = row.iter().copied().find(|&d| d > 0.0).unwrap_or(0.0);
        let (mut lo, mut hi, mut mid) = (0f64, f64::INFINITY, 1f64);
        for _ in 0..64 {
            let psum: f64 = row[1..]
                .iter()
                .map(|&d| {
                    if d - rho > 0.0 {
                        exp_det(-(d - rho) / mid)
                    } else {
                        1.0
                    }
                })
                .sum();
            if (psum - target).abs() < TOL {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                mid = if hi == f64::INFINITY {
                    mid * 2.0
                } else {
                    (lo + hi) / 2.0
                };
            }
        }
        let mean = if rho > 0.0 {
            row.iter().sum::<f64>() / k as f64
        } else {
            mean_all
        };
        rhos[i] = rho;
        sigmas[i] = mid.max(MIN_K_DIST_SCALE * mean);
    }
    (rhos, sigmas)
}

/// The fuzzy union of the kNN memberships, as COO edges (both directions) in row-major order.
fn fuzzy_simplicial_set(
    idx: &[u32],
    dist: &[f32],
    n: usize,
    k: usize,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let (rhos, sigmas) = smooth_knn_dist(dist, n, k);
    // (row, col, value, from the transpose)
    let mut e: Vec<(u32, u32, f32, bool)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for s in 1..k {
            let (j, d) = (idx[i * k + s], f64::from(dist[i * k + s]));
            let v = if d - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                1.0
            } else {
                exp_det(-(d - rhos[i]) / sigmas[i])
            } as f32;
            if v > 0.0 && j as usize != i {
                e.push((i as u32, j, v, false));
                e.push((j, i as u32, v, true));
            }
        }
    }
    e.sort_unstable_by_key(|&(r, c, _, t)| (r, c, t));
    let (mut head, mut tail, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let mut p = 0;
    while p < e.len() {
        let (r, c) = (e[p].0, e[p].1);
        let (mut a, mut at) = (0f32, 0f32);
        while p < e.len() && (e[p].0, e[p].1) == (r, c) {
            *(if e[p].3 { &mut at } else { &mut a }) = e[p].2;
            p += 1;
        }
        head.push(r);
        tail.push(c);
        w.push(a + at - a * at);
    }
    (head, tail, w)
}

/// Starting coordinates, rescaled to [0, 10] on each axis as umap-learn does before the SGD.
fn initial_layout(rows: &[f32], n: usize, dim: usize, opts: &UmapOptions) -> Vec<[f32; 2]> {
    let mut rng = SplitMix64::stream(opts.seed, 1);
    let mut emb = match opts.init {
        Init::Random => (0..n)
            .map(|_| [0; 2].map(|_| (rng.next_f64() * 20.0 - 10.0) as f32))
            .collect(),
        Init::Pca => {
            let mut p = pca_2d(rows, n, dim).points;
            // noisy_scale_coords(max_coord = 10, noise = 1e-4), uniform noise of s.d. 1e-4.
            let big = p.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if big > 0.0 { 10.0 / big } else { 1.0 };
            for q in &mut p {
                for v in q.iter_mut() {
                    let u = (rng.next_f64() * 2.0 - 1.0) * 1e-4 * 3f64.sqrt();
                    *v = *v * scale + u as f32;
                }
            }
            p
        }
    };
    for c in 0..2 {
        let lo = emb.iter().fold(f32::INFINITY, |m, q| m.min(q[c]));
        let hi = emb.iter().fold(f32::NEG_INFINITY, |m, q| m.max(q[c]));
        let span = if hi > lo { hi - lo } else { 1.0 };
        emb.iter_mut()
            .for_each(|q| q[c] = 10.0 * (q[c] - lo) / span);
    }
    emb
}

/// umap-learn's `optimize_layout_euclidean` (single-threaded order), in place.
fn optimize(
    emb: &mut [[f32; 2]],
    (head, tail, w): (&[u32], &[u32], &[f32]),
    (a, b): (f64, f64),
    (n_epochs, default_epochs): (usize, usize),
    seed: u64,
    mut progress: impl FnMut(f32),
) {
    const NEGATIVE_SAMPLE_RATE: f64 = 5.0;
    const GAMMA: f64 = 1.0;
    let clip = |v: f64| v.clamp(-4.0, 4.0);
    let n = emb.len();
    let wmax = w.iter().fold(0f32, |m, &v| m.max(v));
    let cut = wmax
        / (if n_epochs > 10 {
            n_epochs
        } else {
            default_epochs
        }) as f32;
    let mut edges = Vec::with_capacity(w.len());
    let mut eps = Vec::with_capacity(w.len());
    for ((&h, &t), &v) in head.iter().zip(tail).zip(w) {
        if v >= cut {
            edges.push((h as usize, t as usize));
            // make_epochs_per_sample: n_epochs / (n_epochs · w / max w).
            let samples = n_epochs as f64 * f64::from(v / wmax);
            eps.push(if samples > 0.0 {
                n_epochs as f64 / samples
            } else {
                -1.0
            });
        }
    }
    let eps_neg: Vec<f64> = eps.iter().map(|e| e / NEGATIVE_SAMPLE_RATE).collect();
    let mut next = eps.clone();
    let mut next_neg = eps_neg.clone();
    let mut rng = SplitMix64::stream(seed, 2);
    for epoch in 0..n_epochs {
        let ep = epoch as f64;
        let alpha = 1.0 - ep / n_epochs as f64;
        for (e, &(j, kk)) in edges.iter().enumerate() {
            if next[e] > ep {
                continue;
            }
            let (cur, oth) = (emb[j], emb[kk]);
            let diff = [0, 1].map(|c| f64::from(cur[c]) - f64::from(oth[c]));
            let d2 = diff[0] * diff[0] + diff[1] * diff[1];
            let coeff = if d2 > 0.0 {
                let p = pow_det(d2, b);
                -2.0 * a * b * (p / d2) / (a * p + 1.0)
            } else {
                0.0
            };
            for c in 0..2 {
                let g = clip(coeff * diff[c]) * alpha;
                emb[j][c] = (f64::from(cur[c]) + g) as f32;
                emb[kk][c] = (f64::from(oth[c]) - g) as f32;
            }
            next[e] += eps[e];
            let n_neg = ((ep - next_neg[e]) / eps_neg[e]) as i64;
            for _ in 0..n_neg.max(0) {
                let kk = rng.below(n);
                let (cur, oth) = (emb[j], emb[kk]);
                let diff = [0, 1].map(|c| f64::from(cur[c]) - f64::from(oth[c]));
                let d2 = diff[0] * diff[0] + diff[1] * diff[1];
                let coeff = if d2 > 0.0 {
                    2.0 * GAMMA * b / ((0.001 + d2) * (a * pow_det(d2, b) + 1.0))
                } else if j == kk {
                    continue;
                } else {
                    0.0
                };
                for c in 0..2 {
                    let g = if coeff > 0.0 {
                        clip(coeff * diff[c])
                    } else {
                        4.0
                    };
                    emb[j][c] = (f64::from(cur[c]) + g * alpha) as f32;
                }
            }
            next_neg[e] += n_neg.max(0) as f64 * eps_neg[e];
        }
        progress((epoch + 1) as f32 / n_epochs as f32);
    }
}

mod math;
use math::pow_det;
pub use math::{exp_det, find_ab_params, ln_det};

#[cfg(test)]
#[path = "../umap_tests.rs"]
mod tests;
