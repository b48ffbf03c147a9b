//! Cells → padded tensors.
//!
//! The official code pads every cell to 2048 positions. With the attention mask on, padding
//! does not change a cell's outputs, so cells are grouped by length and each batch is padded
//! only to its longest cell (dynamic padding). Without the mask (the official inference
//! quirk) padding is attended and changes the numbers, so that mode pads to the stored length.

use burn::prelude::*;

use crate::cells::{CellSet, Species};
use crate::error::InputError;
use crate::model::ModelInput;

/// How batches are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// To the longest cell of each batch (default; exact with the attention mask).
    #[default]
    Dynamic,
    /// To a fixed length (the official layout uses 2048).
    Fixed(usize),
    /// To the length the source stored (`CellSet::padded_len`), else dynamic.
    Stored,
    /// To the longest cell of each batch rounded up to a multiple of `of`, never past
    /// `max` (the model's positions): exact like `Dynamic`, with far fewer distinct shapes,
    /// which GPU backends compile and autotune kernels for one by one.
    Multiple {
        /// Round up to a multiple of this.
        of: usize,
        /// Upper bound (unless a cell is longer).
        max: usize,
    },
}

impl Padding {
    /// The padded length of a batch whose longest cell has `longest` genes.
    pub fn length(self, longest: usize, stored: Option<usize>) -> usize {
        match self {
            Padding::Dynamic => longest,
            Padding::Fixed(n) => n.max(longest),
            Padding::Stored => stored.unwrap_or(longest).max(longest),
            Padding::Multiple { of, max } => {
                let of = of.max(1);
                (longest.div_ceil(of) * of).min(max.max(longest))
            }
        }
    }

    /// Whether padding depends only on each batch's own cells (no stored or fixed length).
    pub fn is_dynamic(self) -> bool {
        matches!(self, Padding::Dynamic | Padding::Multiple { .. })
    }
}

/// Batching and input conventions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Cells per batch.
    pub batch_size: usize,
    /// Padding policy.
    pub padding: Padding,
    /// Group cells of similar length (outputs are returned in input order regardless).
    pub sort_by_length: bool,
    /// Pass species (CLS row and homolog remap). Off reproduces the official classifier.
    pub use_species: bool,
    /// Pass the attention mask. Off reproduces the official inference scripts.
    pub attention_mask: bool,
    /// Truncate values toward zero, as the official classification collator does.
    pub truncate_values: bool,
    /// Most attention scores per head in one batch: cells × (L + 1)², L the batch's padded
    /// length. A longer batch is split, so that its `[B, heads, L + 1, L + 1]` scores fit a
    /// device's largest buffer (WebGPU caps buffers at 256 MiB–4 GiB). `None`: no cap.
    pub max_scores_per_head: Option<usize>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            batch_size: 16,
            padding: Padding::Dynamic,
            sort_by_length: true,
            use_species: true,
            attention_mask: true,
            truncate_values: false,
            max_scores_per_head: None,
        }
    }
}

