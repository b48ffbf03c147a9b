//! The logistic-regression baseline: multinomial, L2-penalised, fitted by full-batch Adam on
//! standardised features, on the same cells and splits as the model.
//!
//! Features are sparse per cell (`log1p(count / total · 1e4)` over the file's genes for count
//! input, the tokenized values scattered into a token × cell matrix for pre-tokenized input);
//! the `max_features` features with the highest training-split mean are kept. The penalty is
//! picked from a small grid by validation macro-F1 (the test split is never looked at).

use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::Serialize;

use super::metrics::{Metrics, argmax_rows, classification_metrics};

/// One cell's sparse features: (feature index, value).
pub type SparseRow = Vec<(u32, f32)>;

/// Baseline settings.
#[derive(Debug, Clone, Copy)]
pub struct BaselineOptions {
    /// Features kept (highest training mean).
    pub max_features: usize,
    /// Adam iterations per penalty.
    pub iterations: usize,
    /// Adam step size.
    pub lr: f64,
    /// Candidate L2 penalties (on the mean loss).
    pub penalties: &'static [f64],
}

impl Default for BaselineOptions {
    fn default() -> Self {
        Self {
            max_features: 4000,
            iterations: 300,
            lr: 0.05,
            penalties: &[1e-4, 1e-3, 1e-2, 1e-1],
        }
    }
}

/// What the baseline reports.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    /// Description of the features.
    pub features: String,
    /// Features used.
    pub n_features: usize,
    /// The chosen L2 penalty.
    pub penalty: f64,
    /// Validation metrics of the chosen penalty (absent without a validation split).
    pub val: Option<Metrics>,
    /// Test metrics.
    pub test: Metrics,
}

/// Row-major dense matrix of `rows` restricted to `keep` (feature → column).
fn dense(rows: &[&SparseRow], col: &[Option<usize>], d: usize) -> Vec<f32> {
    let mut x = vec![0f32; rows.len() * d];
    for (i, r) in rows.iter().enumerate() {
        for &(f, v) in r.iter() {
            if let Some(c) = col.get(f as usize).copied().flatten() {
                x[i * d + c] += v;
            }
        }
    }
    x
}

/// Fits and evaluates the baseline. `rows` holds every cell; the splits index into it.
#[allow(clippy::too_many_arguments)]
pub fn fit_baseline(
    rows: &[SparseRow],
    labels: &[usize],
    names: &[String],
    train: &[usize],
    val: &[usize],
    test: &[usize],
    features: &str,
    options: &BaselineOptions,
    device: &Device,
) -> BaselineReport {
    let n_feat = rows
        .iter()
        .flat_map(|r| r.iter().map(|&(f, _)| f as usize + 1))
        .max()
        .unwrap_or(0);
    let mut mean = vec![0f64; n_feat];
    for &i in train {
        for &(f, v) in &rows[i] {
            mean[f as usize] += v as f64;
        }
    }
    let mut order: Vec<usize> = (0..n_feat).filter(|&f| mean[f] > 0.0).collect();
    order.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]).then(a.cmp(&b)));
    order.truncate(options.max_features.max(1));
    let d = order.len().max(1);
    let mut col = vec![None; n_feat];
    for (c, &f) in order.iter().enumerate() {
        col[f] = Some(c);
    }
    let pick = |idx: &[usize]| -> Vec<&SparseRow> { idx.iter().map(|&i| &rows[i]).collect() };
    let to_tensor = |idx: &[usize]| -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(dense(&pick(idx), &col, d), [idx.len(), d]),
            device,
        )
    };
    let x_train = to_tensor(train);
    let mu = x_train.clone().mean_dim(0);
    let sd = (x_train.clone() - mu.clone()).square().mean_dim(0).sqrt() + 1e-6;
    let standardise = |x: Tensor<2>| (x - mu.clone()) / sd.clone();
    let x_train = standardise(x_train);
    let k = names.len();
    let y_train: Vec<i64> = train.iter().map(|&i| labels[i] as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y_train, [train.len()]), device)
        .one_hot(k)
        .float();
    let truth = |idx: &[usize]| -> Vec<usize> { idx.iter().map(|&i| labels[i]).collect() };
    let predict = |w: &Tensor<2>, b: &Tensor<1>, idx: &[usize]| -> Vec<usize> {
        if idx.is_empty() {
            return Vec::new();
        }
        let logits = standardise(to_tensor(idx)).matmul(w.clone()) + b.clone().unsqueeze_dim(0);
        argmax_rows(
            &logits.into_data().try_to_vec::<f32>().expect("f32 logits"),
            k,
        )
    };
    let mut best: Option<(f64, f64, Tensor<2>, Tensor<1>, Option<Metrics>)> = None;
    let penalties: &[f64] = if val.is_empty() {
        &options.penalties[1..2]
    } else {
        options.penalties
    };
    for &lambda in penalties {
        let (w, b) = fit_one(&x_train, &y, lambda, options, device);
        let val_metrics = (!val.is_empty())
            .then(|| classification_metrics(&truth(val), &predict(&w, &b, val), names));
        let score = val_metrics.as_ref().map_or(0.0, |m| m.macro_f1);
        if best.as_ref().is_none_or(|bst| score > bst.0) {
            best = Some((score, lambda, w, b, val_metrics));
        }
    }
    let (_, penalty, w, b, val_metrics) = best.expect("at least one penalty");
    BaselineReport {
        features: features.to_string(),
        n_features: order.len(),
        penalty,
        val: val_metrics,
        test: classification_metrics(&truth(test), &predict(&w, &b, test), names),
    }
}

/// Full-batch Adam on `mean CE + λ/2 ‖W‖²` with the analytic gradient.
fn fit_one(
    x: &Tensor<2>,
    y: &Tensor<2>,
    lambda: f64,
    o: &BaselineOptions,
    device: &Device,
) -> (Tensor<2>, Tensor<1>) {
    let [n, d] = x.dims();
    let k = y.dims()[1];
    let mut w = Tensor::<2>::zeros([d, k], device);
    let mut b = Tensor::<1>::zeros([k], device);
    let (mut mw, mut vw) = (w.zeros_like(), w.zeros_like());
    let (mut mb, mut vb) = (b.zeros_like(), b.zeros_like());
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let xt = x.clone().transpose();
    for t in 1..=o.iterations {
        let p = softmax(x.clone().matmul(w.clone()) + b.clone().unsqueeze_dim(0), 1);
        let r = (p - y.clone()) / n.max(1) as f64;
        let gw = xt.clone().matmul(r.clone()) + w.clone() * lambda;
        let gb = r.sum_dim(0).reshape([k]);
        mw = mw * b1 + gw.clone() * (1.0 - b1);
        vw = vw * b2 + gw.square() * (1.0 - b2);
        mb = mb * b1 + gb.clone() * (1.0 - b1);
        vb = vb * b2 + gb.square() * (1.0 - b2);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        w = w - (mw.clone() / c1) / ((vw.clone() / c2).sqrt() + eps) * o.lr;
        b = b - (mb.clone() / c1) / ((vb.clone() / c2).sqrt() + eps) * o.lr;
    }
    (w, b)
}
