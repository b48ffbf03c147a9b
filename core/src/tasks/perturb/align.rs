//! Comparing a perturbed cell's embeddings with the original's: by gene identity (what a
//! per-gene score means) or by the official perturber's position convention (to reproduce its
//! published numbers and its output dict, labelling quirk included; spec §11, fixture §6.5).

use std::collections::HashMap;

use super::edit::PerturbedCell;
use crate::cells::TokenizedCell;

/// How per-gene cosines are paired and labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alignment {
    /// Each remaining gene is compared with the same gene in the original cell, and labelled
    /// with itself. Only real genes; the perturbed genes themselves are reported apart.
    #[default]
    Identity,
    /// The official `InSilicoPerturber`: perturbed row k (padding included) is compared with the
    /// original with the deleted rows removed, and labelled with the *original* gene at row k,
    /// which is off by one after the deleted position. Padding rows are labelled 0.
    Official,
}

/// `torch.nn.CosineSimilarity(eps = 1e-8)`: `x·y / sqrt(max(‖x‖²‖y‖², eps²))`, in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    (dot / (na * nb).max(1e-16).sqrt()) as f32
}

/// One cell's last-layer rows, host side: `rows` holds `(cls + seq) × hidden` floats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a> {
    /// Row-major `[cls + seq, hidden]`.
    pub data: &'a [f32],
    /// Hidden width.
    pub hidden: usize,
    /// 1 when row 0 is the species CLS, else 0.
    pub cls: usize,
    /// Number of gene rows computed (padding included).
    pub seq: usize,
}

impl Rows<'_> {
    /// Gene row `j` (`None` beyond the computed rows: the official code pads with zeros there).
    fn gene(&self, j: usize) -> Option<&[f32]> {
        (j < self.seq).then(|| &self.data[(self.cls + j) * self.hidden..][..self.hidden])
    }

    /// Mean of the first `n` gene rows.
    fn mean(&self, n: usize) -> Vec<f32> {
        let mut m = vec![0f64; self.hidden];
        for j in 0..n.min(self.seq) {
            for (acc, &v) in m.iter_mut().zip(self.gene(j).expect("in range")) {
                *acc += f64::from(v);
            }
        }
        m.iter().map(|v| (v / n.max(1) as f64) as f32).collect()
    }
}

/// The effect of one perturbation on one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRecord {
    /// Index of the cell in the input set.
    pub cell: usize,
    /// Index of the perturbation in the list given.
    pub perturbation: usize,
    /// The perturbed token used as the official dict key (the first listed gene the cell holds).
    pub token: u32,
    /// Original rank positions of the perturbed genes.
    pub positions: Vec<usize>,
    /// Over-expression: their positions after re-ranking.
    pub new_positions: Vec<usize>,
    /// Cosine between the original and perturbed CLS outputs (`None` without a CLS token).
    pub cls_cos: Option<f32>,
    /// Cosine between the means of the real gene rows, before and after.
    pub mean_pool_cos: f32,
    /// Mean of the per-gene cosines: over the compared real genes (identity), or over every
    /// perturbed row, padding included (official: the `"cell_emb"` entry).
    pub gene_score: f32,
    /// Per-gene cosines as `(label token, cosine)`; label 0 marks padding rows (official only).
    pub affected: Vec<(u32, f32)>,
    /// Over-expression with identity alignment: cosine of each perturbed gene with itself.
    pub self_cos: Vec<f32>,
}

