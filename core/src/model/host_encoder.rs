//! The encoder stack on the host CPU, for inference on the flex backend.
//!
//! The same post-LN BERT layers as [`super::encoder`], run on plain `f32` buffers that live
//! across all layers: one `[rows, 3H]` QKV product, [`host_attention`] over each cell's own
//! keys, biases and residuals added inside the `gemm` calls, and vectorised LayerNorm and
//! activations. Through burn, each op allocates a fresh tensor (page faults were a tenth of
//! the time) and the exact GELU called scalar `erff`.

use burn::backend::{Flex, tensor::FloatTensor};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use rayon::prelude::*;

use super::config::HiddenAct;
use super::encoder::BertLayer;
use super::host_attention::{self, CellRows, Keys, Qkv, exp_lanes};
use super::input::OutputRows;

/// Rows per parallel task of the row-wise passes.
const ROW_CHUNK: usize = 64;

/// Runs `layers` over `x` (`[B, S, H]`, additive `mask` `[B, 1, 1, S]`); with `keep_all`, also
/// every layer's output.
///
/// Unless `rows` is [`OutputRows::All`], a batch whose masks keep a prefix of each cell runs on
/// its real rows only, packed one cell after another: the products, LayerNorms and activations
/// skip the padding (about a sixth of the rows of a length-sorted batch), and the padded
/// positions of the outputs are zeros. Real positions are unchanged: with the mask, no real row
/// reads a padded one. With [`OutputRows::Cls`], the last layer computes each cell's first row
/// only, and every other position of the output is zero.
pub fn encoder_forward(
    layers: &[BertLayer],
    x: Tensor<3>,
    mask: Option<Tensor<4>>,
    heads: usize,
    keep_all: bool,
    rows: OutputRows,
) -> (Tensor<3>, Vec<Tensor<3>>) {
    let [b, s, h] = x.dims();
    let device = x.device();
    let keys: Vec<Keys> = match mask {
        Some(mask) => host_f32(mask.reshape([b, s]))
            .chunks(s)
            .map(Keys::from_additive_mask)
            .collect(),
        None => vec![Keys::Prefix(s); b],
    };
    let prefix_lens: Option<Vec<usize>> = keys
        .iter()
        .map(|k| match k {
            Keys::Prefix(n) if *n > 0 => Some(*n),
            _ => None,
        })
        .collect();
    let packed = prefix_lens.filter(|lens| rows != OutputRows::All && lens.iter().any(|&n| n < s));
    let mut x = host_f32(x);
    let cells = match &packed {
        Some(lens) => {
            let cells = CellRows::packed(lens.iter().copied());
            x = pack_rows(&x, &cells, s, h);
            cells
        }
        None => CellRows::padded(b, s),
    };
    let to_tensor = |x: &[f32]| {
        let full = match &packed {
            Some(_) => unpack_rows(x, &cells, b, s, h),
            None => x.to_vec(),
        };
        Tensor::<3>::from_data(TensorData::new(full, [b, s, h]), &device)
    };
    let (body, cls_layer) = match layers.split_last() {
        Some((last, body)) if rows == OutputRows::Cls => (body, Some(last)),
        _ => (layers, None),
    };
    let mut all = Vec::new();
    let cls = SCRATCH.with_borrow_mut(|scratch| {
        for layer in body {
            layer_forward(layer, &mut x, heads, &cells, &keys, scratch);
            if keep_all {
                all.push(to_tensor(&x));
            }
        }
        cls_layer.map(|layer| cls_layer_forward(layer, &x, heads, &cells, &keys, scratch))
    });
    if let Some(cls) = cls {
        let mut full = vec![0f32; b * s * h];
        for (i, row) in cls.chunks_exact(h).enumerate() {
            full[i * s * h..][..h].copy_from_slice(row);
        }
        let last = Tensor::<3>::from_data(TensorData::new(full, [b, s, h]), &device);
        if keep_all {
            all.push(last.clone());
        }
        return (last, all);
    }
    let last = match &packed {
        Some(_) => to_tensor(&x),
        None => Tensor::from_data(TensorData::new(x, [b, s, h]), &device),
    };
    (last, all)
}

