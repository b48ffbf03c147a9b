//! HF `BertPreTrainedModel._init_weights`: weights ~ N(0, initializer_range), biases 0,
//! LayerNorm 1/0, the padding row of the word embedding 0 (spec §6.6).

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;

/// A `Linear(d_in → d_out)` with N(0, std) weights and zero bias.
pub fn normal_linear(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(Tensor::random(
            [d_in, d_out],
            Distribution::Normal(0.0, std),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

/// An `Embedding(n, d)` with N(0, std) rows and, if given, a zero padding row.
pub fn normal_embedding(
    n: usize,
    d: usize,
    std: f64,
    padding_idx: Option<usize>,
    device: &Device,
) -> Embedding {
    let mut weight = Tensor::<2>::random([n, d], Distribution::Normal(0.0, std), device);
    if let Some(p) = padding_idx.filter(|&p| p < n) {
        weight = weight.slice_assign([p..p + 1, 0..d], Tensor::zeros([1, d], device));
    }
    Embedding {
        weight: Param::from_tensor(weight),
    }
}
