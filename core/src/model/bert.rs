//! `BertModel` with the species CLS token (spec §6.3; `genecompass/modeling_bert.py`).

use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::config::GeneCompassConfig;
use super::embeddings::{KnowledgeBertEmbeddings, init_embeddings};
use super::encoder::{BertEncoder, init_encoder};
use super::init::{normal_embedding, normal_linear};
use super::input::{ForwardOptions, ModelInput};

/// `pooler`: `tanh(dense(h[:, 0]))`, the classifier's cell representation.
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `pooler.dense`.
    pub dense: Linear,
}

impl BertPooler {
    /// # Shapes
    /// - `seq`: `[B, S, H]` → `[B, H]`
    pub fn forward(&self, seq: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = seq.dims();
        self.dense
            .forward(seq.narrow(1, 0, 1).reshape([b, h]))
            .tanh()
    }
}

/// The GeneCompass encoder: embeddings, species CLS, BERT layers, optional pooler.
#[derive(Module, Debug)]
pub struct BertModel {
    /// `bert.embeddings`.
    pub embeddings: KnowledgeBertEmbeddings,
    /// `bert.cls_embedding` `[S, H]` (row 0 human, row 1 mouse, then added species); absent
    /// when `use_cls_token` is off.
    pub cls_embedding: Option<Embedding>,
    /// `bert.encoder`.
    pub encoder: BertEncoder,
    /// `bert.pooler` (classifiers only).
    pub pooler: Option<BertPooler>,
}

/// What [`BertModel::forward`] returns.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// Last layer, CLS first when the model has one. `[B, L(+1), H]`
    pub last_hidden_state: Tensor<3>,
    /// Encoder input then each layer's output, when asked. `N+1 × [B, L(+1), H]`
    pub hidden_states: Vec<Tensor<3>>,
    /// Pooler output when the model has a pooler. `[B, H]`
    pub pooled: Option<Tensor<2>>,
}

/// Builds a freshly initialised encoder.
pub fn init_bert(config: &GeneCompassConfig, with_pooler: bool, device: &Device) -> BertModel {
    let h = config.hidden_size;
    BertModel {
        embeddings: init_embeddings(config, device),
        cls_embedding: config.use_cls_token.then(|| {
            normal_embedding(
                config.species_count(),
                h,
                config.initializer_range,
                None,
                device,
            )
        }),
        encoder: init_encoder(config, device),
        pooler: with_pooler.then(|| BertPooler {
            dense: normal_linear(h, h, config.initializer_range, device),
        }),
    }
}

/// HF `get_extended_attention_mask`: `(1 - mask) * finfo(f32).min`, shaped `[B, 1, 1, S]`.
pub fn additive_mask(mask: Tensor<2>) -> Tensor<4> {
    let [b, s] = mask.dims();
    ((mask.neg() + 1.0) * f32::MIN).reshape([b, 1, 1, s])
}

impl BertModel {
    /// The official forward: embeddings, CLS prepended after the embedding LayerNorm (no
    /// position embedding, no LN on it), mask extended with a leading 1, encoder, pooler.
    pub fn forward(&self, input: &ModelInput, options: ForwardOptions) -> BertOutput {
        let emb = self.embeddings.forward(
            input.input_ids.clone(),
            input.values.clone(),
            input.species.clone(),
            options.alpha,
        );
        self.encode(emb, input, options)
    }

    /// Everything after the embedding (shared with the folded inference path).
    pub fn encode(
        &self,
        emb: Tensor<3>,
        input: &ModelInput,
        options: ForwardOptions,
    ) -> BertOutput {
        let [b, _] = input.dims();
        let device = emb.device();
        let (h0, mask) = match &self.cls_embedding {
            Some(cls) => {
                let species = input
                    .species
                    .clone()
                    .unwrap_or_else(|| Tensor::zeros([b, 1], &device));
                let h0 = Tensor::cat(vec![cls.forward(species), emb], 1);
                let mask = input
                    .attention_mask
                    .clone()
                    .map(|m| Tensor::cat(vec![Tensor::ones([b, 1], &device), m], 1));
                (h0, mask)
            }
            None => (emb, input.attention_mask.clone()),
        };
        let mask = mask.map(additive_mask);
        let (last, layers) =
            self.encoder
                .forward(h0.clone(), mask, options.output_hidden_states, options.rows);
        let hidden_states = if options.output_hidden_states {
            std::iter::once(h0).chain(layers).collect()
        } else {
            Vec::new()
        };
        let pooled = self.pooler.as_ref().map(|p| p.forward(last.clone()));
        BertOutput {
            last_hidden_state: last,
            hidden_states,
            pooled,
        }
    }

    /// The gene positions of a sequence output (drops the CLS row when there is one).
    ///
    /// # Shapes
    /// - `seq`: `[B, L(+1), H]` → `[B, L, H]`
    pub fn gene_positions(&self, seq: Tensor<3>) -> Tensor<3> {
        if self.cls_embedding.is_some() {
            let [_, s, _] = seq.dims();
            seq.narrow(1, 1, s - 1)
        } else {
            seq
        }
    }
}
