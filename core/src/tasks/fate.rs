//! Cell-fate factor search: which genes, over-expressed (or deleted) in silico in source cells,
//! move their embeddings toward a target population?
//!
//! The target population is summarised by its centroid (mean cell embedding). For each
//! candidate gene, every source cell is edited and embedded again; the gene's effect is the
//! gain in cosine to the centroid over the unperturbed cell, averaged over the cells edited,
//! with its spread, a standardised effect (mean / sd) and the share of cells that moved closer.
//!
//! Over-expressing a gene the cell does not express inserts it in front, like the official
//! factor of 10 000 does to an expressed gene: its value is the cell's largest value × factor,
//! and a cell already at `max_len` genes drops its last one. Deleting needs the gene present.

use burn::prelude::*;
use thiserror::Error;

use super::infer::{InferOptions, embed_cells};
use super::perturb::{PerturbKind, cosine, perturb_cell};
use crate::cells::{CellSet, TokenizedCell};
use crate::model::BertModel;

/// Which cell vector stands for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CellVector {
    /// The species CLS output (what a fine-tuned classifier pools).
    #[default]
    Cls,
    /// The mean of the real gene rows.
    Mean,
}

/// Settings of a search.
#[derive(Debug, Clone, Copy)]
pub struct FateOptions {
    /// Batching and forward conventions.
    pub infer: InferOptions,
    /// Over-express (inserting absent genes) or delete.
    pub kind: PerturbKind,
    /// Which vector to compare.
    pub vector: CellVector,
    /// Longest cell allowed after an insertion (the model's position limit).
    pub max_len: usize,
}

/// Errors of a search request.
#[derive(Debug, Error, PartialEq)]
pub enum FateError {
    /// An empty population.
    #[error(
        "the {which} population has no cells; check the label values (and that the cells carry labels)"
    )]
    EmptyPopulation {
        /// "source" or "target".
        which: &'static str,
    },
    /// No candidate.
    #[error("no candidate genes to test")]
    NoCandidates,
    /// A bad factor.
    #[error("over-expression factor {factor} must be finite and > 0")]
    BadFactor {
        /// The factor given.
        factor: f32,
    },
    /// A model without CLS asked for CLS vectors.
    #[error("the model has no species CLS token: use the mean-of-genes vector")]
    NoCls,
}

/// One candidate's effect.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FateEffect {
    /// The gene's token.
    pub token: u32,
    /// Source cells edited.
    pub cells: usize,
    /// Of those, cells that did not express the gene (over-expression inserted it).
    pub inserted: usize,
    /// Mean gain in cosine to the target centroid (after − before).
    pub mean_gain: f64,
    /// Standard deviation of the gain over the cells (0 for one cell).
    pub sd_gain: f64,
    /// mean_gain / sd_gain (0 when sd is 0): how consistently the gene moves cells.
    pub standardised: f64,
    /// Share of edited cells that moved closer to the target.
    pub frac_closer: f64,
    /// Mean cosine to the centroid after the edit.
    pub mean_cos_after: f64,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FateReport {
    /// Mean cosine of the unperturbed source cells to the target centroid (the starting point).
    pub source_cos: f64,
    /// Mean cosine of the target cells to their own centroid (where "arrived" is).
    pub target_cos: f64,
    /// Candidates, largest mean gain first (ties by token); genes that edited no cell are left
    /// out.
    pub effects: Vec<FateEffect>,
    /// Forward passes of edited cells.
    pub variants: usize,
}

fn vectors(
    bert: &BertModel,
    cells: &CellSet,
    options: &FateOptions,
    device: &Device,
) -> (usize, Vec<f32>) {
    // CLS vectors need only the CLS row of the last layer.
    let infer = InferOptions {
        mean_embedding: options.vector == CellVector::Mean,
        ..options.infer
    };
    let e = embed_cells(bert, cells, &infer, device, |_| {});
    let v = match options.vector {
        CellVector::Cls => e.cls,
        CellVector::Mean => e.mean,
    };
    (e.hidden, v)
}

/// Over-expresses `token` in `cell`, inserting it in front when absent; `None` for a deletion of
/// an absent gene. Returns the edited cell and whether the gene was inserted.
pub fn edit_for_fate(
    cell: &TokenizedCell,
    token: u32,
    kind: PerturbKind,
    max_len: usize,
) -> Option<(TokenizedCell, bool)> {
    if let Some(p) = perturb_cell(cell, &[token], kind) {
        return Some((p.cell, false));
    }
    let PerturbKind::Overexpress { factor } = kind else {
        return None;
    };
    let top = cell.values.iter().copied().fold(0f32, f32::max).max(1.0);
    let mut c = cell.clone();
    c.input_ids.insert(0, token);
    c.values.insert(0, top * factor);
    c.input_ids.truncate(max_len.max(1));
    c.values.truncate(max_len.max(1));
    Some((c, true))
}