/// Builds the record of one perturbed cell from the original's and the variant's rows.
///
/// `perturbed_rows` is how many rows of the variant count in the official mean (its padded
/// length: the original's minus the deleted rows, as the official code never re-pads).
#[allow(clippy::too_many_arguments)]
pub(crate) fn compare(
    original: &TokenizedCell,
    variant: &PerturbedCell,
    orig: Rows<'_>,
    pert: Rows<'_>,
    perturbed_rows: usize,
    alignment: Alignment,
    cell: usize,
    perturbation: usize,
    token: u32,
) -> CellRecord {
    let hidden = orig.hidden;
    let cls_cos = (orig.cls == 1).then(|| cosine(&orig.data[..hidden], &pert.data[..hidden]));
    let mean_pool_cos = cosine(&orig.mean(original.len()), &pert.mean(variant.cell.len()));
    let mut self_cos = Vec::new();
    let affected: Vec<(u32, f32)> = match alignment {
        Alignment::Identity => variant
            .source
            .iter()
            .enumerate()
            .filter_map(|(j, &src)| {
                let c = cosine(pert.gene(j)?, orig.gene(src)?);
                if variant.positions.binary_search(&src).is_ok() {
                    self_cos.push(c);
                    None
                } else {
                    Some((original.input_ids[src], c))
                }
            })
            .collect(),
        Alignment::Official => {
            // The original's row list (padding included) with the deleted rows removed.
            let mut comparison =
                (0..orig.seq).filter(|j| variant.positions.binary_search(j).is_err());
            (0..perturbed_rows.min(pert.seq))
                .map(|k| {
                    let label = original.input_ids.get(k).copied().unwrap_or(0);
                    let c = match comparison.next().and_then(|j| orig.gene(j)) {
                        Some(o) => cosine(pert.gene(k).expect("in range"), o),
                        None => 0.0,
                    };
                    (label, c)
                })
                .collect()
        }
    };
    let gene_score = if affected.is_empty() {
        1.0
    } else {
        (affected.iter().map(|(_, c)| f64::from(*c)).sum::<f64>() / affected.len() as f64) as f32
    };
    CellRecord {
        cell,
        perturbation,
        token,
        positions: variant.positions.clone(),
        new_positions: variant.new_positions.clone(),
        cls_cos,
        mean_pool_cos,
        gene_score,
        affected,
        self_cos,
    }
}

/// The key of an official result entry: `(perturbed token, affected token or "cell_emb")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfficialKey {
    /// The cell-level score.
    CellEmb,
    /// An affected-gene label (0 collects every padding row).
    Token(u32),
}

/// One entry of the official `cos_sims_dict`, values in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct OfficialEntry {
    /// The perturbed token.
    pub perturbed: u32,
    /// What the values describe.
    pub affected: OfficialKey,
    /// Cosines, one per occurrence.
    pub values: Vec<f32>,
}

/// The official `cos_sims_dict` (a `defaultdict(list)`), filled record by record in the order it
/// inserts keys: per cell, `(token, "cell_emb")` then each row label.
#[derive(Debug, Clone, Default)]
pub struct OfficialDict {
    entries: Vec<OfficialEntry>,
    at: HashMap<(u32, OfficialKey), usize>,
}

impl OfficialDict {
    fn push(&mut self, perturbed: u32, affected: OfficialKey, v: f32) {
        let entries = &mut self.entries;
        let i = *self.at.entry((perturbed, affected)).or_insert_with(|| {
            entries.push(OfficialEntry {
                perturbed,
                affected,
                values: Vec::new(),
            });
            entries.len() - 1
        });
        entries[i].values.push(v);
    }

    /// Adds one record (made with [`Alignment::Official`]).
    pub fn add(&mut self, r: &CellRecord) {
        self.push(r.token, OfficialKey::CellEmb, r.gene_score);
        for &(label, c) in &r.affected {
            self.push(r.token, OfficialKey::Token(label), c);
        }
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> &[OfficialEntry] {
        &self.entries
    }

    /// The dict as the fixture's `perturbation_official.json` lists it:
    /// `[[perturbed, affected id or "cell_emb", [values]], ...]`.
    pub fn to_json(&self) -> serde_json::Value {
        self.entries
            .iter()
            .map(|e| {
                let key = match e.affected {
                    OfficialKey::CellEmb => serde_json::json!("cell_emb"),
                    OfficialKey::Token(t) => serde_json::json!(t),
                };
                serde_json::json!([e.perturbed, key, e.values])
            })
            .collect()
    }
}

/// Rebuilds the official dict from records (see [`OfficialDict`]).
pub fn official_entries<'a>(
    records: impl IntoIterator<Item = &'a CellRecord>,
) -> Vec<OfficialEntry> {
    let mut d = OfficialDict::default();
    records.into_iter().for_each(|r| d.add(r));
    d.entries
}