/// The rows of each cell of `cells` taken from the padded `[B, S, H]` buffer `x`, back to back.
fn pack_rows(x: &[f32], cells: &[CellRows], s: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(cells.iter().map(|c| c.len).sum::<usize>() * h);
    for (i, c) in cells.iter().enumerate() {
        out.extend_from_slice(&x[i * s * h..][..c.len * h]);
    }
    out
}

/// The inverse of [`pack_rows`]: a `[B, S, H]` buffer, zeros where a cell has no row.
fn unpack_rows(x: &[f32], cells: &[CellRows], b: usize, s: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; b * s * h];
    for (i, c) in cells.iter().enumerate() {
        out[i * s * h..][..c.len * h].copy_from_slice(&x[c.start * h..][..c.len * h]);
    }
    out
}

thread_local! {
    /// The layer buffers, kept between batches: fresh ones cost a page fault per 4 KiB (tens of
    /// MB per batch). They hold about `rows · (5H + F)` floats of the largest batch seen.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Buffers reused across layers and batches.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    attn: Vec<f32>,
    inter: Vec<f32>,
    x1: Vec<f32>,
}

/// One layer in place on `x` (`[rows, H]`, rows laid out as `cells`).
fn layer_forward(
    layer: &BertLayer,
    x: &mut Vec<f32>,
    heads: usize,
    cells: &[CellRows],
    keys: &[Keys],
    t: &mut Scratch,
) {
    let h = layer.attention.output.dense.weight.dims()[1];
    let rows = x.len() / h;
    qkv_into(layer, x, rows, h, &mut t.qkv);
    t.attn.resize(rows * h, 0.0);
    let qkv = Qkv {
        q: &t.qkv,
        k: &t.qkv[h..],
        v: &t.qkv[2 * h..],
        row_stride: 3 * h,
    };
    host_attention::attention_cells(qkv, heads, h / heads, cells, keys, &mut t.attn);
    block_tail(layer, x, &t.attn, rows, &mut t.x1, &mut t.inter);
}

/// The last layer for its CLS rows only (each cell's first row): keys and values from every
/// row of `x` (laid out as `cells`), the query, attention output and feed-forward for one row
/// per cell. Returns `[cells, H]`.
fn cls_layer_forward(
    layer: &BertLayer,
    x: &[f32],
    heads: usize,
    cells: &[CellRows],
    keys: &[Keys],
    t: &mut Scratch,
) -> Vec<f32> {
    let h = layer.attention.output.dense.weight.dims()[1];
    let (rows, d) = (x.len() / h, h / heads);
    // Queries of the other rows are computed and unused: a third of this one product.
    qkv_into(layer, x, rows, h, &mut t.qkv);
    let qkv = &t.qkv;
    let scale = 1.0 / (d as f32).sqrt();
    let mut attn = vec![0f32; cells.len() * h];
    attn.par_chunks_mut(h).enumerate().for_each(|(i, out)| {
        let c = cells[i];
        let at = |row: usize, part: usize, head: usize| {
            &qkv[(c.start + row) * 3 * h + part * h + head * d..][..d]
        };
        // No kept key at all: HF's additive mask spreads the row evenly over every position.
        let key_rows: Vec<usize> = match &keys[i] {
            Keys::Prefix(0) => (0..c.len).collect(),
            Keys::Prefix(n) => (0..*n).collect(),
            Keys::Indices(ix) => ix.clone(),
        };
        let uniform = keys[i] == Keys::Prefix(0);
        for head in 0..heads {
            let q = at(0, 0, head);
            let mut p: Vec<f32> = key_rows
                .iter()
                .map(|&j| match uniform {
                    true => 0.0,
                    false => {
                        q.iter()
                            .zip(at(j, 1, head))
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            * scale
                    }
                })
                .collect();
            let sum = host_attention::exp_row(&mut p);
            let o = &mut out[head * d..][..d];
            for (&j, &p) in key_rows.iter().zip(&p) {
                o.iter_mut()
                    .zip(at(j, 2, head))
                    .for_each(|(o, v)| *o += p * v);
            }
            o.iter_mut().for_each(|v| *v /= sum);
        }
    });
    let mut x_cls: Vec<f32> = cells
        .iter()
        .flat_map(|c| x[c.start * h..][..h].iter().copied())
        .collect();
    let (mut x1, mut inter) = (Vec::new(), Vec::new());
    block_tail(layer, &mut x_cls, &attn, cells.len(), &mut x1, &mut inter);
    x_cls
}

