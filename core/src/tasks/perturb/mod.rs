//! In-silico perturbation (spec §11): delete or over-express genes in every cell that holds them
//! and measure how the embeddings move.
//!
//! Per batch of cells, the original cells go through the model once; then every (cell,
//! perturbation) variant is built ([`edit`]) and the variants are run in batches of their own.
//! Each variant is compared with its original ([`align`]): per-gene cosines, aligned by gene
//! identity (default) or by the official position convention, the CLS cosine and the cosine of
//! the mean-pooled genes. Results stream out per cell and are summarised per perturbation.
//!
//! The official perturber runs without attention mask, with species forced to human and on cells
//! padded to the stored length, and never re-pads the shortened cell; [`PerturbOptions::official`]
//! sets those conventions, which the fixture numbers depend on.

pub mod align;
pub mod edit;

use std::collections::HashMap;

use burn::prelude::*;
use thiserror::Error;

pub use align::{
    AffectedGene, AffectedStats, Alignment, CellRecord, OfficialDict, OfficialEntry, OfficialKey,
    cosine, official_entries,
};
pub use edit::{PerturbKind, PerturbedCell, perturb_cell, rank_order};

use super::forward::last_layer;
use super::infer::InferOptions;
use crate::batch::{BatchOptions, Padding, make_batch, plan_batches};
use crate::cells::CellSet;
use crate::model::{BertModel, FoldedEmbedding};
use align::Rows;

/// Errors in a perturbation request (each says what to change).
#[derive(Debug, Error, PartialEq)]
pub enum PerturbError {
    /// Nothing to perturb.
    #[error("no genes to perturb: give at least one gene")]
    NoGenes,
    /// A perturbation lists no gene.
    #[error("perturbation {index} lists no gene")]
    EmptyPerturbation {
        /// Its index.
        index: usize,
    },
    /// A token id the model cannot embed.
    #[error(
        "token id {token} is outside the model's vocabulary of {vocab} tokens; is the token dictionary the model's?"
    )]
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A factor that does not over-express.
    #[error("over-expression factor {factor} must be finite and > 0 (to remove a gene, delete it)")]
    BadFactor {
        /// The factor given.
        factor: f32,
    },
    /// The official convention is only pinned down for deletion.
    #[error(
        "the official alignment is only defined for deletion: the official over-expression compares \
         each row with a different gene of the original (it removes the moved gene's *new* index), \
         so its numbers carry no per-gene meaning; use the identity alignment"
    )]
    OfficialOverexpress,
}

/// Settings of a perturbation run.
#[derive(Debug, Clone, Copy)]
pub struct PerturbOptions {
    /// Batching, forward conventions and α; `batch.batch_size` also sizes the variant batches.
    pub infer: InferOptions,
    /// Delete or over-express.
    pub kind: PerturbKind,
    /// How per-gene cosines are paired and labelled.
    pub alignment: Alignment,
}

impl PerturbOptions {
    /// The official perturber's conventions: no attention mask, species forced to human (CLS
    /// row 0, no homolog remap), cells padded to their stored length, official alignment.
    pub fn official(kind: PerturbKind) -> Self {
        Self {
            infer: InferOptions {
                batch: BatchOptions {
                    padding: Padding::Stored,
                    use_species: false,
                    attention_mask: false,
                    ..BatchOptions::default()
                },
                ..InferOptions::default()
            },
            kind,
            alignment: Alignment::Official,
        }
    }
}

/// One perturbation's results over the whole set.
#[derive(Debug, Clone, Default)]
pub struct PerturbSummary {
    /// The perturbed tokens (deleted or over-expressed together).
    pub tokens: Vec<u32>,
    /// Cells holding at least one of them (the cells perturbed).
    pub cells: usize,
    /// Mean CLS cosine (`None` without CLS token or without cells).
    pub mean_cls_cos: Option<f64>,
    /// Mean cosine of the mean-pooled gene embeddings.
    pub mean_pool_cos: Option<f64>,
    /// Mean of the cells' gene scores ([`CellRecord::gene_score`]).
    pub mean_gene_score: Option<f64>,
    /// Per affected gene, over the cells.
    pub affected: AffectedStats,
    sums: [f64; 3],
}

