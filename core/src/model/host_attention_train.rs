//! Scaled dot-product attention with dropout and its backward pass on the host CPU, for
//! training on the flex backend.
//!
//! burn's autodiff composes attention from a matmul, a softmax, a dropout and another matmul,
//! and keeps every `[batch, heads, L, L]` intermediate (scores, probabilities, mask, dropped
//! probabilities) for the backward pass: about 1.6 GiB per step for a Small model at L ≈ 2,048,
//! each written and read through generic strided kernels. Here, as in FlashAttention, the
//! forward keeps only each row's log-sum-exp; the backward recomputes the probabilities one
//! block of query rows at a time with `gemm`, and regenerates the dropout mask from its key.
//!
//! GeneCompass masks only padded keys, and dynamic padding puts them at the end, so each cell
//! attends over its first `len` positions. Rows past `len` are padding: their output is zero
//! and they receive no gradient. No loss reads them (the MLM heads run at real masked
//! positions, the classifier at the CLS), and no real row attends to them.
//!
//! Dropout keeps each probability with chance `1 − p` and scales it by `1 / (1 − p)`, as burn's
//! `Dropout` does; the decision for (cell, head, row, key) is a hash of the call's key and that
//! index, so the forward and the backward agree without storing a mask.

use rayon::prelude::*;

use super::dropout::splitmix64;
use super::host_attention::{exp_shifted, row_max};

/// Query rows per block: a `[rows, keys]` score block (and in the backward pass a second one
/// for its gradient) stays a few MiB at 2,048 keys.
const QUERY_BLOCK: usize = 128;

/// What one attention call computes: `[batch, seq, heads · head_dim]` arrays, heads side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainAttention {
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Positions per cell (the padded length).
    pub seq: usize,
    /// Real positions of each cell, a prefix: its query rows and its keys.
    pub lens: Vec<usize>,
    /// Attention-probability dropout, if any.
    pub dropout: Option<AttentionDropout>,
}

/// Dropout on the attention probabilities, reproducible from `key`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    /// Probability of dropping one entry, in `(0, 1)`.
    pub prob: f64,
    /// Key of this call; the same key gives the same mask.
    pub key: u64,
}

/// What the forward pass keeps for the backward pass, besides its inputs.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, seq, heads · head_dim]`; zero at padded rows.
    pub out: Vec<f32>,
    /// Log-sum-exp of each `(cell, head, row)`'s scaled scores, `[batch, heads, seq]`.
    pub lse: Vec<f32>,
}

/// Gradients with respect to the queries, keys and values, each `[batch, seq, heads · head_dim]`.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// ∂loss/∂q.
    pub dq: Vec<f32>,
    /// ∂loss/∂k.
    pub dk: Vec<f32>,
    /// ∂loss/∂v.
    pub dv: Vec<f32>,
}

struct Shared(*mut f32);
// SAFETY: every task writes only its own (cell, head) block of rows and columns.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// The per-row mask of one (cell, head, row): keep when `hash(row_key + j·φ) < threshold`.
#[derive(Clone, Copy)]
struct RowMask {
    key: u32,
    threshold: u32,
    scale: f32,
}

impl TrainAttention {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn check(&self, arrays: &[&[f32]]) {
        let n = self.lens.len() * self.seq * self.width();
        assert!(
            arrays.iter().all(|a| a.len() == n),
            "attention: arrays must hold batch × seq × heads · head_dim = {n} floats"
        );
        assert!(
            self.lens.iter().all(|&l| l >= 1 && l <= self.seq),
            "attention: every cell needs between 1 and seq real positions"
        );
        if let Some(d) = self.dropout {
            assert!(d.prob > 0.0 && d.prob < 1.0, "attention: dropout in (0, 1)");
        }
    }

    fn row_mask(&self, cell: usize, head: usize, row: usize) -> Option<RowMask> {
        self.dropout.map(|d| {
            let global = ((cell * self.heads + head) * self.seq + row) as u64;
            let keep = 1.0 - d.prob;
            RowMask {
                key: (splitmix64(d.key ^ splitmix64(global)) >> 32) as u32,
                threshold: (keep * 4_294_967_296.0).min(4_294_967_295.0) as u32,
                scale: (1.0 / keep) as f32,
            }
        })
    }

    fn tasks(&self) -> Vec<(usize, usize)> {
        (0..self.lens.len())
            .flat_map(|c| (0..self.heads).map(move |h| (c, h)))
            .collect()
    }

