//! Checks that prior embeddings reflect the evidence they were built from: linked gene pairs
//! must be nearer (cosine) than random pairs, and co-expression neighbours must agree with the
//! measured correlation. Used by `genecompass-train priors evaluate` and the real-data tests.

use serde::Serialize;

use super::{GeneVectors, SplitMix64, cosine};

/// Gene pairs as row indices.
pub type Pairs = Vec<(u32, u32)>;

/// Cosine of linked pairs vs random pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairSeparation {
    /// Linked pairs scored.
    pub pairs: usize,
    /// Random pairs scored.
    pub random_pairs: usize,
    /// Mean cosine of linked pairs.
    pub mean_cosine_pairs: f64,
    /// Mean cosine of random pairs.
    pub mean_cosine_random: f64,
    /// ROC AUC: probability that a linked pair is nearer than a random pair (0.5 = no signal).
    pub auc: f64,
}

/// Scores `pairs` (row indices of `v`) against `n_random` seeded random pairs.
///
/// Random pairs join the first gene of one linked pair to the second gene of another, so they
/// have the same gene (and degree) distribution as the linked pairs: hub genes or rows that were
/// never trained cannot make the embedding look better than it is.
pub fn pair_separation(
    v: &GeneVectors,
    pairs: &[(u32, u32)],
    n_random: usize,
    seed: u64,
) -> PairSeparation {
    let pos: Vec<f64> = pairs
        .iter()
        .map(|&(a, b)| cosine(v.row(a as usize), v.row(b as usize)) as f64)
        .collect();
    let mut rng = SplitMix64::stream(seed, 5);
    let mut neg = Vec::with_capacity(n_random);
    let mut tries = 0;
    while neg.len() < n_random && !pairs.is_empty() && tries < 10 * n_random {
        tries += 1;
        let a = pairs[rng.below(pairs.len())].0 as usize;
        let b = pairs[rng.below(pairs.len())].1 as usize;
        if a != b {
            neg.push(cosine(v.row(a), v.row(b)) as f64);
        }
    }
    PairSeparation {
        pairs: pos.len(),
        random_pairs: neg.len(),
        mean_cosine_pairs: mean(&pos),
        mean_cosine_random: mean(&neg),
        auc: auc(&pos, &neg),
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Mann–Whitney AUC of `pos` over `neg` (ties count one half).
pub fn auc(pos: &[f64], neg: &[f64]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&x| (x, true))
        .chain(neg.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of (mid)ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Spearman rank correlation of two equally long samples.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j < idx.len() && v[idx[j]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..j] {
                r[k] = (i + j - 1) as f64 / 2.0;
            }
            i = j;
        }
        r
    }
    pearson(&ranks(x), &ranks(y))
}

/// Pearson correlation (NaN when either side is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx.sqrt() * syy.sqrt())
}

/// Splits `pairs` into (train, held out) with about `fraction` held out (seeded), so that the
/// check measures generalisation to unseen links rather than memorised ones.
pub fn hold_out(pairs: &[(u32, u32)], fraction: f64, seed: u64) -> (Pairs, Pairs) {
    let mut rng = SplitMix64::stream(seed, 6);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for &p in pairs {
        if rng.next_f64() < fraction {
            test.push(p);
        } else {
            train.push(p);
        }
    }
    (train, test)
}
