//! The post-LN BERT encoder, as in HF transformers 4.30 `BertLayer` (spec §6.3).

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::config::{GeneCompassConfig, HiddenAct};
use super::embeddings::quick_gelu;
use super::host_encoder;
use super::init::normal_linear;

/// Applies the configured activation.
pub fn activate<const D: usize>(act: HiddenAct, x: Tensor<D>) -> Tensor<D> {
    match act {
        HiddenAct::Gelu => gelu(x),
        HiddenAct::Relu => relu(x),
        HiddenAct::QuickGelu => quick_gelu(x),
    }
}

/// `attention.self`: scaled dot-product attention over all heads.
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection (its bias cancels in the softmax; loaded for completeness).
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Attention-probability dropout.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// # Shapes
    /// - `x`: `[B, S, H]`, `mask`: additive `[B, 1, 1, S]` → `[B, S, H]`
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        let [b, s, h] = x.dims();
        let nh = self.num_heads;
        let d = h / nh;
        let fused = !x.device().is_autodiff();
        let split = |t: Tensor<3>| t.reshape([b, s, nh, d]).swap_dims(1, 2);
        let (q, k, v) = (
            self.query.forward(x.clone()),
            self.key.forward(x.clone()),
            self.value.forward(x),
        );
        #[cfg(feature = "train")]
        if !fused && let Some(spec) = self.host_training_spec(&q, mask.as_ref()) {
            // Training on flex: the host kernel with its own backward pass.
            return super::attention_op::train_attention(q, k, v, spec);
        }
        let (q, k, v) = (split(q), split(k), split(v));
        if fused {
            // Inference (no autodiff, so no dropout): the backend's fused attention, which
            // never materialises the [B, heads, S, S] scores on CPU (flash tiles for long S).
            // The additive mask is 0 or f32::MIN, so `< -1` marks exactly the blocked keys;
            // -inf there gives the same probabilities as HF's finfo.min (exactly 0).
            let blocked = mask.map(|m| m.lower_elem(-1.0).expand([b, 1, s, s]));
            let out = attention(q, k, v, blocked, None, AttentionModuleOptions::default());
            return out.swap_dims(1, 2).reshape([b, s, h]);
        }
        let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt());
        if let Some(mask) = mask {
            scores = scores + mask;
        }
        let probs = super::dropout::forward(&self.dropout, softmax(scores, 3));
        probs.matmul(v).swap_dims(1, 2).reshape([b, s, h])
    }
}

#[cfg(feature = "train")]
impl BertSelfAttention {
    /// The host training attention's spec when it applies: f32 on flex, and a mask (if any)
    /// that blocks only a suffix of each cell, as dynamic padding does.
    fn host_training_spec(
        &self,
        q: &Tensor<3>,
        mask: Option<&Tensor<4>>,
    ) -> Option<super::host_attention_train::TrainAttention> {
        use super::host_attention::Keys;
        use super::host_attention_train::{AttentionDropout, TrainAttention};
        let [b, s, h] = q.dims();
        // A dropout probability of 1 or more (a broken config) is left to burn's own checks.
        if !super::attention_op::applies(q) || h % self.num_heads != 0 || self.dropout.prob >= 1.0 {
            return None;
        }
        let lens = match mask {
            None => vec![s; b],
            Some(m) => {
                let rows = m
                    .clone()
                    .reshape([b, s])
                    .into_data()
                    .try_into_vec::<f32>()
                    .ok()?;
                let mut lens = Vec::with_capacity(b);
                for row in rows.chunks(s) {
                    match Keys::from_additive_mask(row) {
                        Keys::Prefix(n) if n > 0 => lens.push(n),
                        _ => return None,
                    }
                }
                lens
            }
        };
        let dropout = (self.dropout.training.is_enabled()
            && q.device().is_autodiff()
            && self.dropout.prob > 0.0)
            .then(|| AttentionDropout {
                prob: self.dropout.prob,
                key: super::dropout::next_key(),
            });
        Some(TrainAttention {
            heads: self.num_heads,
            head_dim: h / self.num_heads,
            seq: s,
            lens,
            dropout,
        })
    }
}

