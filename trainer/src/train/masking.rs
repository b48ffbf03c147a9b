//! The official MLM corruption (`DataCollatorForLanguageModelingModified`, spec §7.1): each real
//! gene position is masked with probability 0.15 (never `<pad>` or `<mask>` positions); of those,
//! 80 % become `<mask>`, 10 % a random id drawn from `0..V` (as officially, which can draw the
//! pad or mask id), 10 % stay; corrupted positions get value −1. The attention mask comes from
//! the clean ids. Deviation: a batch where no position was drawn gets one masked position (the
//! official loss would be NaN).

use burn::prelude::*;
use genecompass_core::batch::Padding;
use genecompass_core::cells::CellSet;
use genecompass_core::model::{MlmTargets, ModelInput};

use super::rng::Rng;

/// Masking probabilities.
#[derive(Debug, Clone, Copy)]
pub struct MaskingOptions {
    /// Share of positions masked (0.15).
    pub mlm_probability: f64,
    /// Share of masked positions replaced by `<mask>` (0.8).
    pub mask_share: f64,
    /// Share of the remaining masked positions replaced by a random id (0.5, i.e. 10 % overall).
    pub random_share: f64,
    /// The `<mask>` id.
    pub mask_id: u32,
    /// The pad id (0).
    pub pad_id: u32,
    /// Vocabulary size (random ids are drawn from `0..V`).
    pub vocab_size: usize,
    /// Pass species to the model.
    pub use_species: bool,
    /// Round the batch length up to a multiple of this (1: the longest cell).
    pub pad_multiple: usize,
    /// Never round past this (the model's positions).
    pub max_len: usize,
}

/// One corrupted batch on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedBatch {
    /// Corrupted ids `[B, L]`.
    pub input_ids: Vec<i64>,
    /// Corrupted values `[B, L]`.
    pub values: Vec<f32>,
    /// Attention mask from the clean ids `[B, L]`.
    pub attention_mask: Vec<f32>,
    /// Species codes `[B]`.
    pub species: Vec<i64>,
    /// Flat masked positions, their original ids and values.
    pub positions: Vec<i64>,
    /// Original ids at `positions`.
    pub label_ids: Vec<i64>,
    /// Original values at `positions`.
    pub label_values: Vec<f32>,
    /// Batch size and padded length.
    pub dims: [usize; 2],
}

/// Corrupts the cells `indices` of `cells`.
pub fn mask_batch(
    cells: &CellSet,
    indices: &[usize],
    o: &MaskingOptions,
    rng: &mut Rng,
) -> MaskedBatch {
    let longest = indices
        .iter()
        .map(|&i| cells.cells[i].len())
        .max()
        .unwrap_or(0);
    let len = Padding::Multiple {
        of: o.pad_multiple,
        max: o.max_len,
    }
    .length(longest, None)
    .max(1);
    let b = indices.len();
    let mut m = MaskedBatch {
        input_ids: vec![o.pad_id as i64; b * len],
        values: vec![0.0; b * len],
        attention_mask: vec![0.0; b * len],
        species: Vec::with_capacity(b),
        positions: Vec::new(),
        label_ids: Vec::new(),
        label_values: Vec::new(),
        dims: [b, len],
    };
    let mut candidates = Vec::new();
    for (row, &i) in indices.iter().enumerate() {
        let c = &cells.cells[i];
        m.species.push(i64::from(c.species.code()));
        for (j, (&id, &v)) in c.input_ids.iter().zip(&c.values).enumerate() {
            let at = row * len + j;
            m.input_ids[at] = id as i64;
            m.values[at] = v;
            m.attention_mask[at] = if id != o.pad_id { 1.0 } else { 0.0 };
        }
    }
    for at in 0..b * len {
        let id = m.input_ids[at];
        if id == o.pad_id as i64 || id == o.mask_id as i64 {
            continue;
        }
        candidates.push(at);
        if rng.uniform() < o.mlm_probability {
            corrupt(&mut m, at, o, rng);
        }
    }
    if m.positions.is_empty() && !candidates.is_empty() {
        let at = candidates[rng.below(candidates.len())];
        corrupt(&mut m, at, o, rng);
    }
    m
}

fn corrupt(m: &mut MaskedBatch, at: usize, o: &MaskingOptions, rng: &mut Rng) {
    m.positions.push(at as i64);
    m.label_ids.push(m.input_ids[at]);
    m.label_values.push(m.values[at]);
    if rng.uniform() < o.mask_share {
        m.input_ids[at] = o.mask_id as i64;
        m.values[at] = -1.0;
    } else if rng.uniform() < o.random_share {
        m.input_ids[at] = rng.below(o.vocab_size) as i64;
        m.values[at] = -1.0;
    }
}

