//! Inference-only folding of the word and prior tables into `cat_fc`.
//!
//! `cat_fc` is linear, so its output splits into a per-gene word part, a per-gene prior part
//! (indexed by the homolog-remapped id and scaled by α), the value column and the bias:
//! `cat_fc(x) = Wword[id] + α·Prior[id'] + v·w_value + b`. Precomputing the two `[V, H]`
//! tables replaces four `[V, K]` gathers and `K×H` matmuls per token, and lets a browser
//! ship `2·V·H` floats instead of `4·V·K`. Exact up to float rounding; training keeps the
//! unfolded path.

use burn::module::{Param, ParamId};
use burn::prelude::*;

use super::embeddings::KnowledgeBertEmbeddings;

/// Folded tables of one embedding module.
#[derive(Module, Debug)]
pub struct FoldedEmbedding {
    /// `word_embeddings · W_fc[word rows]`. `[V, H]`, or `[rows, H]` (see `word_index`)
    pub word_part: Param<Tensor<2>>,
    /// `Σ_X (K_X · A_X + b_X) · W_fc[X rows]`. `[V, H]`, or `[rows, H]` (see `prior_index`)
    pub prior_part: Param<Tensor<2>>,
    /// `W_fc[value row]` (zeros when values are off). `[H]`
    pub value_row: Param<Tensor<1>>,
    /// `cat_fc` bias. `[H]`
    pub bias: Param<Tensor<1>>,
    /// Token id → row of `word_part` when only some rows were folded. `[V]`
    pub word_index: Option<Param<Tensor<1, Int>>>,
    /// Knowledge id → row of `prior_part` when only some rows were folded. `[V]`
    pub prior_index: Option<Param<Tensor<1, Int>>>,
}

impl FoldedEmbedding {
    /// Folds an embedding module's tables over the whole vocabulary (what a browser caches).
    pub fn fold(emb: &KnowledgeBertEmbeddings) -> Self {
        Self::fold_rows(emb, None, None)
    }

    /// Folds only the rows that tokens `word_ids` can reach, where `remapped_ids` are the
    /// ids seen in cells whose priors go through the homolog index (non-human cells).
    ///
    /// Folding the whole vocabulary costs `2·V·(4·K·H + 5·H²)` FLOP (113 GFLOP on a Small
    /// model), more than embedding a few hundred cells; a file's cells use far fewer genes.
    /// Looking up an id outside the folded rows is a logic error: it reads row 0.
    pub fn fold_for_ids(
        emb: &KnowledgeBertEmbeddings,
        word_ids: impl IntoIterator<Item = u32>,
        remapped_ids: impl IntoIterator<Item = u32>,
    ) -> Self {
        Self::fold_for_ids_with(emb, &emb.homolog_ids(), word_ids, remapped_ids)
    }

    /// [`FoldedEmbedding::fold_for_ids`] with the homolog index already on the host
    /// ([`KnowledgeBertEmbeddings::homolog_ids_async`]): a browser's WebGPU device cannot be
    /// read synchronously.
    pub fn fold_for_ids_with(
        emb: &KnowledgeBertEmbeddings,
        homolog: &[i64],
        word_ids: impl IntoIterator<Item = u32>,
        remapped_ids: impl IntoIterator<Item = u32>,
    ) -> Self {
        let v = emb.word_embeddings.weight.dims()[0];
        // Padding and mask ids are always reachable (batches pad with them).
        let mut words = vec![false; v];
        let mut priors = vec![false; v];
        for id in [0usize, 1].into_iter().filter(|&i| i < v) {
            words[id] = true;
            priors[id] = true;
        }
        for id in word_ids {
            words[id as usize] = true;
            priors[id as usize] = true;
        }
        for id in remapped_ids {
            priors[homolog[id as usize] as usize] = true;
        }
        let device = emb.word_embeddings.weight.device();
        let rows = |keep: &[bool]| {
            let (mut index, mut kept) = (vec![0i64; v], Vec::new());
            for (id, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                index[id] = kept.len() as i64;
                kept.push(id as i64);
            }
            let n = kept.len();
            (
                Tensor::<1, Int>::from_data(TensorData::new(index, [v]), &device),
                Tensor::<1, Int>::from_data(TensorData::new(kept, [n]), &device),
            )
        };
        Self::fold_rows(emb, Some(rows(&words)), Some(rows(&priors)))
    }

    /// `rows`: `(id → folded row [V], folded row → id)` for the word and the prior tables,
    /// `None` for all `V` rows.
    fn fold_rows(
        emb: &KnowledgeBertEmbeddings,
        word_rows: Option<(Tensor<1, Int>, Tensor<1, Int>)>,
        prior_rows: Option<(Tensor<1, Int>, Tensor<1, Int>)>,
    ) -> Self {
        let w = emb.concat_embeddings.cat_fc.weight.val(); // [in, H]
        let h = w.dims()[1];
        let device = w.device();
        let take = |t: Tensor<2>, rows: &Option<(Tensor<1, Int>, Tensor<1, Int>)>| match rows {
            Some((_, ids)) => t.select(0, ids.clone()),
            None => t,
        };
        let word =
            take(emb.word_embeddings.weight.val(), &word_rows).matmul(w.clone().narrow(0, 0, h));
        let mut row = h;
        let value_row = if emb.use_values {
            row += 1;
            w.clone().narrow(0, h, 1).reshape([h])
        } else {
            Tensor::zeros([h], &device)
        };
        let n = match &prior_rows {
            Some((_, ids)) => ids.dims()[0],
            None => word.dims()[0],
        };
        let mut prior = Tensor::<2>::zeros([n, h], &device);
        for p in &emb.priors {
            let projected = p.linear1.forward(take(p.knowledge.val(), &prior_rows));
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
        let index = |rows: Option<(Tensor<1, Int>, Tensor<1, Int>)>| {
            rows.map(|(index, _)| Param::initialized(ParamId::new(), index))
        };
        Self {
            word_part: frozen(word),
            prior_part: frozen(prior),
            value_row: Param::from_tensor(value_row).set_require_grad(false),
            bias: Param::from_tensor(bias).set_require_grad(false),
            word_index: index(word_rows),
            prior_index: index(prior_rows),
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
        let row = |index: &Option<Param<Tensor<1, Int>>>, ids: Tensor<1, Int>| match index {
            Some(index) => index.val().select(0, ids),
            None => ids,
        };
        let word = self
            .word_part
            .val()
            .select(0, row(&self.word_index, input_ids.reshape([b * l])));
        let prior = self.prior_part.val().select(0, row(&self.prior_index, kid)) * alpha;
        let value = values.reshape([b * l, 1]) * self.value_row.val().unsqueeze_dim(0);
        let x = (word + prior + value + self.bias.val().unsqueeze_dim(0)).reshape([b, l, h]);
        emb.add_positions_and_norm(emb.concat_embeddings.after_fc(x))
    }
}
