//! Context-averaged gene embeddings: the last-layer output of every occurrence of a gene,
//! averaged over all the cells that express it, keyed by the gene's token.
//!
//! The official GRN / GEARS helpers average by *position* (row j of every cell, whatever gene
//! it holds) and then label rows with the genes of the first cell (spec §12, §15 item 8), which
//! mixes unrelated genes; here each gene's vector comes only from rows that hold that gene.
//! One pass also yields the cell embeddings (CLS and mean over real genes) that `embed` writes.

use std::collections::HashMap;

use burn::prelude::*;

use super::forward::last_layer;
use super::infer::{Embeddings, InferOptions};
use crate::batch::{make_batch, plan_batches};
use crate::cells::CellSet;
use crate::model::BertModel;

/// Per-gene averages of the last layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneEmbeddings {
    /// Hidden width H.
    pub hidden: usize,
    /// Token ids that occur in the cells, ascending.
    pub tokens: Vec<u32>,
    /// Mean last-layer vector of each token. `[G, H]`
    pub mean: Vec<f32>,
    /// How many (cell, position) occurrences each mean averages.
    pub counts: Vec<u64>,
}

/// Sums in f64: a gene seen in 10⁵ cells would lose digits in an f32 running sum.
#[derive(Debug, Default)]
struct Accumulator {
    row: HashMap<u32, usize>,
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl Accumulator {
    fn add(&mut self, token: u32, v: &[f32]) {
        let h = v.len();
        let next = self.counts.len();
        let r = *self.row.entry(token).or_insert(next);
        if r == next {
            self.sums.resize((r + 1) * h, 0.0);
            self.counts.push(0);
        }
        for (acc, &x) in self.sums[r * h..(r + 1) * h].iter_mut().zip(v) {
            *acc += f64::from(x);
        }
        self.counts[r] += 1;
    }

    fn finish(self, hidden: usize) -> GeneEmbeddings {
        let mut tokens: Vec<u32> = self.row.keys().copied().collect();
        tokens.sort_unstable();
        let mut mean = Vec::with_capacity(tokens.len() * hidden);
        let mut counts = Vec::with_capacity(tokens.len());
        for t in &tokens {
            let r = self.row[t];
            let n = self.counts[r];
            mean.extend(
                self.sums[r * hidden..(r + 1) * hidden]
                    .iter()
                    .map(|s| (s / n as f64) as f32),
            );
            counts.push(n);
        }
        GeneEmbeddings {
            hidden,
            tokens,
            mean,
            counts,
        }
    }
}

/// Gene embeddings by gene identity, and the cell embeddings (`cls`, `mean`) of every cell, in one
/// pass. `last_hidden_state` is not kept (`options.keep_hidden_states` is ignored).
pub fn embed_genes(
    bert: &BertModel,
    cells: &CellSet,
    options: &InferOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> (GeneEmbeddings, Embeddings) {
    let h = bert.embeddings.word_embeddings.weight.dims()[1];
    let off = usize::from(bert.cls_embedding.is_some());
    let n = cells.len();
    let folded = options
        .folded
        .then(|| super::infer::fold_for_cells(&bert.embeddings, cells));
    let mut acc = Accumulator::default();
    let mut e = Embeddings {
        hidden: h,
        cls: vec![0.0; n * h],
        mean: vec![0.0; n * h],
        ..Embeddings::default()
    };
    for idx in plan_batches(cells, &options.batch) {
        let input = make_batch(cells, &idx, &options.batch, device);
        let (data, s) = last_layer(bert, folded.as_ref(), &input, options.alpha);
        for (row, &ci) in idx.iter().enumerate() {
            let out = &data[row * s * h..(row + 1) * s * h];
            e.cls[ci * h..(ci + 1) * h].copy_from_slice(&out[..h]);
            let cell = &cells.cells[ci];
            let len = cell.len().min(s - off);
            let m = &mut e.mean[ci * h..(ci + 1) * h];
            for (j, &token) in cell.input_ids.iter().take(len).enumerate() {
                let v = &out[(off + j) * h..(off + j + 1) * h];
                acc.add(token, v);
                m.iter_mut().zip(v).for_each(|(a, x)| *a += x);
            }
            m.iter_mut().for_each(|v| *v /= cell.len().max(1) as f32);
        }
        progress(idx.len());
    }
    (acc.finish(h), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_averages_by_token() {
        let mut a = Accumulator::default();
        a.add(7, &[1.0, 2.0]);
        a.add(3, &[0.0, 4.0]);
        a.add(7, &[3.0, 4.0]);
        let g = a.finish(2);
        assert_eq!(g.tokens, vec![3, 7]);
        assert_eq!(g.counts, vec![1, 2]);
        assert_eq!(g.mean, vec![0.0, 4.0, 2.0, 3.0]);
    }
}