    /// `dropout(softmax(q kᵀ / √d)) v` per cell and head over the cell's real positions.
    ///
    /// # Panics
    /// When the arrays or `lens` do not match the shape.
    pub fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> ForwardOutput {
        self.check(&[q, k, v]);
        let (w, d, seq) = (self.width(), self.head_dim, self.seq);
        let mut out = vec![0f32; q.len()];
        let mut lse = vec![0f32; self.lens.len() * self.heads * seq];
        let scale = 1.0 / (d as f32).sqrt();
        let kernels = Kernels::detect();
        let (out_ptr, lse_ptr) = (Shared(out.as_mut_ptr()), Shared(lse.as_mut_ptr()));
        self.tasks().into_par_iter().for_each(|(c, h)| {
            let (out_ptr, lse_ptr) = (&out_ptr, &lse_ptr);
            BUFFERS.with_borrow_mut(|(scores, _)| {
                let n = self.lens[c];
                let base = c * seq * w + h * d;
                scores.resize(QUERY_BLOCK * n, 0.0);
                for r0 in (0..n).step_by(QUERY_BLOCK) {
                    let rows = QUERY_BLOCK.min(n - r0);
                    let s = &mut scores[..rows * n];
                    // SAFETY: q, k, v hold this cell's rows (checked above); `out` gets this
                    // task's disjoint rows × d block, `lse` its own rows.
                    unsafe {
                        let q_blk = q.as_ptr().add(base + r0 * w);
                        mat_abt(s, rows, n, d, q_blk, w, k.as_ptr().add(base), w, scale);
                        for (i, row) in s.chunks_exact_mut(n).enumerate() {
                            let mask = self.row_mask(c, h, r0 + i);
                            let l = (kernels.forward_row)(row, mask);
                            *lse_ptr.0.add((c * self.heads + h) * seq + r0 + i) = l;
                        }
                        let o = out_ptr.0.add(base + r0 * w);
                        gemm_raw(
                            (rows, d, n),
                            (o, w, false, 1.0),
                            (s.as_ptr(), 1, n),
                            (v.as_ptr().add(base), 1, w),
                        );
                    }
                }
            })
        });
        ForwardOutput { out, lse }
    }

    /// Gradients of the loss with respect to `q`, `k` and `v`, given the forward pass's inputs
    /// and outputs and the gradient `d_out` of its output. Padded rows get zeros.
    ///
    /// # Panics
    /// When the arrays or `lens` do not match the shape.
    pub fn backward(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        fwd: &ForwardOutput,
        d_out: &[f32],
    ) -> Gradients {
        self.check(&[q, k, v, &fwd.out, d_out]);
        let (w, d, seq) = (self.width(), self.head_dim, self.seq);
        let mut dq = vec![0f32; q.len()];
        let mut dk = vec![0f32; q.len()];
        let mut dv = vec![0f32; q.len()];
        let scale = 1.0 / (d as f32).sqrt();
        let kernels = Kernels::detect();
        let ptrs = (
            Shared(dq.as_mut_ptr()),
            Shared(dk.as_mut_ptr()),
            Shared(dv.as_mut_ptr()),
        );
        self.tasks().into_par_iter().for_each(|(c, h)| {
            let (dq_ptr, dk_ptr, dv_ptr) = (&ptrs.0, &ptrs.1, &ptrs.2);
            BUFFERS.with_borrow_mut(|(scores, grads)| {
                let n = self.lens[c];
                let base = c * seq * w + h * d;
                scores.resize(QUERY_BLOCK * n, 0.0);
                grads.resize(QUERY_BLOCK * n, 0.0);
                for r0 in (0..n).step_by(QUERY_BLOCK) {
                    let rows = QUERY_BLOCK.min(n - r0);
                    let (s, g) = (&mut scores[..rows * n], &mut grads[..rows * n]);
                    // SAFETY: as in `forward`; dk and dv get this task's rows × d blocks, which
                    // no other task touches, accumulated over its query blocks in order.
                    unsafe {
                        let q_blk = q.as_ptr().add(base + r0 * w);
                        let do_blk = d_out.as_ptr().add(base + r0 * w);
                        let (k_c, v_c) = (k.as_ptr().add(base), v.as_ptr().add(base));
                        mat_abt(s, rows, n, d, q_blk, w, k_c, w, scale);
                        mat_abt(g, rows, n, d, do_blk, w, v_c, w, 1.0);
                        for (i, (s_row, g_row)) in
                            s.chunks_exact_mut(n).zip(g.chunks_exact_mut(n)).enumerate()
                        {
                            let r = r0 + i;
                            let at = base + r * w;
                            let o_dot_do: f32 =
                                (0..d).map(|j| fwd.out[at + j] * d_out[at + j]).sum();
                            let l = fwd.lse[(c * self.heads + h) * seq + r];
                            let mask = self.row_mask(c, h, r);
                            let stats = RowStats {
                                lse: l,
                                o_dot_do,
                                scale,
                            };
                            (kernels.backward_row)(s_row, g_row, stats, mask);
                        }
                        let first = r0 == 0;
                        // dV += Aᵀ dO, dK += dSᵀ Q (this task's rows, in query-block order).
                        gemm_raw(
                            (n, d, rows),
                            (dv_ptr.0.add(base), w, !first, 1.0),
                            (s.as_ptr(), n, 1),
                            (do_blk, 1, w),
                        );
                        gemm_raw(
                            (n, d, rows),
                            (dk_ptr.0.add(base), w, !first, 1.0),
                            (g.as_ptr(), n, 1),
                            (q_blk, 1, w),
                        );
                        // dQ = dS K.
                        gemm_raw(
                            (rows, d, n),
                            (dq_ptr.0.add(base + r0 * w), w, false, 1.0),
                            (g.as_ptr(), 1, n),
                            (k_c, 1, w),
                        );
                    }
                }
            })
        });
        Gradients { dq, dk, dv }
    }
}

