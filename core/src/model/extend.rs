//! Vocabulary extension: new genes appended to an existing model, every existing weight kept,
//! so a team can add the genes of its panel instead of retraining.
//!
//! Each new gene gets a row at the end of every `[V, ·]` table: a seeded N(0, σ²) word
//! embedding (σ = the config's `initializer_range`, as a fresh model would), its prior-knowledge
//! vectors where given (zeros otherwise, like the official tables' special rows), a homolog
//! index entry, and a zero bias in the masked-LM head. Existing token ids, and therefore every
//! output on cells that hold none of the new genes, are unchanged.

use burn::module::{Param, ParamId};
use burn::prelude::*;

use super::BertModel;
use crate::checkpoint::{Checkpoint, LoadedModel};
use crate::priors::SplitMix64;

/// What is appended for the new genes (`n` of them).
#[derive(Debug, Clone)]
pub struct VocabExtension {
    /// Number of new genes.
    pub n: usize,
    /// Per prior table (in [`crate::model::PriorKind::ALL`] order), `n × K` values; a gene
    /// without a vector has zeros.
    pub knowledge: Vec<Vec<f32>>,
    /// Homolog-index entry of each new gene (its own new id, or the id of its human ortholog).
    pub homologous_index: Vec<i64>,
    /// Seed of the word-embedding initialisation.
    pub seed: u64,
}

/// Seeded standard-normal draws (Box–Muller over SplitMix64).
fn normals(n: usize, std: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut u = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos() * std) as f32
        })
        .collect()
}

fn append_rows(old: Tensor<2>, rows: Vec<f32>, n: usize) -> Tensor<2> {
    let [_, w] = old.dims();
    let device = old.device();
    let new = Tensor::<1>::from_floats(rows.as_slice(), &device).reshape([n, w]);
    Tensor::cat(vec![old, new], 0)
}

/// Extends the encoder's tables. `init_std` is the word-embedding initialisation σ.
pub fn extend_bert(mut bert: BertModel, ext: &VocabExtension, init_std: f64) -> BertModel {
    let n = ext.n;
    if n == 0 {
        return bert;
    }
    let e = &mut bert.embeddings;
    let [_, h] = e.word_embeddings.weight.dims();
    let word = append_rows(
        e.word_embeddings.weight.val(),
        normals(n * h, init_std, ext.seed),
        n,
    );
    e.word_embeddings.weight = Param::initialized(ParamId::new(), word);
    for (p, rows) in e.priors.iter_mut().zip(&ext.knowledge) {
        let t = append_rows(p.knowledge.val(), rows.clone(), n);
        p.knowledge = Param::from_tensor(t).set_require_grad(false);
    }
    let device = e.homologous_index.val().device();
    let extra = Tensor::<1, Int>::from_ints(ext.homologous_index.as_slice(), &device);
    let idx = Tensor::cat(vec![e.homologous_index.val(), extra], 0);
    e.homologous_index = Param::initialized(ParamId::new(), idx);
    bert
}

/// Extends a whole checkpoint (encoder, and the masked-LM gene-id bias) and its config.
pub fn extend_checkpoint(mut ck: Checkpoint, ext: &VocabExtension) -> Checkpoint {
    let std = ck.config.initializer_range;
    ck.model = match ck.model {
        LoadedModel::MaskedLm(mut m, w) => {
            m.bert = extend_bert(m.bert, ext, std);
            let old = m.cls.bias.val();
            let zeros = Tensor::<1>::zeros([ext.n], &old.device());
            m.cls.bias = Param::initialized(ParamId::new(), Tensor::cat(vec![old, zeros], 0));
            LoadedModel::MaskedLm(m, w)
        }
        LoadedModel::Classifier(mut c) => {
            c.bert = extend_bert(c.bert, ext, std);
            LoadedModel::Classifier(c)
        }
    };
    ck.config.vocab_size += ext.n;
    ck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_are_seeded_and_scaled() {
        let a = normals(20_000, 0.02, 7);
        assert_eq!(a, normals(20_000, 0.02, 7));
        assert_ne!(a, normals(20_000, 0.02, 8));
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len() as f64;
        let var = a
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "{}", var.sqrt());
    }
}