/// Whether `x` runs through the host kernels ([`host_encoder`]): f32 on flex, without autodiff. `Device`
/// equality ignores autodiff, so that is checked first: the host kernels have no backward
/// pass and would cut the encoder out of the gradient.
fn host_inference(device: &Device, x: &Tensor<3>) -> bool {
    !device.is_autodiff() && *device == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// `Linear → dropout → LayerNorm(residual + ·)`: HF `BertSelfOutput` and `BertOutput`.
#[derive(Module, Debug)]
pub struct BertResidualOutput {
    /// The projection.
    pub dense: Linear,
    /// `LayerNorm` (config eps).
    pub layer_norm: LayerNorm,
    /// Hidden dropout.
    pub dropout: Dropout,
}

impl BertResidualOutput {
    /// # Shapes
    /// - `x`: `[B, S, in]`, `residual`: `[B, S, H]` → `[B, S, H]`
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm
            .forward(super::dropout::forward(&self.dropout, self.dense.forward(x)) + residual)
    }
}

/// `attention`: self-attention then its output block.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// `attention.self` (renamed: `self` is a Rust keyword).
    pub attn: BertSelfAttention,
    /// `attention.output`.
    pub output: BertResidualOutput,
}

/// One encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// `attention`.
    pub attention: BertAttention,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output`.
    pub output: BertResidualOutput,
    /// Activation after `intermediate`.
    #[module(skip)]
    pub act: HiddenAct,
    /// The LayerNorms' epsilon (config `layer_norm_eps`), for the host path.
    #[module(skip)]
    pub layer_norm_eps: f64,
}

impl BertLayer {
    /// # Shapes
    /// - `x`: `[B, S, H]` → `[B, S, H]`
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4>>) -> Tensor<3> {
        let a = self.attention.attn.forward(x.clone(), mask);
        let x1 = self.attention.output.forward(a, x);
        let i = activate(self.act, self.intermediate.forward(x1.clone()));
        self.output.forward(i, x1)
    }
}

/// The stack of encoder layers.
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// `encoder.layer.{i}`.
    pub layer: Vec<BertLayer>,
}

impl BertEncoder {
    /// Runs every layer; collects each layer's output when `keep_all`. Positions that `rows`
    /// does not ask for may come out as zeros (see [`super::OutputRows`]).
    ///
    /// # Shapes
    /// - `x`: `[B, S, H]`, `mask`: additive `[B, 1, 1, S]` → last `[B, S, H]`
    pub fn forward(
        &self,
        mut x: Tensor<3>,
        mask: Option<Tensor<4>>,
        keep_all: bool,
        rows: super::OutputRows,
    ) -> (Tensor<3>, Vec<Tensor<3>>) {
        let device = x.device();
        let heads = self.layer.first().map(|l| l.attention.attn.num_heads);
        if let Some(heads) = heads.filter(|_| host_inference(&device, &x)) {
            return host_encoder::encoder_forward(&self.layer, x, mask, heads, keep_all, rows);
        }
        let mut all = Vec::new();
        for layer in &self.layer {
            x = layer.forward(x, mask.clone());
            if keep_all {
                all.push(x.clone());
            }
        }
        (x, all)
    }
}

/// A residual output block with fresh weights.
pub fn init_residual(
    d_in: usize,
    config: &GeneCompassConfig,
    device: &Device,
) -> BertResidualOutput {
    let h = config.hidden_size;
    BertResidualOutput {
        dense: normal_linear(d_in, h, config.initializer_range, device),
        layer_norm: LayerNormConfig::new(h)
            .with_epsilon(config.layer_norm_eps)
            .init(device),
        dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
    }
}

/// A freshly initialised encoder.
pub fn init_encoder(config: &GeneCompassConfig, device: &Device) -> BertEncoder {
    let h = config.hidden_size;
    let std = config.initializer_range;
    let layer = (0..config.num_hidden_layers)
        .map(|_| BertLayer {
            attention: BertAttention {
                attn: BertSelfAttention {
                    query: normal_linear(h, h, std, device),
                    key: normal_linear(h, h, std, device),
                    value: normal_linear(h, h, std, device),
                    dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                    num_heads: config.num_attention_heads,
                },
                output: init_residual(h, config, device),
            },
            intermediate: normal_linear(h, config.intermediate_size, std, device),
            output: init_residual(config.intermediate_size, config, device),
            act: config.hidden_act,
            layer_norm_eps: config.layer_norm_eps,
        })
        .collect();
    BertEncoder { layer }
}