thread_local! {
    /// Two `[QUERY_BLOCK, keys]` blocks per worker thread, reused across calls.
    static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `dst[rows, n] = alpha · a[rows, d] · b[n, d]ᵀ`, with `a` and `b` rows `a_rs`, `b_rs` apart.
///
/// # Safety
/// `a` and `b` must address `rows` and `n` rows of `d` floats at their strides.
#[allow(clippy::too_many_arguments)]
unsafe fn mat_abt(
    dst: &mut [f32],
    rows: usize,
    n: usize,
    d: usize,
    a: *const f32,
    a_rs: usize,
    b: *const f32,
    b_rs: usize,
    alpha: f32,
) {
    // SAFETY: forwarded from the caller; `dst` holds rows × n floats.
    unsafe {
        gemm_raw(
            (rows, n, d),
            (dst.as_mut_ptr(), n, false, alpha),
            (a, 1, a_rs),
            (b, b_rs, 1),
        )
    }
}

/// `dst[m, n] (+)= alpha · lhs[m, k] · rhs[k, n]`; each operand is `(pointer, column step, row
/// step)`, the destination `(pointer, row step, accumulate, alpha)`.
///
/// # Safety
/// The pointers and steps must address valid `m × k`, `k × n` and `m × n` matrices.
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, accumulate, alpha): (*mut f32, usize, bool, f32),
    (lhs, lhs_cs, lhs_rs): (*const f32, usize, usize),
    (rhs, rhs_cs, rhs_rs): (*const f32, usize, usize),
) {
    // SAFETY: forwarded from the caller. gemm's `alpha` scales the old destination and its
    // `beta` the product.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// What the backward pass needs of one row besides its scores: the forward pass's
/// log-sum-exp, `dO · O`, and the score scale.
#[derive(Clone, Copy)]
struct RowStats {
    lse: f32,
    o_dot_do: f32,
    scale: f32,
}

/// The row kernels, compiled for AVX2+FMA where the processor has it (checked at run time).
#[derive(Clone, Copy)]
struct Kernels {
    forward_row: fn(&mut [f32], Option<RowMask>) -> f32,
    backward_row: fn(&mut [f32], &mut [f32], RowStats, Option<RowMask>),
}

impl Kernels {
    fn detect() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Kernels {
                    // SAFETY: the features were detected above.
                    forward_row: |row, mask| unsafe { forward_row_avx2(row, mask) },
                    backward_row: |s, g, stats, mask| unsafe {
                        backward_row_avx2(s, g, stats, mask)
                    },
                };
            }
        }
        Kernels {
            forward_row,
            backward_row,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_row_avx2(row: &mut [f32], mask: Option<RowMask>) -> f32 {
    forward_row(row, mask)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_row_avx2(s: &mut [f32], g: &mut [f32], stats: RowStats, mask: Option<RowMask>) {
    backward_row(s, g, stats, mask)
}

/// One score row to its dropped-out probabilities in place; returns the row's log-sum-exp.
#[inline(always)]
fn forward_row(row: &mut [f32], mask: Option<RowMask>) -> f32 {
    let max = row_max(row);
    let sum = exp_shifted(row, max);
    let inv = 1.0 / sum;
    match mask {
        None => row.iter_mut().for_each(|x| *x *= inv),
        Some(m) => {
            let kept = m.scale * inv;
            for (j, x) in row.iter_mut().enumerate() {
                *x *= if m.keeps(j) { kept } else { 0.0 };
            }
        }
    }
    max + sum.ln()
}

/// One row of the backward pass in place: `s` holds the scaled scores and becomes the
/// dropped-out probabilities `A`; `g` holds `dO · Vᵀ` (the gradient of `A`) and becomes the
/// gradient of the unscaled scores times `scale`, `P ∘ (Z ∘ dA − dO·O) · scale`.
#[inline(always)]
fn backward_row(s: &mut [f32], g: &mut [f32], stats: RowStats, mask: Option<RowMask>) {
    let RowStats {
        lse,
        o_dot_do,
        scale,
    } = stats;
    exp_shifted(s, lse);
    match mask {
        None => {
            for (p, g) in s.iter().zip(g.iter_mut()) {
                *g = p * (*g - o_dot_do) * scale;
            }
        }
        Some(m) => {
            for (j, (p, g)) in s.iter_mut().zip(g.iter_mut()).enumerate() {
                let z = if m.keeps(j) { m.scale } else { 0.0 };
                *g = *p * (*g * z - o_dot_do) * scale;
                *p *= z;
            }
        }
    }
}

impl RowMask {
    #[inline(always)]
    fn keeps(&self, j: usize) -> bool {
        hash32(self.key.wrapping_add((j as u32).wrapping_mul(0x9E37_79B9))) < self.threshold
    }
}

/// A 32-bit integer mix (bijective), vectorisable with AVX2's 32-bit multiplies.
#[inline(always)]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

#[cfg(test)]
#[path = "host_attention_train_tests.rs"]
mod tests;
