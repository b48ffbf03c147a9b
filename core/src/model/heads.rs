//! The pretraining heads (`cls`, `cls4value`) and the masked-LM loss (spec §6.5, §7.2).

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::bert::{BertModel, init_bert};
use super::config::{GeneCompassConfig, HiddenAct};
use super::encoder::activate;
use super::init::normal_linear;
use super::input::{ForwardOptions, ModelInput};

/// Loss weights of the official `BertForMaskedLM` (run name `…id02value08…`).
pub const ID_LOSS_WEIGHT: f32 = 0.2;
/// Weight of the value MSE.
pub const VALUE_LOSS_WEIGHT: f32 = 0.8;

/// HF `BertPredictionHeadTransform`: dense → activation → LayerNorm.
#[derive(Module, Debug)]
pub struct PredictionHeadTransform {
    /// `transform.dense`.
    pub dense: Linear,
    /// `transform.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Activation (`hidden_act`).
    #[module(skip)]
    pub act: HiddenAct,
}

impl PredictionHeadTransform {
    /// # Shapes
    /// - `[..., H]` → `[..., H]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.layer_norm
            .forward(activate(self.act, self.dense.forward(x)))
    }
}

/// `cls.predictions`: transform, then the decoder tied to the word embeddings plus a bias.
#[derive(Module, Debug)]
pub struct MlmIdHead {
    /// `cls.predictions.transform`.
    pub transform: PredictionHeadTransform,
    /// `cls.predictions.bias` `[V]`.
    pub bias: Param<Tensor<1>>,
}

/// `cls4value.predictions`: transform, then `Linear(H → 1)`.
#[derive(Module, Debug)]
pub struct MlmValueHead {
    /// `cls4value.predictions.transform`.
    pub transform: PredictionHeadTransform,
    /// `cls4value.predictions.decoder` (its bias is `cls4value.predictions.bias`).
    pub decoder: Linear,
}

/// `BertForMaskedLM`: the pretraining model.
#[derive(Module, Debug)]
pub struct GeneCompassForMaskedLm {
    /// `bert`.
    pub bert: BertModel,
    /// `cls`: gene-id head.
    pub cls: MlmIdHead,
    /// `cls4value`: value head.
    pub cls4value: MlmValueHead,
}

/// Targets of the masked-LM loss, at the masked positions only.
#[derive(Debug, Clone)]
pub struct MlmTargets {
    /// Flat indices `b * L + j` of the masked gene positions. `[M]`
    pub positions: Tensor<1, Int>,
    /// The original token id at each. `[M]`
    pub ids: Tensor<1, Int>,
    /// The original value at each. `[M]`
    pub values: Tensor<1>,
}

/// Losses of one masked-LM step.
#[derive(Debug, Clone)]
pub struct MlmLoss {
    /// `0.2 · id_loss + 0.8 · value_loss`.
    pub loss: Tensor<1>,
    /// Mean cross-entropy over masked tokens.
    pub id_loss: Tensor<1>,
    /// Mean squared error of the value head at masked tokens.
    pub value_loss: Tensor<1>,
}

/// Full MLM outputs (every position), for inspection and parity.
#[derive(Debug, Clone)]
pub struct MlmOutput {
    /// Gene-id logits. `[B, L, V]`
    pub logits: Tensor<3>,
    /// Value predictions. `[B, L]`
    pub values: Tensor<2>,
}

fn init_transform(config: &GeneCompassConfig, device: &Device) -> PredictionHeadTransform {
    let h = config.hidden_size;
    PredictionHeadTransform {
        dense: normal_linear(h, h, config.initializer_range, device),
        layer_norm: LayerNormConfig::new(h)
            .with_epsilon(config.layer_norm_eps)
            .init(device),
        act: config.hidden_act,
    }
}

/// A freshly initialised pretraining model.
pub fn init_mlm(config: &GeneCompassConfig, device: &Device) -> GeneCompassForMaskedLm {
    GeneCompassForMaskedLm {
        bert: init_bert(config, false, device),
        cls: MlmIdHead {
            transform: init_transform(config, device),
            bias: Param::from_tensor(Tensor::zeros([config.vocab_size], device)),
        },
        cls4value: MlmValueHead {
            transform: init_transform(config, device),
            decoder: normal_linear(config.hidden_size, 1, config.initializer_range, device),
        },
    }
}

impl GeneCompassForMaskedLm {
    /// Gene-id logits of gene-position states, through the tied decoder.
    ///
    /// # Shapes
    /// - `genes`: `[N, H]` → `[N, V]`
    pub fn id_logits(&self, genes: Tensor<2>) -> Tensor<2> {
        let t = self.cls.transform.forward(genes);
        let w = self.bert.embeddings.word_embeddings.weight.val();
        t.matmul(w.transpose()) + self.cls.bias.val().unsqueeze_dim(0)
    }

    /// Value predictions of gene-position states.
    ///
    /// # Shapes
    /// - `genes`: `[N, H]` → `[N]`
    pub fn value_pred(&self, genes: Tensor<2>) -> Tensor<1> {
        let n = genes.dims()[0];
        self.cls4value
            .decoder
            .forward(self.cls4value.transform.forward(genes))
            .reshape([n])
    }

    /// Both heads at every gene position.
    pub fn forward(&self, input: &ModelInput, options: ForwardOptions) -> MlmOutput {
        let genes = self.gene_states(input, options);
        let [b, l, h] = genes.dims();
        let flat = genes.reshape([b * l, h]);
        let v = self.bert.embeddings.word_embeddings.weight.dims()[0];
        MlmOutput {
            logits: self.id_logits(flat.clone()).reshape([b, l, v]),
            values: self.value_pred(flat).reshape([b, l]),
        }
    }

    /// The official loss, computing the id head only at masked positions (identical value,
    /// far less work than `[B, L, V]` logits).
    pub fn loss(
        &self,
        input: &ModelInput,
        targets: &MlmTargets,
        options: ForwardOptions,
    ) -> MlmLoss {
        let genes = self.gene_states(input, options);
        let [b, l, h] = genes.dims();
        let picked = genes
            .reshape([b * l, h])
            .select(0, targets.positions.clone());
        let logp = log_softmax(self.id_logits(picked.clone()), 1);
        let id_loss = logp
            .gather(1, targets.ids.clone().unsqueeze_dim(1))
            .mean()
            .neg();
        let diff = self.value_pred(picked) - targets.values.clone();
        let value_loss = (diff.clone() * diff).mean();
        MlmLoss {
            loss: id_loss.clone() * ID_LOSS_WEIGHT + value_loss.clone() * VALUE_LOSS_WEIGHT,
            id_loss,
            value_loss,
        }
    }

    fn gene_states(&self, input: &ModelInput, options: ForwardOptions) -> Tensor<3> {
        let out = self.bert.forward(input, options);
        self.bert.gene_positions(out.last_hidden_state)
    }
}
