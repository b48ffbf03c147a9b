//! Scaled dot-product attention on the host CPU, for inference on the flex backend.
//!
//! GeneCompass masks only padded keys, so each cell attends over its own valid keys: this
//! kernel computes every (cell, head) over exactly those keys, with no mask tensor and no
//! padded keys. Query rows go in blocks through two `gemm` calls (scores, then probabilities
//! times values) with a vectorised exp/softmax between them, on rayon's pool. Burn-flex's
//! generic kernel instead reads a `[B, 1, S, S]` byte mask, walks 64-key tiles and calls scalar
//! `exp`, which made it half of the inference time (`bench/inference/RESULTS.md`).
//!
//! Masked keys get probability exactly 0, as in HF's additive `finfo.min` mask. In the padded
//! layout, padded query rows are computed too (attending to the valid keys), so every hidden
//! state matches; the packed layout ([`CellRows::packed`]) holds real rows only.

use rayon::prelude::*;

/// Query rows per task: a `[rows, keys]` score block of 256 rows (2 MiB at 2,048 keys) measured
/// 13 % faster than 64 rows on the benchmark machine (fewer repacks of K and V).
const QUERY_BLOCK: usize = 256;

/// Which keys of one cell take part in attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// The first `n` positions (dynamic padding puts padding at the end).
    Prefix(usize),
    /// Any other set of positions, ascending.
    Indices(Vec<usize>),
}

impl Keys {
    /// Keys from one cell's additive mask row (0 keeps, a large negative value blocks).
    pub fn from_additive_mask(row: &[f32]) -> Keys {
        let kept: Vec<usize> = (0..row.len()).filter(|&j| row[j] > -1.0).collect();
        if kept.iter().enumerate().all(|(i, &j)| i == j) {
            Keys::Prefix(kept.len())
        } else {
            Keys::Indices(kept)
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::Prefix(n) => *n,
            Keys::Indices(ix) => ix.len(),
        }
    }
}

/// Shape of the projected `[batch, seq, heads * head_dim]` query, key and value arrays.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Cells.
    pub batch: usize,
    /// Positions per cell (padded length).
    pub seq: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

struct SharedOut(*mut f32);
// SAFETY: every task writes a disjoint `[rows, head_dim]` block of the output.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// Projected queries, keys and values: `[batch · seq]` rows `row_stride` floats apart, each
/// slice starting at its own column (so one `[rows, 3H]` QKV buffer serves all three).
#[derive(Debug, Clone, Copy)]
pub struct Qkv<'a> {
    /// Queries, `[rows, heads · head_dim]` at `row_stride`.
    pub q: &'a [f32],
    /// Keys, same layout.
    pub k: &'a [f32],
    /// Values, same layout.
    pub v: &'a [f32],
    /// Floats between consecutive rows.
    pub row_stride: usize,
}

/// Where one cell's rows sit in the projected arrays: `len` consecutive rows from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRows {
    /// First row of the cell.
    pub start: usize,
    /// Rows of the cell (its query positions).
    pub len: usize,
}

impl CellRows {
    /// The padded layout: `batch` cells of `seq` rows each.
    pub fn padded(batch: usize, seq: usize) -> Vec<CellRows> {
        (0..batch)
            .map(|c| CellRows {
                start: c * seq,
                len: seq,
            })
            .collect()
    }

    /// The packed layout: each cell's rows right after the previous cell's.
    pub fn packed(lens: impl IntoIterator<Item = usize>) -> Vec<CellRows> {
        let mut start = 0;
        lens.into_iter()
            .map(|len| {
                let c = CellRows { start, len };
                start += len;
                c
            })
            .collect()
    }
}

/// `softmax(q kᵀ / √d) v` per cell and head, over each cell's `keys`, from a strided [`Qkv`]
/// into `out` (`[batch, seq, heads · head_dim]`, heads side by side).
///
/// # Panics
/// When the slices or `keys` do not match `shape`.
pub fn attention_into(qkv: Qkv<'_>, shape: AttentionShape, keys: &[Keys], out: &mut [f32]) {
    let cells = CellRows::padded(shape.batch, shape.seq);
    attention_cells(qkv, shape.heads, shape.head_dim, &cells, keys, out);
}