/// `[rows, 3H]` QKV of `x` into `qkv`, columns `[q | k | v]`: each product writes its third of
/// every row (as fast as one `[H, 3H]` product, without concatenating the weights).
fn qkv_into(layer: &BertLayer, x: &[f32], rows: usize, h: usize, qkv: &mut Vec<f32>) {
    let att = &layer.attention.attn;
    let parts = [&att.query, &att.key, &att.value].map(weights);
    let bias: Vec<f32> = parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    fill_rows(qkv, rows, &bias);
    for (i, (w, _)) in parts.iter().enumerate() {
        matmul_add_strided(x, rows, h, w.as_slice(), h, &mut qkv[i * h..], 3 * h);
    }
}

/// After attention, in place on `x` (`[rows, H]`): `x1 = LayerNorm(x + attn · Wo + bo)`, then
/// `LayerNorm(x1 + act(x1 · Wi + bi) · Wo2 + bo2)`.
fn block_tail(
    layer: &BertLayer,
    x: &mut Vec<f32>,
    attn: &[f32],
    rows: usize,
    x1: &mut Vec<f32>,
    inter: &mut Vec<f32>,
) {
    let h = layer.attention.output.dense.weight.dims()[1];
    let out = &layer.attention.output;
    let (wo, bo) = weights(&out.dense);
    residual_rows(x1, x, &bo, h);
    matmul_add(attn, rows, h, wo.as_slice(), h, x1);
    layer_norm_rows(x1, &out.layer_norm, layer.layer_norm_eps);
    let (wi, bi) = weights(&layer.intermediate);
    let f = bi.len();
    fill_rows(inter, rows, &bi);
    matmul_add(x1, rows, h, wi.as_slice(), f, inter);
    activate_rows(inter, layer.act);
    let out = &layer.output;
    let (wo2, bo2) = weights(&out.dense);
    residual_rows(x, x1, &bo2, h);
    matmul_add(inter, rows, f, wo2.as_slice(), h, x);
    layer_norm_rows(x, &out.layer_norm, layer.layer_norm_eps);
}

fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("a flex f32 tensor reads back as f32")
}

/// `(weight [in, out] row-major, bias [out])`; a missing bias is zeros.
fn weights(l: &Linear) -> (HostMatrix, Vec<f32>) {
    let w = l.weight.val();
    let out = w.dims()[1];
    let bias = l
        .bias
        .as_ref()
        .map(|b| host_f32(b.val()))
        .unwrap_or_else(|| vec![0.0; out]);
    (HostMatrix::new(w), bias)
}

/// A weight's values on the host: flex's own buffer where it is contiguous f32 (no copy: Base's
/// weights are 340 MB per batch), else a copy.
enum HostMatrix {
    Shared(FloatTensor<Flex>),
    Copied(Vec<f32>),
}

impl HostMatrix {
    fn new(w: Tensor<2>) -> Self {
        if let Ok(t) = w.clone().try_into_primitive::<Flex>()
            && t.as_slice::<f32>().is_some()
        {
            return HostMatrix::Shared(t);
        }
        HostMatrix::Copied(host_f32(w))
    }

    fn as_slice(&self) -> &[f32] {
        match self {
            HostMatrix::Shared(t) => t.as_slice::<f32>().expect("checked in HostMatrix::new"),
            HostMatrix::Copied(v) => v,
        }
    }
}

/// `dst` ← `rows` copies of `row`.
fn fill_rows(dst: &mut Vec<f32>, rows: usize, row: &[f32]) {
    dst.resize(rows * row.len(), 0.0);
    dst.par_chunks_mut(row.len() * ROW_CHUNK).for_each(|c| {
        for r in c.chunks_exact_mut(row.len()) {
            r.copy_from_slice(row);
        }
    });
}

