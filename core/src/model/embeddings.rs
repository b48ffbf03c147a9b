//! `KnowledgeBertEmbeddings`: gene id, value and four prior-knowledge tables fused per token.
//!
//! Mirrors `genecompass/knowledge_embeddings.py` (xCompass-AI/GeneCompass@8323757); spec §6.2.

use burn::module::{Param, ParamId};
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::config::GeneCompassConfig;
use super::init::{normal_embedding, normal_linear};

/// The concat MLP's LayerNorm uses PyTorch's default eps, not the config's
/// (`nn.LayerNorm(hidden_size)` in `knowledge_embeddings.py`).
pub const CAT_LN_EPS: f64 = 1e-5;

/// QuickGELU: `x * sigmoid(1.702 x)` (CLIP's approximation, used by the concat MLP).
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x * 1.702)
}

/// One prior-knowledge input: a frozen `[V, K]` table and its `Linear(K → H)`.
#[derive(Module, Debug)]
pub struct PriorEmbedding {
    /// `{stem}_embeddings.linear1` in the checkpoint.
    pub linear1: Linear,
    /// `{stem}_knowledge`: the frozen table, indexed by (homolog-remapped) token id.
    pub knowledge: Param<Tensor<2>>,
}

/// `cat_fc → cat_ln → QuickGELU → cat_proj`.
#[derive(Module, Debug)]
pub struct ConcatEmbeddings {
    /// `Linear(5H+1 → H)`; input columns: word | value | one block per prior.
    pub cat_fc: Linear,
    /// LayerNorm with eps [`CAT_LN_EPS`].
    pub cat_ln: LayerNorm,
    /// `Linear(H → H)`.
    pub cat_proj: Linear,
}

impl ConcatEmbeddings {
    /// The MLP after `cat_fc` (shared with the folded inference path).
    pub fn after_fc<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.cat_proj.forward(quick_gelu(self.cat_ln.forward(x)))
    }
}

/// The GeneCompass token embedding.
#[derive(Module, Debug)]
pub struct KnowledgeBertEmbeddings {
    /// `word_embeddings` `[V, H]`. The pad row is used as stored (the official lookup does not zero it).
    pub word_embeddings: Embedding,
    /// Priors in concatenation order (promoter, co_exp, gene_family, peca_grn; only those enabled).
    pub priors: Vec<PriorEmbedding>,
    /// `homologous_index` `[V]`: mouse token → human token; identity elsewhere.
    pub homologous_index: Param<Tensor<1, Int>>,
    /// The concat MLP.
    pub concat_embeddings: ConcatEmbeddings,
    /// `position_embeddings` `[P, H]`, indexed by rank position.
    pub position_embeddings: Embedding,
    /// `token_type_embeddings` `[T, H]`; row 0 is added to every token.
    pub token_type_embeddings: Embedding,
    /// `LayerNorm` with the config eps.
    pub layer_norm: LayerNorm,
    /// Hidden dropout (active only when training on an autodiff device).
    pub dropout: Dropout,
    /// Whether the value column is part of `cat_fc`'s input.
    pub use_values: bool,
}

/// Builds a fresh, HF-initialised embedding (knowledge tables zero until loaded).
pub fn init_embeddings(config: &GeneCompassConfig, device: &Device) -> KnowledgeBertEmbeddings {
    let h = config.hidden_size;
    let k = config.knowledge_width();
    let std = config.initializer_range;
    let priors = config
        .priors()
        .into_iter()
        .map(|_| PriorEmbedding {
            linear1: normal_linear(k, h, std, device),
            knowledge: Param::from_tensor(Tensor::zeros([config.vocab_size, k], device))
                .set_require_grad(false),
        })
        .collect();
    let identity = Tensor::<1, Int>::arange(0..config.vocab_size as i64, device);
    KnowledgeBertEmbeddings {
        word_embeddings: normal_embedding(
            config.vocab_size,
            h,
            std,
            Some(config.pad_token_id),
            device,
        ),
        priors,
        homologous_index: Param::initialized(ParamId::new(), identity),
        concat_embeddings: ConcatEmbeddings {
            cat_fc: normal_linear(config.concat_width(), h, std, device),
            cat_ln: LayerNormConfig::new(h)
                .with_epsilon(CAT_LN_EPS)
                .init(device),
            cat_proj: normal_linear(h, h, std, device),
        },
        position_embeddings: normal_embedding(config.max_position_embeddings, h, std, None, device),
        token_type_embeddings: normal_embedding(config.type_vocab_size, h, std, None, device),
        layer_norm: LayerNormConfig::new(h)
            .with_epsilon(config.layer_norm_eps)
            .init(device),
        dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        use_values: config.use_values,
    }
}