impl MaskedBatch {
    /// The model input and loss targets on `device`.
    pub fn to_device(&self, use_species: bool, device: &Device) -> (ModelInput, MlmTargets) {
        let [b, l] = self.dims;
        let input = ModelInput::from_host(
            &self.input_ids,
            &self.values,
            use_species.then_some(&self.species[..]),
            Some(&self.attention_mask),
            b,
            l,
            device,
        );
        let n = self.positions.len();
        let targets = MlmTargets {
            positions: Tensor::from_data(TensorData::new(self.positions.clone(), [n]), device),
            ids: Tensor::from_data(TensorData::new(self.label_ids.clone(), [n]), device),
            values: Tensor::from_data(TensorData::new(self.label_values.clone(), [n]), device),
        };
        (input, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genecompass_core::cells::{Species, TokenizedCell};

    #[test]
    fn masks_about_15_percent_with_the_official_split() {
        let cells = CellSet {
            cells: (0..200)
                .map(|c| TokenizedCell {
                    input_ids: (2..102).map(|i| i as u32 + (c % 3)).collect(),
                    values: (0..100).map(|i| 10.0 - i as f32 * 0.05).collect(),
                    species: Species::Human,
                    label: None,
                })
                .collect(),
            padded_len: None,
        };
        let o = MaskingOptions {
            mlm_probability: 0.15,
            mask_share: 0.8,
            random_share: 0.5,
            mask_id: 1,
            pad_id: 0,
            vocab_size: 110,
            use_species: false,
            pad_multiple: 1,
            max_len: 2048,
        };
        let idx: Vec<usize> = (0..200).collect();
        let m = mask_batch(&cells, &idx, &o, &mut Rng::new(3, 0));
        let n = m.positions.len() as f64;
        assert!(
            (n / 20000.0 - 0.15).abs() < 0.01,
            "masked share {}",
            n / 20000.0
        );
        let masked = m
            .positions
            .iter()
            .filter(|&&p| m.input_ids[p as usize] == 1)
            .count() as f64;
        assert!((masked / n - 0.8).abs() < 0.03);
        let kept = m
            .positions
            .iter()
            .zip(&m.label_ids)
            .filter(|&(&p, &l)| m.input_ids[p as usize] == l)
            .count() as f64;
        assert!((kept / n - 0.1).abs() < 0.03, "kept share {}", kept / n);
        for (&p, &v) in m.positions.iter().zip(&m.label_values) {
            let p = p as usize;
            assert!(m.values[p] == -1.0 || m.values[p] == v);
        }
        assert_eq!(m, mask_batch(&cells, &idx, &o, &mut Rng::new(3, 0)));
    }

    /// Rounding the length up (the GPU default) pads more and corrupts the same genes.
    #[test]
    fn rounding_the_length_up_masks_the_same_genes() {
        let cells = CellSet {
            cells: [37usize, 50, 21]
                .iter()
                .map(|&n| TokenizedCell {
                    input_ids: (2..2 + n as u32).collect(),
                    values: (0..n).map(|i| 5.0 - i as f32 * 0.01).collect(),
                    species: Species::Human,
                    label: None,
                })
                .collect(),
            padded_len: None,
        };
        let mut o = MaskingOptions {
            mlm_probability: 0.15,
            mask_share: 0.8,
            random_share: 0.5,
            mask_id: 1,
            pad_id: 0,
            vocab_size: 60,
            use_species: false,
            pad_multiple: 1,
            max_len: 64,
        };
        let idx = [0, 1, 2];
        let exact = mask_batch(&cells, &idx, &o, &mut Rng::new(5, 0));
        o.pad_multiple = 16;
        let rounded = mask_batch(&cells, &idx, &o, &mut Rng::new(5, 0));
        assert_eq!(exact.dims, [3, 50]);
        assert_eq!(
            rounded.dims,
            [3, 64],
            "50 rounded up to 64, capped at max_len"
        );
        let rows_cols = |m: &MaskedBatch| -> Vec<(i64, i64)> {
            let l = m.dims[1] as i64;
            m.positions.iter().map(|&p| (p / l, p % l)).collect()
        };
        assert_eq!(rows_cols(&exact), rows_cols(&rounded));
        assert_eq!(exact.label_ids, rounded.label_ids);
        assert_eq!(exact.label_values, rounded.label_values);
        let real: f32 = rounded.attention_mask.iter().sum();
        assert_eq!(real, (37 + 50 + 21) as f32, "padding is masked out");
    }
}