/// `dst` ← `src + bias` row-wise (`src` is `[rows, width]`).
fn residual_rows(dst: &mut Vec<f32>, src: &[f32], bias: &[f32], width: usize) {
    dst.resize(src.len(), 0.0);
    dst.par_chunks_mut(width * ROW_CHUNK)
        .zip(src.par_chunks(width * ROW_CHUNK))
        .for_each(|(d, s)| {
            for (d, s) in d.chunks_exact_mut(width).zip(s.chunks_exact(width)) {
                for ((d, s), b) in d.iter_mut().zip(s).zip(bias) {
                    *d = s + b;
                }
            }
        });
}

/// `dst += a · w`, with `a` `[rows, k]` and `w` `[k, n]` row-major, `dst` `[rows, n]`.
fn matmul_add(a: &[f32], rows: usize, k: usize, w: &[f32], n: usize, dst: &mut [f32]) {
    assert_eq!(dst.len(), rows * n);
    matmul_add_strided(a, rows, k, w, n, dst, n);
}

/// [`matmul_add`] into the first `n` columns of `dst`'s rows, `stride` floats apart.
fn matmul_add_strided(
    a: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    n: usize,
    dst: &mut [f32],
    stride: usize,
) {
    assert!(a.len() >= rows * k && w.len() == k * n && stride >= n);
    assert!(rows == 0 || dst.len() >= (rows - 1) * stride + n);
    // SAFETY: the shapes were checked above; the strides describe those row-major buffers.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Row-wise LayerNorm in place, with the module's scale and shift.
fn layer_norm_rows(x: &mut [f32], ln: &LayerNorm, eps: f64) {
    let gamma = host_f32(ln.gamma.val());
    let width = gamma.len();
    let beta = ln
        .beta
        .as_ref()
        .map(|b| host_f32(b.val()))
        .unwrap_or_else(|| vec![0.0; width]);
    let eps = eps as f32;
    x.par_chunks_mut(width * ROW_CHUNK).for_each(|c| {
        for row in c.chunks_exact_mut(width) {
            let mean = row.iter().sum::<f32>() / width as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&gamma).zip(&beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    });
}

/// The activation in place.
fn activate_rows(x: &mut [f32], act: HiddenAct) {
    let f: fn(&mut [f32]) = match act {
        HiddenAct::Gelu => pick(gelu_slice, |c| {
            // SAFETY: `pick` returns this only where AVX2 and FMA were detected.
            unsafe { avx2::gelu(c) }
        }),
        HiddenAct::Relu => |c| c.iter_mut().for_each(|v| *v = v.max(0.0)),
        HiddenAct::QuickGelu => pick(quick_gelu_slice, |c| {
            // SAFETY: as above.
            unsafe { avx2::quick_gelu(c) }
        }),
    };
    x.par_chunks_mut(8 * 1024).for_each(f);
}

/// `fast` where the CPU has AVX2 and FMA (builds target baseline x86-64), else `baseline`.
fn pick(baseline: fn(&mut [f32]), fast: fn(&mut [f32])) -> fn(&mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return fast;
        }
    }
    let _ = fast;
    baseline
}

