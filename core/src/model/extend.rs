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

/// Why a species cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum AddSpeciesError {
    /// The model has no species CLS table.
    #[error(
        "the model has no species CLS token (use_cls_token is false), so it has no species to add to"
    )]
    NoClsToken,
    /// The name is taken.
    #[error("the model already has a species named {0:?}")]
    Exists(String),
    /// No code left.
    #[error("the model already has the most species a CLS table may hold ({0})")]
    Full(usize),
    /// Not a usable name.
    #[error("species name {0:?}: use lower-case letters, digits, '_' or '-' (e.g. rat, macaque)")]
    BadName(String),
}

/// Adds a species: a new row at the end of the CLS table, the mean of the existing rows (the
/// model starts from "an average species" and learns the new one on its cells), and its name
/// in the config. Returns the checkpoint and the new species code.
pub fn add_species(mut ck: Checkpoint, name: &str) -> Result<(Checkpoint, u8), AddSpeciesError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let mut names = ck.config.species_names();
    if names.iter().any(|n| n == name) {
        return Err(AddSpeciesError::Exists(name.into()));
    }
    // Names that read as a code (`3`, `species3`) would be ambiguous on the command line.
    if !ok || crate::cells::Species::parse(name).is_some() {
        return Err(AddSpeciesError::BadName(name.into()));
    }
    let max = usize::from(crate::cells::Species::MAX_CODE) + 1;
    if names.len() >= max {
        return Err(AddSpeciesError::Full(max));
    }
    let bert = match &mut ck.model {
        LoadedModel::MaskedLm(m, _) => &mut m.bert,
        LoadedModel::Classifier(c) => &mut c.bert,
    };
    let cls = bert
        .cls_embedding
        .as_mut()
        .ok_or(AddSpeciesError::NoClsToken)?;
    let old = cls.weight.val();
    let mean = old.clone().mean_dim(0);
    cls.weight = Param::initialized(ParamId::new(), Tensor::cat(vec![old, mean], 0));
    let code = names.len() as u8;
    names.push(name.to_string());
    ck.config.genecompass_species = Some(names);
    Ok((ck, code))
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
