//! Editing one tokenized cell: deleting genes or over-expressing them (value × factor, then
//! re-ranking), keeping track of where every remaining gene came from so that embeddings can be
//! compared gene by gene afterwards.

use std::cmp::Ordering;

use crate::cells::TokenizedCell;

/// What is done to the chosen genes of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PerturbKind {
    /// Remove the (id, value) pairs; the cell gets shorter and every later gene moves up.
    Delete,
    /// Multiply the value by `factor` and re-rank. The official perturber uses 10 000, which moves
    /// the gene to the front of any real cell.
    Overexpress {
        /// Value multiplier (> 0, finite).
        factor: f32,
    },
}

impl PerturbKind {
    /// The official over-expression factor (`perturb_parameters = 10000`).
    pub const OFFICIAL_FACTOR: f32 = 10_000.0;
}

/// A cell after a perturbation, with the provenance of each of its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbedCell {
    /// The perturbed cell (same species and label as the original).
    pub cell: TokenizedCell,
    /// For each row of `cell`, the row of the original cell it holds.
    pub source: Vec<usize>,
    /// Original rank positions of the perturbed genes that the cell holds, ascending.
    pub positions: Vec<usize>,
    /// Over-expression: where each gene of `positions` ended up (same order). Empty for deletion.
    pub new_positions: Vec<usize>,
}

impl PerturbedCell {
    /// Number of original rows removed.
    pub fn deleted(&self) -> usize {
        self.positions.len() - self.new_positions.len()
    }
}