/// The activations compiled for AVX2 (8 lanes per instruction instead of 4).
mod avx2 {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu(x: &mut [f32]) {
        super::gelu_slice(x)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quick_gelu(x: &mut [f32]) {
        super::quick_gelu_slice(x)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn gelu(x: &mut [f32]) {
        super::gelu_slice(x)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn quick_gelu(x: &mut [f32]) {
        super::quick_gelu_slice(x)
    }
}

const LANES: usize = 8;

/// `$f` over `$x` in 8-lane chunks (the tail one value at a time, broadcast to 8 lanes).
///
/// A macro, not a function taking `impl Fn`: a function item passed that way is called through
/// its `Fn::call` shim, which LLVM left out of line and compiled for baseline x86-64, so the
/// AVX2 GELU ran as 4-lane SSE code (5 % of Base's inference in `perf`).
macro_rules! map_lanes {
    ($x:expr, $f:expr) => {{
        let mut chunks = $x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            let v: [f32; LANES] = (&*c).try_into().expect("8 lanes");
            c.copy_from_slice(&$f(v));
        }
        for v in chunks.into_remainder() {
            *v = $f([*v; LANES])[0];
        }
    }};
}

/// Exact (erf) GELU, `x · Φ(x)`, in 8-lane chunks.
#[inline(always)]
fn gelu_slice(x: &mut [f32]) {
    map_lanes!(x, gelu_lanes);
}

/// `x · Φ(x) = x · erfc(-x/√2) / 2`, with erfc from Numerical Recipes' Chebyshev fit
/// (`erfcc`, fractional error below 1.2e-7 everywhere), reflected for negative arguments.
#[inline(always)]
fn gelu_lanes(x: [f32; LANES]) -> [f32; LANES] {
    let mut arg = [0f32; LANES];
    let mut t = [0f32; LANES];
    for i in 0..LANES {
        let z = (x[i] * std::f32::consts::FRAC_1_SQRT_2).abs();
        t[i] = 1.0 / (0.5 * z + 1.0);
        let tt = t[i];
        // Plain `a * b + c` (see `exp_lanes`).
        let mut p = 0.170_872_77f32;
        for c in [
            -0.822_152_23,
            1.488_515_9,
            -1.135204,
            0.278_868_07,
            -0.186_288_06,
            0.096_784_18,
            0.374_091_96,
            1.0000237,
            -1.2655122,
        ] {
            p = p * tt + c;
        }
        arg[i] = p - z * z;
    }
    let e = exp_lanes(arg);
    let mut out = [0f32; LANES];
    for i in 0..LANES {
        // erfc(|x|/√2); Φ(x) = erfc(-x/√2)/2 is that for x < 0 and 1 - that for x ≥ 0.
        let tail = 0.5 * t[i] * e[i];
        let phi = if x[i] >= 0.0 { 1.0 - tail } else { tail };
        out[i] = x[i] * phi;
    }
    out
}

/// `x · sigmoid(1.702 x)` in 8-lane chunks.
#[inline(always)]
fn quick_gelu_slice(x: &mut [f32]) {
    map_lanes!(x, quick_gelu_lanes);
}

/// `x · sigmoid(1.702 x)` of 8 values.
#[inline(always)]
fn quick_gelu_lanes(c: [f32; LANES]) -> [f32; LANES] {
    let e = exp_lanes(c.map(|v| -1.702 * v));
    let mut out = [0f32; LANES];
    for i in 0..LANES {
        out[i] = c[i] / (1.0 + e[i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series, exact in f64 for the |x| < 3.6 used here.
    fn erf_f64(x: f64) -> f64 {
        let (mut sum, mut term) = (0.0, x);
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        let mut worst = 0f64;
        for i in 0..5000 {
            let x = -5.0 + i as f32 * 0.002;
            let got = gelu_lanes([x; LANES])[0] as f64;
            let want = 0.5 * x as f64 * (1.0 + erf_f64(x as f64 / std::f64::consts::SQRT_2));
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 2e-6, "max |Δ| {worst}");
    }

    #[test]
    fn host_matrix_shares_contiguous_weights_and_copies_views() {
        let device = Device::flex();
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let w = Tensor::<2>::from_data(TensorData::new(data.clone(), [2, 3]), &device);
        let shared = HostMatrix::new(w.clone());
        assert!(matches!(shared, HostMatrix::Shared(_)));
        assert_eq!(shared.as_slice(), &data[..]);
        // A transposed view is not row-major in memory: it must be copied in its logical order.
        let t = HostMatrix::new(w.transpose());
        assert!(matches!(t, HostMatrix::Copied(_)));
        assert_eq!(t.as_slice(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn quick_gelu_matches_its_definition() {
        let mut x: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 9.0).collect();
        let want: Vec<f32> = x.iter().map(|v| v / (1.0 + (-1.702 * v).exp())).collect();
        quick_gelu_slice(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