/// [`attention_into`] for cells laid out as `cells` (padded or packed); `keys` index positions
/// within each cell. `out` holds `heads · head_dim` floats per row of the layout.
///
/// # Panics
/// When the slices or `keys` do not match the layout.
pub fn attention_cells(
    qkv: Qkv<'_>,
    heads: usize,
    d: usize,
    cells: &[CellRows],
    keys: &[Keys],
    out: &mut [f32],
) {
    let h = heads * d;
    let stride = qkv.row_stride;
    let rows = cells.iter().map(|c| c.start + c.len).max().unwrap_or(0);
    let fits = |m: &[f32]| rows == 0 || m.len() >= (rows - 1) * stride + h;
    assert!(
        stride >= h && fits(qkv.q) && fits(qkv.k) && fits(qkv.v),
        "attention: q/k/v do not hold the layout's rows"
    );
    assert!(
        out.len() >= rows * h,
        "attention: output is shorter than the layout"
    );
    assert_eq!(keys.len(), cells.len(), "attention: one key set per cell");
    assert!(
        keys.iter().zip(cells).all(|(k, c)| match k {
            Keys::Prefix(n) => *n <= c.len,
            Keys::Indices(ix) => ix.iter().all(|&j| j < c.len),
        }),
        "attention: a key lies outside its cell"
    );
    // A cell whose keys are not a prefix gets its kept K and V rows gathered once (stride h).
    let gathered: Vec<Option<(Vec<f32>, Vec<f32>)>> = keys
        .iter()
        .zip(cells)
        .map(|(keys, c)| match keys {
            Keys::Indices(ix) if !ix.is_empty() => {
                let rows = |m: &[f32]| {
                    ix.iter()
                        .flat_map(|&j| &m[(c.start + j) * stride..][..h])
                        .copied()
                        .collect::<Vec<f32>>()
                };
                Some((rows(qkv.k), rows(qkv.v)))
            }
            _ => None,
        })
        .collect();
    // Tasks: (cell, head, first query row), cell-major.
    let tasks: Vec<(usize, usize, usize)> = cells
        .iter()
        .enumerate()
        .flat_map(|(cell, c)| {
            (0..heads).flat_map(move |head| {
                (0..c.len.div_ceil(QUERY_BLOCK)).map(move |b| (cell, head, b * QUERY_BLOCK))
            })
        })
        .collect();
    let exp_row = exp_row_kernel();
    let scale = 1.0 / (d as f32).sqrt();
    let out_ptr = SharedOut(out.as_mut_ptr());
    tasks.into_par_iter().for_each(|(cell, head, r0)| {
        SCORES.with_borrow_mut(|scores| {
            let out_ptr = &out_ptr;
            let CellRows { start, len } = cells[cell];
            let rows = QUERY_BLOCK.min(len - r0);
            // Keys: a prefix of this cell's rows, or its gathered rows.
            let (k_rows, v_rows, kv_stride, n_keys) = match &gathered[cell] {
                Some((gk, gv)) => (&gk[head * d..], &gv[head * d..], h, keys[cell].len()),
                None => {
                    let base = start * stride + head * d;
                    // No kept key at all: HF's additive mask then spreads the row evenly over
                    // every position, which a uniform score row reproduces.
                    let n_keys = match keys[cell].len() {
                        0 => len,
                        n => n,
                    };
                    (&qkv.k[base..], &qkv.v[base..], stride, n_keys)
                }
            };
            let uniform = keys[cell].len() == 0;
            scores.clear();
            scores.resize(rows * n_keys, 0.0);
            let q_block = &qkv.q[(start + r0) * stride + head * d..];
            // SAFETY: the pointers and strides address `rows × d` (q), `n_keys × d` (k, v) and
            // `rows × n_keys` (scores) elements inside their slices, and this task's disjoint
            // `rows × d` block of `out`.
            unsafe {
                if !uniform {
                    gemm::gemm(
                        rows,
                        n_keys,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        n_keys as isize,
                        false,
                        q_block.as_ptr(),
                        1,
                        stride as isize,
                        k_rows.as_ptr(),
                        kv_stride as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                // Unnormalised: each output row is divided by its sum after the product
                // (d multiplications per row instead of one per key).
                let mut inv = [0f32; QUERY_BLOCK];
                for (row, inv) in scores.chunks_exact_mut(n_keys).zip(&mut inv) {
                    *inv = 1.0 / exp_row(row);
                }
                let out_block = out_ptr.0.add((start + r0) * h + head * d);
                gemm::gemm(
                    rows,
                    d,
                    n_keys,
                    out_block,
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    n_keys as isize,
                    v_rows.as_ptr(),
                    1,
                    kv_stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
                for (r, inv) in inv.iter().take(rows).enumerate() {
                    let row = std::slice::from_raw_parts_mut(out_block.add(r * h), d);
                    row.iter_mut().for_each(|v| *v *= inv);
                }
            }
        })
    });
}

thread_local! {
    /// One `[QUERY_BLOCK, keys]` score block per worker thread, reused across calls.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`exp_row`] for this CPU: AVX2+FMA code where the processor has it (checked at run time,
/// as builds target baseline x86-64), else the same code compiled for the baseline.
fn exp_row_kernel() -> fn(&mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return |row| {
                // SAFETY: the features were detected above.
                unsafe { exp_row_avx2(row) }
            };
        }
    }
    exp_row
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_row_avx2(row: &mut [f32]) -> f32 {
    exp_row(row)
}

const LANES: usize = 8;

/// The unnormalised softmax of one score row in place, `exp(x - max)`, returning its sum;
/// written in 8-lane chunks so that it vectorises.
#[inline(always)]
pub fn exp_row(row: &mut [f32]) -> f32 {
    let max = row_max(row);
    exp_shifted(row, max)
}

/// The largest value of `row` (`-inf` when empty), in 8-lane chunks.
#[inline(always)]
pub fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    chunks.remainder().iter().fold(
        lanes.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
        |a, &b| a.max(b),
    )
}

/// `exp(x - shift)` of every value of `row` in place, returning their sum; in 8-lane chunks.
#[inline(always)]
pub fn exp_shifted(row: &mut [f32], shift: f32) -> f32 {
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let mut x = [0f32; LANES];
        for i in 0..LANES {
            x[i] = c[i] - shift;
        }
        let e = exp_lanes(x);
        c.copy_from_slice(&e);
        for i in 0..LANES {
            sums[i] += e[i];
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_lanes([*x - shift; LANES])[0];
        sum += *x;
    }
    sum
}

/// `exp` of 8 values (Cephes' single-precision polynomial, relative error about 1e-7),
/// branch-free so that LLVM turns it into vector code. Inputs below -87 give about 1e-38.
#[inline(always)]
pub fn exp_lanes(x: [f32; LANES]) -> [f32; LANES] {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let mut out = [0f32; LANES];
    for i in 0..LANES {
        // Plain `a * b + c`, not `mul_add`: without FMA in the build target, `mul_add` is a
        // libm call per element.
        let x = x[i].clamp(-87.0, 88.0);
        let t = x * LOG2E + ROUND;
        let n = t - ROUND;
        let r = (x - n * LN2_HI) - n * LN2_LO;
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let y = p * (r * r) + r + 1.0;
        // 2ⁿ: n sits in t's low mantissa bits, offset by 0x4B40_0000.
        let pow2 = f32::from_bits((t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127)) << 23);
        out[i] = y * pow2;
    }
    out
}

/// `n` reproducible values in [-2, 2) (an LCG), for the attention kernels' tests.
#[cfg(test)]
pub(crate) fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, mask: &[f32]) -> Vec<f32> {
        let AttentionShape {
            batch,
            seq,
            heads,
            head_dim: d,
        } = shape;
        let h = heads * d;
        let mut out = vec![0f32; batch * seq * h];
        for b in 0..batch {
            for hd in 0..heads {
                for i in 0..seq {
                    let qi = &q[(b * seq + i) * h + hd * d..][..d];
                    let scores: Vec<f64> = (0..seq)
                        .map(|j| {
                            let kj = &k[(b * seq + j) * h + hd * d..][..d];
                            let dot: f64 = qi.iter().zip(kj).map(|(a, b)| (a * b) as f64).sum();
                            // f32 like HF: a fully masked row becomes uniform.
                            ((dot / (d as f64).sqrt()) as f32 + mask[b * seq + j]) as f64
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        let acc: f64 = (0..seq)
                            .map(|j| e[j] / sum * v[(b * seq + j) * h + hd * d + c] as f64)
                            .sum();
                        out[(b * seq + i) * h + hd * d + c] = acc as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn exp_matches_std_over_the_softmax_range() {
        let mut worst = 0f32;
        for i in 0..20_000 {
            let x = -87.0 + i as f32 * (97.0 / 20_000.0);
            let got = exp_lanes([x; LANES])[0];
            let want = x.exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert!(exp_lanes([f32::NEG_INFINITY; LANES])[0] < 1e-37);
    }

    #[test]
    fn equals_naive_attention_with_prefix_scattered_and_empty_masks() {
        let shape = AttentionShape {
            batch: 4,
            seq: 150, // more than two query blocks, the last one partial
            heads: 3,
            head_dim: 16,
        };
        let n = 4 * 150 * 48;
        let (q, k, v) = (
            pseudo_random(n, 1),
            pseudo_random(n, 2),
            pseudo_random(n, 3),
        );
        let mut mask = vec![0f32; 4 * 150];
        // cell 0: all keys; cell 1: prefix of 97; cell 2: every third key; cell 3: none.
        mask[150 + 97..300].fill(f32::MIN);
        for j in 0..150 {
            if j % 3 != 0 {
                mask[300 + j] = f32::MIN;
            }
        }
        mask[450..600].fill(f32::MIN);
        let keys: Vec<Keys> = mask.chunks(150).map(Keys::from_additive_mask).collect();
        assert_eq!(keys[0], Keys::Prefix(150));
        assert_eq!(keys[1], Keys::Prefix(97));
        assert!(matches!(&keys[2], Keys::Indices(ix) if ix.len() == 50));
        assert_eq!(keys[3], Keys::Prefix(0));
        let mut got = vec![0f32; n];
        let separate = Qkv {
            q: &q,
            k: &k,
            v: &v,
            row_stride: 48,
        };
        attention_into(separate, shape, &keys, &mut got);
        // The same from one interleaved [rows, 3H] buffer.
        let mut qkv = Vec::with_capacity(3 * n);
        for r in 0..4 * 150 {
            for m in [&q, &k, &v] {
                qkv.extend_from_slice(&m[r * 48..(r + 1) * 48]);
            }
        }
        let mut strided = vec![0f32; n];
        let view = Qkv {
            q: &qkv,
            k: &qkv[48..],
            v: &qkv[96..],
            row_stride: 144,
        };
        attention_into(view, shape, &keys, &mut strided);
        assert_eq!(got, strided);
        let want = naive(&q, &k, &v, shape, &mask);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "max |Δ| {worst}");
    }

    #[test]
    fn packed_cells_equal_the_padded_layout_at_real_rows() {
        let shape = AttentionShape {
            batch: 3,
            seq: 300,
            heads: 2,
            head_dim: 8,
        };
        let h = 16;
        let lens = [300, 1, 257];
        let n = 3 * 300 * h;
        let (q, k, v) = (
            pseudo_random(n, 4),
            pseudo_random(n, 5),
            pseudo_random(n, 6),
        );
        let keys: Vec<Keys> = lens.iter().map(|&l| Keys::Prefix(l)).collect();
        let mut padded = vec![0f32; n];
        let qkv = Qkv {
            q: &q,
            k: &k,
            v: &v,
            row_stride: h,
        };
        attention_into(qkv, shape, &keys, &mut padded);
        let pack = |m: &[f32]| -> Vec<f32> {
            lens.iter()
                .enumerate()
                .flat_map(|(c, &l)| m[c * 300 * h..][..l * h].to_vec())
                .collect()
        };
        let (pq, pk, pv) = (pack(&q), pack(&k), pack(&v));
        let cells = CellRows::packed(lens);
        assert_eq!(
            cells[2],
            CellRows {
                start: 301,
                len: 257
            }
        );
        let mut packed = vec![0f32; pq.len()];
        let qkv = Qkv {
            q: &pq,
            k: &pk,
            v: &pv,
            row_stride: h,
        };
        attention_cells(qkv, 2, 8, &cells, &keys, &mut packed);
        // Equal up to the products' summation order (gemm blocks by address alignment).
        let want = pack(&padded);
        assert_eq!(packed.len(), want.len());
        let worst = packed
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "max |Δ| {worst}");
    }
}