/// The tokenizer's rank order ([`crate::tokenize::transform::rank_cell`]): value descending
/// (`total_cmp` on the stored f32), ties by ascending token id.
pub fn rank_order(a: (u32, f32), b: (u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Applies `kind` to the genes of `tokens` that `cell` holds; `None` when it holds none of them.
///
/// Over-expression re-inserts each scaled gene where the tokenizer's order puts it, and leaves the
/// other genes in their stored order. A full re-sort would also reorder genes that tie in value
/// but were ranked by another tie rule (the official tokenizer's unstable numpy sort), moving
/// unperturbed genes and so inventing embedding shifts. The official code uses Python's stable
/// sort, which agrees except when the scaled value ties exactly with another gene.
pub fn perturb_cell(
    cell: &TokenizedCell,
    tokens: &[u32],
    kind: PerturbKind,
) -> Option<PerturbedCell> {
    let mut positions: Vec<usize> = cell
        .input_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| tokens.contains(id))
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return None;
    }
    positions.sort_unstable();
    let kept: Vec<usize> = (0..cell.len())
        .filter(|i| positions.binary_search(i).is_err())
        .collect();
    let (source, new_positions) = match kind {
        PerturbKind::Delete => (kept, Vec::new()),
        PerturbKind::Overexpress { factor } => {
            let mut rows: Vec<(usize, (u32, f32))> = kept
                .iter()
                .map(|&i| (i, (cell.input_ids[i], cell.values[i])))
                .collect();
            for &p in &positions {
                let gene = (cell.input_ids[p], cell.values[p] * factor);
                let at = rows
                    .iter()
                    .position(|&(_, other)| rank_order(gene, other) == Ordering::Less)
                    .unwrap_or(rows.len());
                rows.insert(at, (p, gene));
            }
            let new_positions = positions
                .iter()
                .map(|p| rows.iter().position(|(src, _)| src == p).expect("inserted"))
                .collect();
            (rows.iter().map(|(i, _)| *i).collect(), new_positions)
        }
    };
    let value = |i: usize| match kind {
        PerturbKind::Overexpress { factor } if positions.binary_search(&i).is_ok() => {
            cell.values[i] * factor
        }
        _ => cell.values[i],
    };
    Some(PerturbedCell {
        cell: TokenizedCell {
            input_ids: source.iter().map(|&i| cell.input_ids[i]).collect(),
            values: source.iter().map(|&i| value(i)).collect(),
            species: cell.species,
            label: cell.label.clone(),
        },
        source,
        positions,
        new_positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::Species;

    fn cell(ids: &[u32], values: &[f32]) -> TokenizedCell {
        TokenizedCell {
            input_ids: ids.to_vec(),
            values: values.to_vec(),
            species: Species::Human,
            label: None,
        }
    }

    #[test]
    fn delete_removes_the_gene_and_shifts_later_positions() {
        let c = cell(&[19, 6, 12, 2, 21], &[9.0, 8.0, 7.0, 6.0, 5.0]);
        let p = perturb_cell(&c, &[2], PerturbKind::Delete).unwrap();
        assert_eq!(p.cell.input_ids, vec![19, 6, 12, 21]);
        assert_eq!(p.cell.values, vec![9.0, 8.0, 7.0, 5.0]);
        // Gene 21 was at rank 4 and is now at rank 3: it holds original row 4.
        assert_eq!(p.source, vec![0, 1, 2, 4]);
        assert_eq!(p.positions, vec![3]);
        assert!(p.new_positions.is_empty());
        assert_eq!(p.deleted(), 1);
    }

    #[test]
    fn delete_several_genes_at_once() {
        let c = cell(&[5, 6, 7, 8], &[4.0, 3.0, 2.0, 1.0]);
        let p = perturb_cell(&c, &[8, 6, 99], PerturbKind::Delete).unwrap();
        assert_eq!(p.cell.input_ids, vec![5, 7]);
        assert_eq!(p.source, vec![0, 2]);
        assert_eq!(p.positions, vec![1, 3]);
    }

    #[test]
    fn absent_gene_leaves_the_cell_alone() {
        let c = cell(&[5, 6], &[2.0, 1.0]);
        assert!(perturb_cell(&c, &[7], PerturbKind::Delete).is_none());
        let over = PerturbKind::Overexpress { factor: 10.0 };
        assert!(perturb_cell(&c, &[7], over).is_none());
    }

    #[test]
    fn overexpress_re_ranks_the_gene() {
        let c = cell(&[10, 11, 12, 13], &[5.0, 4.0, 3.0, 2.0]);
        // 2 × 2.2 = 4.4 lands between 5.0 and 4.0.
        let p = perturb_cell(&c, &[13], PerturbKind::Overexpress { factor: 2.2 }).unwrap();
        assert_eq!(p.cell.input_ids, vec![10, 13, 11, 12]);
        assert_eq!(p.cell.values[1], 2.0 * 2.2);
        assert_eq!(p.source, vec![0, 3, 1, 2]);
        assert_eq!(p.positions, vec![3]);
        assert_eq!(p.new_positions, vec![1]);
        assert_eq!(p.deleted(), 0);
        // The official factor sends it to the front.
        let front = perturb_cell(
            &c,
            &[12],
            PerturbKind::Overexpress {
                factor: PerturbKind::OFFICIAL_FACTOR,
            },
        )
        .unwrap();
        assert_eq!(front.cell.input_ids, vec![12, 10, 11, 13]);
        assert_eq!(front.new_positions, vec![0]);
    }

    #[test]
    fn overexpress_ties_break_by_token_id_like_the_tokenizer() {
        let c = cell(&[20, 30, 40], &[4.0, 3.0, 1.0]);
        // 1.0 × 4 = 4.0 ties with gene 20: 40 > 20, so it goes after it.
        let p = perturb_cell(&c, &[40], PerturbKind::Overexpress { factor: 4.0 }).unwrap();
        assert_eq!(p.cell.input_ids, vec![20, 40, 30]);
        let c = cell(&[20, 30, 10], &[4.0, 3.0, 1.0]);
        // Gene 10 ties with 20 and has the smaller id: it goes first.
        let p = perturb_cell(&c, &[10], PerturbKind::Overexpress { factor: 4.0 }).unwrap();
        assert_eq!(p.cell.input_ids, vec![10, 20, 30]);
        assert_eq!(p.new_positions, vec![0]);
    }

    #[test]
    fn under_expression_moves_the_gene_down() {
        let c = cell(&[1, 2, 3], &[3.0, 2.0, 1.0]);
        let p = perturb_cell(&c, &[1], PerturbKind::Overexpress { factor: 0.1 }).unwrap();
        assert_eq!(p.cell.input_ids, vec![2, 3, 1]);
        assert_eq!(p.new_positions, vec![2]);
    }
}