impl PerturbSummary {
    fn add(&mut self, r: &CellRecord) {
        self.cells += 1;
        self.sums[0] += f64::from(r.cls_cos.unwrap_or(f32::NAN));
        self.sums[1] += f64::from(r.mean_pool_cos);
        self.sums[2] += f64::from(r.gene_score);
        self.affected.add(r);
        let n = self.cells as f64;
        self.mean_cls_cos = Some(self.sums[0] / n).filter(|v| !v.is_nan());
        self.mean_pool_cos = Some(self.sums[1] / n);
        self.mean_gene_score = Some(self.sums[2] / n);
    }
}

/// Everything a run produces besides the per-cell records.
#[derive(Debug, Clone, Default)]
pub struct PerturbReport {
    /// One per perturbation, in the order given.
    pub summaries: Vec<PerturbSummary>,
    /// Perturbed cells run through the model.
    pub variants: usize,
    /// Original cells run through the model (cells holding none of the genes are skipped).
    pub originals: usize,
    /// The official result dict (official alignment only).
    pub official: OfficialDict,
}

/// Checks a request before any forward pass.
pub fn validate(
    perturbations: &[Vec<u32>],
    options: &PerturbOptions,
    vocab: usize,
) -> Result<(), PerturbError> {
    if perturbations.is_empty() {
        return Err(PerturbError::NoGenes);
    }
    for (index, p) in perturbations.iter().enumerate() {
        if p.is_empty() {
            return Err(PerturbError::EmptyPerturbation { index });
        }
        if let Some(&token) = p.iter().find(|&&t| t as usize >= vocab) {
            return Err(PerturbError::TokenOutOfRange { token, vocab });
        }
    }
    if let PerturbKind::Overexpress { factor } = options.kind {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(PerturbError::BadFactor { factor });
        }
        if options.alignment == Alignment::Official {
            return Err(PerturbError::OfficialOverexpress);
        }
    }
    Ok(())
}

/// A variant waiting for its forward pass.
struct Variant {
    cell: usize,
    perturbation: usize,
    token: u32,
    edit: PerturbedCell,
    /// Row of the cell in the original batch.
    orig_row: usize,
    /// Rows the official convention pads the variant to.
    padded_rows: usize,
}