/// Tests every candidate on every source cell; `progress` gets candidates done.
pub fn fate_search(
    bert: &BertModel,
    source: &CellSet,
    target: &CellSet,
    candidates: &[u32],
    options: &FateOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<FateReport, FateError> {
    if source.is_empty() {
        return Err(FateError::EmptyPopulation { which: "source" });
    }
    if target.is_empty() {
        return Err(FateError::EmptyPopulation { which: "target" });
    }
    if candidates.is_empty() {
        return Err(FateError::NoCandidates);
    }
    if let PerturbKind::Overexpress { factor } = options.kind
        && !(factor.is_finite() && factor > 0.0)
    {
        return Err(FateError::BadFactor { factor });
    }
    if options.vector == CellVector::Cls && bert.cls_embedding.is_none() {
        return Err(FateError::NoCls);
    }
    let (h, tv) = vectors(bert, target, options, device);
    let mut centroid = vec![0f32; h];
    for row in tv.chunks(h) {
        centroid.iter_mut().zip(row).for_each(|(c, v)| *c += v);
    }
    centroid.iter_mut().for_each(|c| *c /= target.len() as f32);
    let mean_cos = |v: &[f32]| -> Vec<f64> {
        v.chunks(h)
            .map(|r| f64::from(cosine(r, &centroid)))
            .collect()
    };
    let target_cos = mean_cos(&tv).iter().sum::<f64>() / target.len() as f64;
    let (_, sv) = vectors(bert, source, options, device);
    let before = mean_cos(&sv);
    let source_cos = before.iter().sum::<f64>() / source.len() as f64;

    let mut effects = Vec::new();
    let mut variants = 0;
    for &token in candidates {
        let mut edited = Vec::new();
        let mut which = Vec::new();
        let mut inserted = 0;
        for (i, cell) in source.cells.iter().enumerate() {
            if let Some((c, ins)) = edit_for_fate(cell, token, options.kind, options.max_len) {
                edited.push(c);
                which.push(i);
                inserted += usize::from(ins);
            }
        }
        progress(1);
        if edited.is_empty() {
            continue;
        }
        variants += edited.len();
        let set = CellSet {
            cells: edited,
            padded_len: None,
        };
        let (_, pv) = vectors(bert, &set, options, device);
        let after = mean_cos(&pv);
        let gains: Vec<f64> = which
            .iter()
            .zip(&after)
            .map(|(&i, a)| a - before[i])
            .collect();
        let n = gains.len() as f64;
        let mean = gains.iter().sum::<f64>() / n;
        let sd = if gains.len() > 1 {
            (gains.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        effects.push(FateEffect {
            token,
            cells: gains.len(),
            inserted,
            mean_gain: mean,
            sd_gain: sd,
            standardised: if sd > 0.0 { mean / sd } else { 0.0 },
            frac_closer: gains.iter().filter(|&&g| g > 0.0).count() as f64 / n,
            mean_cos_after: after.iter().sum::<f64>() / n,
        });
    }
    effects.sort_by(|a, b| {
        b.mean_gain
            .total_cmp(&a.mean_gain)
            .then(a.token.cmp(&b.token))
    });
    Ok(FateReport {
        source_cos,
        target_cos,
        effects,
        variants,
    })
}

/// Candidate genes marking the target: detected in at least `min_cells` target cells, ranked by
/// the share of target cells expressing them minus the share of source cells (ties by token).
pub fn marker_candidates(
    source: &CellSet,
    target: &CellSet,
    min_cells: usize,
    n: usize,
) -> Vec<u32> {
    use std::collections::HashMap;
    let count = |s: &CellSet| {
        let mut m: HashMap<u32, usize> = HashMap::new();
        for c in &s.cells {
            for &t in &c.input_ids {
                *m.entry(t).or_default() += 1;
            }
        }
        m
    };
    let (cs, ct) = (count(source), count(target));
    let mut v: Vec<(f64, u32)> = ct
        .iter()
        .filter(|&(&t, &c)| t > 1 && c >= min_cells.max(1))
        .map(|(&t, &c)| {
            let d = c as f64 / target.len().max(1) as f64
                - cs.get(&t).copied().unwrap_or(0) as f64 / source.len().max(1) as f64;
            (d, t)
        })
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.into_iter().take(n).map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::Species;

    fn cell(ids: &[u32], values: &[f32]) -> TokenizedCell {
        TokenizedCell {
            input_ids: ids.to_vec(),
            values: values.to_vec(),
            species: Species::Mouse,
            label: None,
        }
    }

    #[test]
    fn overexpression_inserts_absent_genes_in_front() {
        let c = cell(&[5, 6, 7], &[3.0, 2.0, 1.0]);
        let oe = PerturbKind::Overexpress { factor: 10.0 };
        let (e, ins) = edit_for_fate(&c, 7, oe, 8).unwrap();
        assert!(!ins);
        assert_eq!(e.input_ids, [7, 5, 6]);
        assert_eq!(e.values, [10.0, 3.0, 2.0]);
        let (e, ins) = edit_for_fate(&c, 9, oe, 3).unwrap();
        assert!(ins);
        assert_eq!(e.input_ids, [9, 5, 6], "at max_len the last gene goes");
        assert_eq!(e.values, [30.0, 3.0, 2.0]);
        assert_eq!(e.species, Species::Mouse);
        assert!(edit_for_fate(&c, 9, PerturbKind::Delete, 8).is_none());
        assert_eq!(
            edit_for_fate(&c, 6, PerturbKind::Delete, 8)
                .unwrap()
                .0
                .input_ids,
            [5, 7]
        );
    }

    #[test]
    fn markers_rank_by_detection_difference() {
        let set = |cells: Vec<TokenizedCell>| CellSet {
            cells,
            padded_len: None,
        };
        let src = set(vec![cell(&[5, 6], &[1.0, 1.0]), cell(&[5], &[1.0])]);
        let tgt = set(vec![
            cell(&[5, 7, 8], &[1.0; 3]),
            cell(&[7, 8, 1], &[1.0; 3]),
            cell(&[7], &[1.0]),
        ]);
        // 7: 3/3 − 0 = 1; 8: 2/3; 5: 1/3 − 1 < 0; token 1 (mask/pad) never.
        assert_eq!(marker_candidates(&src, &tgt, 1, 10), [7, 8, 5]);
        assert_eq!(marker_candidates(&src, &tgt, 2, 10), [7, 8]);
        assert_eq!(marker_candidates(&src, &tgt, 1, 1), [7]);
    }
}