impl KnowledgeBertEmbeddings {
    /// The homolog index on the host, read synchronously (native backends).
    pub fn homolog_ids(&self) -> Vec<i64> {
        homolog_vec(self.homologous_index.val().into_data())
    }

    /// The homolog index on the host, read without blocking: the only way to read a browser's
    /// WebGPU device.
    pub async fn homolog_ids_async(&self) -> Result<Vec<i64>, crate::model::ReadBackError> {
        let data = self.homologous_index.val().into_data_async().await;
        Ok(homolog_vec(data.map_err(crate::model::ReadBackError::new)?))
    }

    /// Token ids used for the knowledge lookup: mouse cells (and cells of species added to the
    /// checkpoint) go through the homolog index; human cells do not (official: `species == 1`).
    ///
    /// # Shapes
    /// - `input_ids`: `[B, L]`, `species`: `[B, 1]` (0 human, 1 mouse, 2.. added) → `[B, L]`
    pub fn knowledge_ids(
        &self,
        input_ids: Tensor<2, Int>,
        species: Option<Tensor<2, Int>>,
    ) -> Tensor<2, Int> {
        let Some(species) = species else {
            return input_ids;
        };
        let [b, l] = input_ids.dims();
        let mapped = self
            .homologous_index
            .val()
            .select(0, input_ids.clone().reshape([b * l]))
            .reshape([b, l]);
        let not_human = species.greater_elem(0).expand([b, l]);
        input_ids.mask_where(not_human, mapped)
    }

    /// The `cat_fc` input, `[word | value | α·prior…]`.
    ///
    /// # Shapes
    /// - returns `[B, L, 5H+1]`
    pub fn concat_input(
        &self,
        input_ids: Tensor<2, Int>,
        values: Tensor<2>,
        species: Option<Tensor<2, Int>>,
        alpha: f32,
    ) -> Tensor<3> {
        let [b, l] = input_ids.dims();
        let mut parts = vec![self.word_embeddings.forward(input_ids.clone())];
        if self.use_values {
            parts.push(values.unsqueeze_dim(2));
        }
        let ids = self.knowledge_ids(input_ids, species).reshape([b * l]);
        for prior in &self.priors {
            let rows = prior.knowledge.val().select(0, ids.clone());
            let e = prior.linear1.forward(rows);
            let h = e.dims()[1];
            parts.push(e.reshape([b, l, h]) * alpha);
        }
        Tensor::cat(parts, 2)
    }

    /// Full embedding forward (before the species CLS is prepended).
    ///
    /// # Shapes
    /// - `input_ids`: `[B, L]`, `values`: `[B, L]`, `species`: `[B, 1]` → `[B, L, H]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        values: Tensor<2>,
        species: Option<Tensor<2, Int>>,
        alpha: f32,
    ) -> Tensor<3> {
        let x = self.concat_input(input_ids, values, species, alpha);
        let x = self
            .concat_embeddings
            .after_fc(self.concat_embeddings.cat_fc.forward(x));
        self.add_positions_and_norm(x)
    }

    /// `LayerNorm(x + token_type[0] + position[0..L])`, then dropout.
    pub fn add_positions_and_norm(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, l, h] = x.dims();
        let pos = self
            .position_embeddings
            .weight
            .val()
            .narrow(0, 0, l)
            .reshape([1, l, h]);
        let tt = self
            .token_type_embeddings
            .weight
            .val()
            .narrow(0, 0, 1)
            .reshape([1, 1, h]);
        super::dropout::forward(&self.dropout, self.layer_norm.forward(x + pos + tt))
    }
}

fn homolog_vec(data: TensorData) -> Vec<i64> {
    data.convert::<i64>()
        .try_into_vec()
        .expect("homolog index reads back as i64")
}