/// Runs every perturbation on every cell that holds one of its genes.
///
/// `on_record` gets each (cell, perturbation) result once its batch of cells is done (batches in
/// [`plan_batches`] order, within a batch by cell then perturbation); `progress` gets the number
/// of cells finished. A cell holding none of a perturbation's genes is not perturbed and gets
/// no record for it.
pub fn perturb_cells(
    bert: &BertModel,
    cells: &CellSet,
    perturbations: &[Vec<u32>],
    options: &PerturbOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
    mut on_record: impl FnMut(&CellRecord),
) -> Result<PerturbReport, PerturbError> {
    let vocab = bert.embeddings.word_embeddings.weight.dims()[0];
    validate(perturbations, options, vocab)?;
    let hidden = bert.embeddings.word_embeddings.weight.dims()[1];
    let cls = usize::from(bert.cls_embedding.is_some());
    let folded = options
        .infer
        .folded
        .then(|| FoldedEmbedding::fold(&bert.embeddings));
    let alpha = options.infer.alpha;
    let batch = options.infer.batch;
    let mut by_token: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in perturbations.iter().enumerate() {
        for &t in p {
            by_token.entry(t).or_default().push(i);
        }
    }
    let mut report = PerturbReport {
        summaries: perturbations
            .iter()
            .map(|p| PerturbSummary {
                tokens: p.clone(),
                ..PerturbSummary::default()
            })
            .collect(),
        ..PerturbReport::default()
    };
    for mut chunk in plan_batches(cells, &batch) {
        chunk.sort_unstable();
        // Which perturbations touch each cell; cells touched by none skip the model entirely.
        let touched: Vec<(usize, Vec<usize>)> = chunk
            .iter()
            .map(|&ci| {
                let mut ps: Vec<usize> = cells.cells[ci]
                    .input_ids
                    .iter()
                    .filter_map(|t| by_token.get(t))
                    .flatten()
                    .copied()
                    .collect();
                ps.sort_unstable();
                ps.dedup();
                (ci, ps)
            })
            .filter(|(_, ps)| !ps.is_empty())
            .collect();
        if touched.is_empty() {
            progress(chunk.len());
            continue;
        }
        let orig_idx: Vec<usize> = touched.iter().map(|(ci, _)| *ci).collect();
        let input = make_batch(cells, &orig_idx, &batch, device);
        let orig_len = input.dims()[1];
        let (orig, orig_s) = last_layer(bert, folded.as_ref(), &input, alpha);
        report.originals += orig_idx.len();
        let mut variants = Vec::new();
        for (row, (ci, ps)) in touched.iter().enumerate() {
            let cell = &cells.cells[*ci];
            for &p in ps {
                let edit = perturb_cell(cell, &perturbations[p], options.kind).expect("touched");
                let token = *perturbations[p]
                    .iter()
                    .find(|t| cell.input_ids.contains(t))
                    .expect("touched");
                let padded_rows = if batch.padding.is_dynamic() {
                    edit.cell.len()
                } else {
                    orig_len - edit.deleted()
                };
                variants.push(Variant {
                    cell: *ci,
                    perturbation: p,
                    token,
                    edit,
                    orig_row: row,
                    padded_rows,
                });
            }
        }
        // Longest first, so that each variant batch holds cells of similar length (little
        // padding); records are still emitted in (cell, perturbation) order.
        let mut order: Vec<usize> = (0..variants.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(variants[i].padded_rows), i));
        let mut records: Vec<Option<CellRecord>> = vec![None; variants.len()];
        for group in order.chunks(batch.batch_size.max(1)) {
            let set = CellSet {
                cells: group
                    .iter()
                    .map(|&i| variants[i].edit.cell.clone())
                    .collect(),
                padded_len: None,
            };
            let len = group
                .iter()
                .map(|&i| variants[i].padded_rows)
                .max()
                .unwrap_or(1);
            let vb = BatchOptions {
                padding: if batch.padding.is_dynamic() {
                    batch.padding
                } else {
                    Padding::Fixed(len)
                },
                ..batch
            };
            let idx: Vec<usize> = (0..group.len()).collect();
            let input = make_batch(&set, &idx, &vb, device);
            let (pert, pert_s) = last_layer(bert, folded.as_ref(), &input, alpha);
            report.variants += group.len();
            for (row, &i) in group.iter().enumerate() {
                let v = &variants[i];
                let o = Rows {
                    data: &orig[v.orig_row * orig_s * hidden..][..orig_s * hidden],
                    hidden,
                    cls,
                    seq: orig_s - cls,
                };
                let p = Rows {
                    data: &pert[row * pert_s * hidden..][..pert_s * hidden],
                    hidden,
                    cls,
                    seq: pert_s - cls,
                };
                records[i] = Some(align::compare(
                    &cells.cells[v.cell],
                    &v.edit,
                    o,
                    p,
                    v.padded_rows,
                    options.alignment,
                    v.cell,
                    v.perturbation,
                    v.token,
                ));
            }
        }
        for record in records.into_iter().flatten() {
            report.summaries[record.perturbation].add(&record);
            if options.alignment == Alignment::Official {
                report.official.add(&record);
            }
            on_record(&record);
        }
        progress(chunk.len());
    }
    Ok(report)
}
