//! Skip-gram with negative sampling over gene pairs: the gene2vec recipe the GeneCompass paper
//! uses for the co-expression and gene-family priors (spec §5.2).
//!
//! gene2vec trains word2vec on "sentences" of two genes, one per pair, so each pair `(a, b)` gives
//! the two skip-gram updates `a → b` and `b → a`. This is word2vec's skip-gram update written
//! out in plain Rust: input vectors initialised uniform in `±0.5/dim`, output vectors zero,
//! noise distribution ∝ degree^0.75, learning rate decayed linearly, pairs reshuffled each epoch.
//!
//! Single-threaded on purpose: word2vec's Hogwild threads make results depend on scheduling,
//! while builds here must be reproducible for a seed (recorded in `priors.json`). Genes in no
//! pair keep their seeded random initial vector, which is what the official `*_random.pickle`
//! names suggest for genes without evidence.

use serde::{Deserialize, Serialize};

use super::SplitMix64;

/// Training settings (recorded in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkipGramConfig {
    /// Vector width K (768 in the official files).
    pub dim: usize,
    /// Passes over the pairs.
    pub epochs: usize,
    /// Negative samples per update (word2vec default 5).
    pub negatives: usize,
    /// Initial learning rate (word2vec skip-gram default 0.025).
    pub learning_rate: f32,
    /// Seed for initialisation, shuffling and negative sampling.
    pub seed: u64,
    /// Which vectors are returned.
    #[serde(default)]
    pub vectors: VectorKind,
}

/// The vectors [`train`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorKind {
    /// word2vec's input vectors (what gene2vec publishes). Their cosine reflects shared
    /// neighbours (second-order proximity): right for cliques such as gene families.
    #[default]
    Input,
    /// Input + output vectors. The sum also carries the trained input·output score of linked
    /// genes (first-order proximity), so a TF is near its targets in hub-and-spoke networks.
    Sum,
}

impl Default for SkipGramConfig {
    fn default() -> Self {
        Self {
            dim: 768,
            epochs: 5,
            negatives: 5,
            learning_rate: 0.025,
            seed: 42,
            vectors: VectorKind::Input,
        }
    }
}

/// Progress callback: `(updates done, total updates)`.
pub type SgnsProgress<'a> = &'a mut dyn FnMut(u64, u64);

/// Noise sampler: a table where node `i` fills a share ∝ `degree_i^0.75` (word2vec's unigram table).
struct NoiseTable {
    table: Vec<u32>,
}

impl NoiseTable {
    fn new(degree: &[u64]) -> Self {
        let weights: Vec<f64> = degree.iter().map(|&d| (d as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum();
        let size = (degree.len() * 20).clamp(1 << 20, 1 << 26);
        let mut table = Vec::with_capacity(size);
        if total > 0.0 {
            let mut cum = 0.0;
            for (i, w) in weights.iter().enumerate() {
                cum += w / total;
                let upto = ((cum * size as f64).round() as usize).min(size);
                while table.len() < upto {
                    table.push(i as u32);
                }
            }
        }
        Self { table }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u32 {
        self.table[rng.below(self.table.len())]
    }
}

/// Trains vectors for nodes `0..n_nodes` from undirected `pairs`; returns row-major `[n_nodes, dim]`.
///
/// A pair listed twice counts twice (pairs found in several datasets weigh more, as when
/// gene2vec concatenates per-dataset pair lists). Self-pairs are skipped.
pub fn train(
    n_nodes: usize,
    pairs: &[(u32, u32)],
    cfg: &SkipGramConfig,
    progress: SgnsProgress<'_>,
) -> Vec<f32> {
    let dim = cfg.dim;
    let mut init_rng = SplitMix64::stream(cfg.seed, 1);
    let mut syn0: Vec<f32> = (0..n_nodes * dim)
        .map(|_| ((init_rng.next_f64() - 0.5) / dim as f64) as f32)
        .collect();
    let pairs: Vec<(u32, u32)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| a != b && (*a as usize) < n_nodes && (*b as usize) < n_nodes)
        .collect();
    if pairs.is_empty() || n_nodes < 2 {
        return syn0;
    }
    let mut syn1 = vec![0f32; n_nodes * dim];
    let mut degree = vec![0u64; n_nodes];
    for &(a, b) in &pairs {
        degree[a as usize] += 1;
        degree[b as usize] += 1;
    }
    let noise = NoiseTable::new(&degree);
    let mut rng = SplitMix64::stream(cfg.seed, 2);
    let mut order: Vec<u32> = (0..pairs.len() as u32).collect();
    let total = (pairs.len() * 2 * cfg.epochs) as u64;
    let mut done = 0u64;
    let lr0 = cfg.learning_rate;
    let lr_min = lr0 * 1e-4;
    let mut neu1e = vec![0f32; dim];
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &p in &order {
            let (a, b) = pairs[p as usize];
            for (center, context) in [(a, b), (b, a)] {
                let lr = (lr0 * (1.0 - done as f32 / total as f32)).max(lr_min);
                update(
                    &mut syn0,
                    &mut syn1,
                    &mut neu1e,
                    dim,
                    center as usize,
                    context,
                    cfg.negatives,
                    lr,
                    &noise,
                    &mut rng,
                );
                done += 1;
            }
            if done % 65_536 < 2 {
                progress(done, total);
            }
        }
    }
    progress(total, total);
    if cfg.vectors == VectorKind::Sum {
        syn0.iter_mut().zip(&syn1).for_each(|(a, b)| *a += b);
    }
    syn0
}

/// One skip-gram step: input vector of `center` against `context` (label 1) and noise (label 0).
#[allow(clippy::too_many_arguments)]
fn update(
    syn0: &mut [f32],
    syn1: &mut [f32],
    neu1e: &mut [f32],
    dim: usize,
    center: usize,
    context: u32,
    negatives: usize,
    lr: f32,
    noise: &NoiseTable,
    rng: &mut SplitMix64,
) {
    neu1e.iter_mut().for_each(|x| *x = 0.0);
    let l1 = center * dim;
    for d in 0..=negatives {
        let (target, label) = if d == 0 {
            (context, 1.0f32)
        } else {
            let t = noise.sample(rng);
            if t == context {
                continue;
            }
            (t, 0.0)
        };
        let l2 = target as usize * dim;
        let v0 = &syn0[l1..l1 + dim];
        let v1 = &mut syn1[l2..l2 + dim];
        let f: f32 = v0.iter().zip(v1.iter()).map(|(x, y)| x * y).sum();
        // word2vec clips the sigmoid at ±6 (MAX_EXP): no gradient beyond.
        let g = if f > 6.0 {
            label - 1.0
        } else if f < -6.0 {
            label
        } else {
            label - 1.0 / (1.0 + (-f).exp())
        } * lr;
        for ((e, y), x) in neu1e.iter_mut().zip(v1.iter_mut()).zip(v0) {
            *e += g * *y;
            *y += g * x;
        }
    }
    for (x, e) in syn0[l1..l1 + dim].iter_mut().zip(neu1e.iter()) {
        *x += e;
    }
}