/// Running per-gene statistics of one perturbation's affected genes.
#[derive(Debug, Clone, Default)]
pub struct AffectedStats {
    sums: HashMap<u32, (f64, f64, usize)>,
}

/// One affected gene of a perturbation, over the cells that hold both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffectedGene {
    /// Label token (0 = padding rows, official alignment only).
    pub token: u32,
    /// Number of cosines averaged.
    pub count: usize,
    /// Mean cosine (low = strongly affected: the official GRN read-out ranks ascending).
    pub mean_cos: f64,
    /// Smallest cosine seen.
    pub min_cos: f64,
}

impl AffectedStats {
    /// Adds one record's per-gene cosines.
    pub fn add(&mut self, record: &CellRecord) {
        for &(t, c) in &record.affected {
            let e = self.sums.entry(t).or_insert((0.0, f64::INFINITY, 0));
            e.0 += f64::from(c);
            e.1 = e.1.min(f64::from(c));
            e.2 += 1;
        }
    }

    /// The genes, most affected (lowest mean cosine) first; ties by token id.
    pub fn ranked(&self) -> Vec<AffectedGene> {
        let mut v: Vec<AffectedGene> = self
            .sums
            .iter()
            .map(|(&token, &(sum, min, count))| AffectedGene {
                token,
                count,
                mean_cos: sum / count as f64,
                min_cos: min,
            })
            .collect();
        v.sort_by(|a, b| {
            a.mean_cos
                .total_cmp(&b.mean_cos)
                .then(a.token.cmp(&b.token))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::Species;
    use crate::tasks::perturb::edit::{PerturbKind, perturb_cell};

    #[test]
    fn cosine_matches_torch_conventions() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    /// Each gene has its own 2-D direction and keeps it after the deletion, so a cosine is 1
    /// exactly when the rows compared hold the same gene (or both hold padding).
    #[test]
    fn identity_pairs_genes_official_pairs_rows() {
        let c = TokenizedCell {
            input_ids: vec![7, 8, 9],
            values: vec![3.0, 2.0, 1.0],
            species: Species::Human,
            label: None,
        };
        let v = perturb_cell(&c, &[8], PerturbKind::Delete).unwrap();
        // Original rows (padded to 4): genes 7, 8, 9, pad; 2-D so that cosines differ.
        let orig = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0];
        // Perturbed rows (padded to 3): genes 7, 9, pad.
        let pert = [1.0, 0.0, 1.0, 1.0, -1.0, 0.0];
        fn rows(data: &[f32], seq: usize) -> Rows<'_> {
            Rows {
                data,
                hidden: 2,
                cls: 0,
                seq,
            }
        }
        let id = compare(
            &c,
            &v,
            rows(&orig, 4),
            rows(&pert, 3),
            3,
            Alignment::Identity,
            0,
            0,
            8,
        );
        assert_eq!(id.affected.len(), 2);
        assert_eq!(id.affected[0].0, 7);
        assert_eq!(id.affected[1].0, 9);
        assert!((id.affected[1].1 - 1.0).abs() < 1e-6);
        let off = compare(
            &c,
            &v,
            rows(&orig, 4),
            rows(&pert, 3),
            3,
            Alignment::Official,
            0,
            0,
            8,
        );
        // Row 1 holds gene 9 and is compared with gene 9, but labelled 8 (the deleted gene).
        let labels: Vec<u32> = off.affected.iter().map(|a| a.0).collect();
        assert_eq!(labels, vec![7, 8, 9]);
        assert!((off.affected[1].1 - 1.0).abs() < 1e-6);
        // Row 2 (padding) is labelled with gene 9 and compared with the original padding row.
        assert!((off.affected[2].1 - 1.0).abs() < 1e-6);
        assert!((off.gene_score - 1.0).abs() < 1e-6);
        let e = official_entries([&off]);
        assert_eq!(e[0].affected, OfficialKey::CellEmb);
        assert_eq!(e.len(), 4);
    }
}
