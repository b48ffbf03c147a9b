//! Model inputs as tensors: one padded batch of cells.

use burn::prelude::*;

/// One batch of cells on a device.
///
/// `attention_mask = None` reproduces the official inference scripts, which attend to padding;
/// `species = None` reproduces the official classification forward (human CLS, no homolog remap).
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// Token ids, right-padded with the pad id. `[B, L]`
    pub input_ids: Tensor<2, Int>,
    /// Values, 0 on padding. `[B, L]`
    pub values: Tensor<2>,
    /// Species code per cell (0 human, 1 mouse). `[B, 1]`
    pub species: Option<Tensor<2, Int>>,
    /// 1.0 on real genes, 0.0 on padding. `[B, L]`
    pub attention_mask: Option<Tensor<2>>,
}

impl ModelInput {
    /// Builds a batch from host arrays (row-major `[B, L]`).
    ///
    /// # Panics
    /// If the slice lengths do not match `batch * len`.
    pub fn from_host(
        input_ids: &[i64],
        values: &[f32],
        species: Option<&[i64]>,
        attention_mask: Option<&[f32]>,
        batch: usize,
        len: usize,
        device: &Device,
    ) -> Self {
        assert_eq!(
            input_ids.len(),
            batch * len,
            "input_ids must be [batch, len]"
        );
        assert_eq!(values.len(), batch * len, "values must be [batch, len]");
        Self {
            input_ids: Tensor::from_data(TensorData::new(input_ids.to_vec(), [batch, len]), device),
            values: Tensor::from_data(TensorData::new(values.to_vec(), [batch, len]), device),
            species: species.map(|s| {
                assert_eq!(s.len(), batch, "species must be [batch]");
                Tensor::from_data(TensorData::new(s.to_vec(), [batch, 1]), device)
            }),
            attention_mask: attention_mask.map(|m| {
                assert_eq!(m.len(), batch * len, "attention_mask must be [batch, len]");
                Tensor::from_data(TensorData::new(m.to_vec(), [batch, len]), device)
            }),
        }
    }

    /// Batch size and padded length.
    pub fn dims(&self) -> [usize; 2] {
        self.input_ids.dims()
    }
}

/// Knobs of a forward pass that are not inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardOptions {
    /// Scale of every prior block (EmbeddingWarmup alpha; 1.0 in every released use).
    pub alpha: f32,
    /// Return the encoder input and every layer's output.
    pub output_hidden_states: bool,
    /// Which positions of the last layer the caller reads; the CPU encoder skips the work for
    /// the others, whose outputs are then zeros. [`OutputRows::All`], as the official model.
    pub rows: OutputRows,
}

/// Which positions of the encoder's output are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputRows {
    /// Every position, padding included (the official forward).
    #[default]
    All,
    /// Each cell's real positions (cell embeddings: the CLS and the mean over genes). On the
    /// CPU the padded rows are skipped in every layer.
    Real,
    /// Position 0 only (the CLS, all a classifier's pooler reads). On the CPU the padded rows
    /// are skipped in every layer, and the last layer computes only that row (its keys and
    /// values still come from every real row).
    Cls,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            output_hidden_states: false,
            rows: OutputRows::All,
        }
    }
}