/// Groups cell indices into batches (longest first when sorting, so memory peaks early), at
/// most `batch_size` cells each and, with `max_scores_per_head`, small enough for it (a cell
/// over it alone still gets a batch).
pub fn plan_batches(cells: &CellSet, options: &BatchOptions) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    if options.sort_by_length {
        order.sort_by_key(|&i| (std::cmp::Reverse(cells.cells[i].len()), i));
    }
    let size = options.batch_size.max(1);
    let Some(budget) = options.max_scores_per_head else {
        return order.chunks(size).map(<[usize]>::to_vec).collect();
    };
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    let padded = |longest: usize| options.padding.length(longest, cells.padded_len) + 1;
    for i in order {
        let len = cells.cells[i].len();
        let l = padded(longest.max(len));
        if !current.is_empty() && (current.len() == size || (current.len() + 1) * l * l > budget) {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Checks that every cell's species has a row in the model's CLS table (`species`: the
/// config's [`crate::model::GeneCompassConfig::species_names`]).
pub fn validate_species(
    cells: &CellSet,
    source: &str,
    species: &[String],
) -> Result<(), InputError> {
    match cells
        .cells
        .iter()
        .position(|c| usize::from(c.species.code()) >= species.len())
    {
        Some(i) => Err(InputError::UnknownSpecies {
            source_name: source.to_string(),
            cell: i,
            code: cells.cells[i].species.code(),
            known: species
                .iter()
                .enumerate()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(()),
    }
}

/// Checks every cell against the model's vocabulary and position table.
pub fn validate_cells(
    cells: &CellSet,
    source: &str,
    vocab: usize,
    max_len: usize,
) -> Result<(), InputError> {
    for (i, c) in cells.cells.iter().enumerate() {
        if c.len() > max_len {
            return Err(InputError::TooLong {
                source_name: source.to_string(),
                cell: i,
                len: c.len(),
                max: max_len,
            });
        }
        if let Some(&id) = c.input_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(InputError::TokenOutOfRange {
                source_name: source.to_string(),
                cell: i,
                id,
                vocab,
            });
        }
    }
    Ok(())
}

/// Builds the padded batch of the given cells.
pub fn make_batch(
    cells: &CellSet,
    indices: &[usize],
    options: &BatchOptions,
    device: &Device,
) -> ModelInput {
    let longest = indices
        .iter()
        .map(|&i| cells.cells[i].len())
        .max()
        .unwrap_or(0);
    let len = options.padding.length(longest, cells.padded_len).max(1);
    let b = indices.len();
    let mut ids = vec![0i64; b * len];
    let mut values = vec![0f32; b * len];
    let mut mask = vec![0f32; b * len];
    let mut species = Vec::with_capacity(b);
    for (row, &i) in indices.iter().enumerate() {
        let c = &cells.cells[i];
        for (j, (&id, &v)) in c.input_ids.iter().zip(&c.values).enumerate() {
            ids[row * len + j] = id as i64;
            values[row * len + j] = if options.truncate_values {
                v.trunc()
            } else {
                v
            };
            mask[row * len + j] = 1.0;
        }
        species.push(i64::from(c.species.code()));
    }
    ModelInput::from_host(
        &ids,
        &values,
        options.use_species.then_some(&species[..]),
        options.attention_mask.then_some(&mask[..]),
        b,
        len,
        device,
    )
}

/// Species present in a set (for reports).
pub fn species_counts(cells: &CellSet) -> (usize, usize) {
    let mouse = cells
        .cells
        .iter()
        .filter(|c| c.species == Species::Mouse)
        .count();
    (cells.len() - mouse, mouse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::hf_dataset::read_hf_dataset;

    fn fixture_cells() -> CellSet {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/hf-datasets/celltype-tiny"
        );
        read_hf_dataset(std::path::Path::new(dir), None)
            .expect("the tests need ../shared beside the checkout")
    }

    #[test]
    fn a_score_budget_splits_batches_to_fit() {
        let cells = fixture_cells();
        let longest = cells.cells.iter().map(|c| c.len()).max().unwrap() + 1;
        let opts = |budget| BatchOptions {
            batch_size: 8,
            max_scores_per_head: budget,
            ..Default::default()
        };
        let plain = plan_batches(&cells, &opts(None));
        for budget in [3 * longest * longest, longest * longest - 1] {
            let planned = plan_batches(&cells, &opts(Some(budget)));
            assert!(planned.len() > plain.len(), "budget {budget} split nothing");
            let mut seen: Vec<usize> = planned.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..cells.len()).collect::<Vec<_>>());
            for b in &planned {
                let l = b.iter().map(|&i| cells.cells[i].len()).max().unwrap() + 1;
                assert!(b.len() <= 8);
                assert!(
                    b.len() == 1 || b.len() * l * l <= budget,
                    "{b:?} over {budget}"
                );
            }
        }
        // A budget no cell fits: one cell per batch, none dropped.
        let single = plan_batches(&cells, &opts(Some(1)));
        assert_eq!(single.len(), cells.len());
    }
}
