//! Inference-only folding of the word and prior tables into `cat_fc`.
//!
//! `cat_fc` is linear, so its output splits into a per-gene word part, a per-gene prior part
//! (indexed by the homolog-remapped id and scaled by α), the value column and the bias:
//! `cat_fc(x) = Wword[id] + α·Prior[id'] + v·w_value + b`. Precomputing the two `[V, H]`
//! tables replaces four `[V, K]` gathers and `K×H` matmuls per token, and lets a browser
//! ship `2·V·H` floats instead of `4·V·K`. Exact up to float rounding; training keeps the
//! unfolded path.

use burn::module::Param;
use burn::prelude::*;

use super::embeddings::KnowledgeBertEmbeddings;

/// Folded tables of one embedding module.
#[derive(Module, Debug)]
pub struct FoldedEmbedding {
    /// `word_embeddings · W_fc[word rows]`. `[V, H]`
    pub word_part: Param<Tensor<2>>,
    /// `Σ_X (K_X · A_X + b_X) · W_fc[X rows]`. `[V, H]`
    pub prior_part: Param<Tensor<2>>,
    /// `W_fc[value row]` (zeros when values are off). `[H]`
    pub value_row: Param<Tensor<1>>,
    /// `cat_fc` bias. `[H]`
    pub bias: Param<Tensor<1>>,
}

impl FoldedEmbedding {
    /// Folds an embedding module's tables.
    pub fn fold(emb: &KnowledgeBertEmbeddings) -> Self {
        let w = emb.concat_embeddings.cat_fc.weight.val(); // [in, H]
        let h = w.dims()[1];
        let device = w.device();
        let word = emb
            .word_embeddings
            .weight
            .val()
            .matmul(w.clone().narrow(0, 0, h));
        let mut row = h;
        let value_row = if emb.use_values {
            row += 1;
            w.clone().narrow(0, h, 1).reshape([h])
        } else {
            Tensor::zeros([h], &device)
        };
        let v = word.dims()[0];
        let mut prior = Tensor::<2>::zeros([v, h], &device);
        for p in &emb.priors {
            let projected = p.linear1.forward(p.knowledge.val());
            prior = prior + projected.matmul(w.clone().narrow(0, row, h));
            row += h;
        }
        let bias = emb
            .concat_embeddings
            .cat_fc
            .bias
            .as_ref()
            .map(|b| b.val())
            .unwrap_or_else(|| Tensor::zeros([h], &device));
        let frozen = |t: Tensor<2>| Param::from_tensor(t).set_require_grad(false);
        Self {
            word_part: frozen(word),
            prior_part: frozen(prior),
            value_row: Param::from_tensor(value_row).set_require_grad(false),
            bias: Param::from_tensor(bias).set_require_grad(false),
        }
    }

    /// The embedding forward through the folded tables; same result as
    /// [`KnowledgeBertEmbeddings::forward`] up to rounding.
    ///
    /// # Shapes
    /// - `input_ids`, `values`: `[B, L]`, `species`: `[B, 1]` → `[B, L, H]`
    pub fn forward(
        &self,
        emb: &KnowledgeBertEmbeddings,
        input_ids: Tensor<2, Int>,
        values: Tensor<2>,
        species: Option<Tensor<2, Int>>,
        alpha: f32,
    ) -> Tensor<3> {
        let [b, l] = input_ids.dims();
        let h = self.bias.dims()[0];
        let kid = emb
            .knowledge_ids(input_ids.clone(), species)
            .reshape([b * l]);
        let word = self.word_part.val().select(0, input_ids.reshape([b * l]));
        let prior = self.prior_part.val().select(0, kid) * alpha;
        let value = values.reshape([b * l, 1]) * self.value_row.val().unsqueeze_dim(0);
        let x = (word + prior + value + self.bias.val().unsqueeze_dim(0)).reshape([b, l, h]);
        emb.add_positions_and_norm(emb.concat_embeddings.after_fc(x))
    }
}
