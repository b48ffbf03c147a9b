//! Batched inference over a [`CellSet`]: cell embeddings, hidden states and class
//! probabilities, in input order whatever the batching. Shared by the CLI and the browser.

use burn::prelude::*;

use crate::batch::{BatchOptions, make_batch, plan_batches};
use crate::cells::{CellSet, Species};
use crate::model::{
    BertModel, FoldedEmbedding, ForwardOptions, GeneCompassForSequenceClassification,
    KnowledgeBertEmbeddings, ModelInput, OutputRows, ReadBackError,
};

/// Inference settings.
#[derive(Debug, Clone, Copy)]
pub struct InferOptions {
    /// Batching and input conventions.
    pub batch: BatchOptions,
    /// Prior scale α (1.0 for every released use).
    pub alpha: f32,
    /// Use the folded embedding tables (exact up to rounding, faster).
    pub folded: bool,
    /// Keep the full `[N, L+1, H]` hidden states (memory: N·L·H floats).
    pub keep_hidden_states: bool,
    /// Compute the mean over genes ([`Embeddings::mean`]). Without it and without the hidden
    /// states, only the CLS is read, so on the CPU the last layer computes one row per cell
    /// (see [`OutputRows::Cls`]): 4–7 % less time on a Base-shaped model, 13 % on Small
    /// (`bench/inference/RESULTS.md`).
    pub mean_embedding: bool,
}

impl Default for InferOptions {
    fn default() -> Self {
        Self {
            batch: BatchOptions::default(),
            alpha: 1.0,
            folded: true,
            keep_hidden_states: false,
            mean_embedding: true,
        }
    }
}

/// Per-cell outputs, row-major.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    /// Hidden width H.
    pub hidden: usize,
    /// CLS output of the last layer (the species token). `[N, H]`
    pub cls: Vec<f32>,
    /// Mean of the last layer over each cell's real genes. `[N, H]`; empty without
    /// [`InferOptions::mean_embedding`].
    pub mean: Vec<f32>,
    /// Sequence length of `last_hidden_state` without the CLS (0 when not kept).
    pub seq_len: usize,
    /// Last layer, CLS first, zeros beyond a cell's computed length. `[N, seq_len+1, H]`
    pub last_hidden_state: Vec<f32>,
}

/// Encodes one batch: `(input, last_hidden_state, pooled)`. `folded` is the precomputed
/// embedding (see [`InferOptions::folded`]).
fn encode_batch(
    bert: &BertModel,
    folded: Option<&FoldedEmbedding>,
    cells: &CellSet,
    idx: &[usize],
    options: &InferOptions,
    rows: OutputRows,
    device: &Device,
) -> (ModelInput, Tensor<3>, Option<Tensor<2>>) {
    let fwd = ForwardOptions {
        alpha: options.alpha,
        output_hidden_states: false,
        rows,
    };
    let input = make_batch(cells, idx, &options.batch, device);
    let out = match folded {
        Some(f) => {
            let emb = f.forward(
                &bert.embeddings,
                input.input_ids.clone(),
                input.values.clone(),
                input.species.clone(),
                options.alpha,
            );
            bert.encode(emb, &input, fwd)
        }
        None => bert.forward(&input, fwd),
    };
    (input, out.last_hidden_state, out.pooled)
}

/// The embedding folded over the genes of `cells` only (see [`FoldedEmbedding::fold_for_ids`]).
pub fn fold_for_cells(emb: &KnowledgeBertEmbeddings, cells: &CellSet) -> FoldedEmbedding {
    fold_for_cells_with(emb, &emb.homolog_ids(), cells)
}

/// [`fold_for_cells`] with the homolog index already read ([`FoldedEmbedding::fold_for_ids_with`]).
fn fold_for_cells_with(
    emb: &KnowledgeBertEmbeddings,
    homolog: &[i64],
    cells: &CellSet,
) -> FoldedEmbedding {
    let all = cells.cells.iter();
    let remapped = all.clone().filter(|c| c.species != Species::Human);
    FoldedEmbedding::fold_for_ids_with(
        emb,
        homolog,
        all.flat_map(|c| c.input_ids.iter().copied()),
        remapped.flat_map(|c| c.input_ids.iter().copied()),
    )
}

/// Runs `bert` over batches, calling `run` on each batch's encoder input.
fn for_each_batch(
    bert: &BertModel,
    cells: &CellSet,
    options: &InferOptions,
    device: &Device,
    mut each: impl FnMut(&[usize], &ModelInput, Tensor<3>, Option<Tensor<2>>),
) {
    let folded = options
        .folded
        .then(|| fold_for_cells(&bert.embeddings, cells));
    // Only the kept hidden states read padded positions, and only they and the mean read rows
    // other than the CLS.
    let rows = if options.keep_hidden_states {
        OutputRows::All
    } else if options.mean_embedding {
        OutputRows::Real
    } else {
        OutputRows::Cls
    };
    for idx in plan_batches(cells, &options.batch) {
        let (input, last, pooled) =
            encode_batch(bert, folded.as_ref(), cells, &idx, options, rows, device);
        each(&idx, &input, last, pooled);
    }
}

/// Cell embeddings (and optionally hidden states) of every cell.
pub fn embed_cells(
    bert: &BertModel,
    cells: &CellSet,
    options: &InferOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Embeddings {
    let h = bert.embeddings.word_embeddings.weight.dims()[1];
    let n = cells.len();
    let has_cls = bert.cls_embedding.is_some();
    let seq_len = if options.keep_hidden_states {
        let longest = cells.cells.iter().map(|c| c.len()).max().unwrap_or(0);
        options.batch.padding.length(longest, cells.padded_len)
    } else {
        0
    };
    let off = usize::from(has_cls);
    let mut e = Embeddings {
        hidden: h,
        cls: vec![0.0; n * h],
        mean: vec![0.0; if options.mean_embedding { n * h } else { 0 }],
        seq_len,
        last_hidden_state: vec![
            0.0;
            if options.keep_hidden_states {
                n * (seq_len + off) * h
            } else {
                0
            }
        ],
    };
    for_each_batch(bert, cells, options, device, |idx, _, last, _| {
        let [b, s, _] = last.dims();
        let data = last.into_data().try_to_vec::<f32>().expect("f32 output");
        for (row, &ci) in idx.iter().enumerate() {
            let cell = &data[row * s * h..(row + 1) * s * h];
            e.cls[ci * h..(ci + 1) * h].copy_from_slice(&cell[..h]);
            if options.mean_embedding {
                let len = cells.cells[ci].len().max(1);
                let genes = &cell[off * h..];
                let m = &mut e.mean[ci * h..(ci + 1) * h];
                for j in 0..len.min(s - off) {
                    for (acc, v) in m.iter_mut().zip(&genes[j * h..(j + 1) * h]) {
                        *acc += v;
                    }
                }
                m.iter_mut().for_each(|v| *v /= len as f32);
            }
            if options.keep_hidden_states {
                let rows = (seq_len + off) * h;
                let dst = &mut e.last_hidden_state[ci * rows..(ci + 1) * rows];
                let k = s.min(seq_len + off) * h;
                dst[..k].copy_from_slice(&cell[..k]);
            }
        }
        progress(b);
    });
    e
}

/// Class probabilities and logits of every cell.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Number of classes C.
    pub classes: usize,
    /// Logits. `[N, C]`
    pub logits: Vec<f32>,
    /// Softmax probabilities. `[N, C]`
    pub probabilities: Vec<f32>,
    /// Pooler output (the classifier's cell embedding). `[N, H]`
    pub pooled: Vec<f32>,
}

impl Predictions {
    /// Arg-max class of each cell.
    pub fn argmax(&self) -> Vec<usize> {
        self.probabilities
            .chunks(self.classes.max(1))
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                    )
                    .0
            })
            .collect()
    }
}

/// Outputs of one batch of [`BatchClassifier::run`], rows in the order of the given indices.
#[derive(Debug, Clone, Default)]
pub struct BatchPredictions {
    /// Number of classes C.
    pub classes: usize,
    /// Logits. `[B, C]`
    pub logits: Vec<f32>,
    /// Softmax probabilities. `[B, C]`
    pub probabilities: Vec<f32>,
    /// Pooler output. `[B, H]`
    pub pooled: Vec<f32>,
}

/// A classifier that runs one batch at a time, for callers that must hand control back between
/// batches (the browser shows progress and stays responsive). The embedding tables are folded
/// once here, not per batch: folding costs about as much as a few batches on a full-size model.
/// [`classify_cells`] is built on it, so both paths give the same numbers.
pub struct BatchClassifier<'m> {
    model: &'m GeneCompassForSequenceClassification,
    folded: Option<FoldedEmbedding>,
    options: InferOptions,
}

impl<'m> BatchClassifier<'m> {
    /// Prepares `model` (folding its embedding when `options.folded`).
    pub fn new(model: &'m GeneCompassForSequenceClassification, options: &InferOptions) -> Self {
        Self {
            model,
            folded: options
                .folded
                .then(|| FoldedEmbedding::fold(&model.bert.embeddings)),
            options: *options,
        }
    }

    /// Like [`BatchClassifier::new`], folding only the rows that `cells` use: far less work
    /// than the whole vocabulary. Only batches of `cells` may then be run.
    pub fn for_cells(
        model: &'m GeneCompassForSequenceClassification,
        options: &InferOptions,
        cells: &CellSet,
    ) -> Self {
        Self {
            model,
            folded: options
                .folded
                .then(|| fold_for_cells(&model.bert.embeddings, cells)),
            options: *options,
        }
    }

    /// [`BatchClassifier::for_cells`] for devices that cannot be read synchronously (a
    /// browser's WebGPU): the one read-back it needs is awaited.
    pub async fn for_cells_async(
        model: &'m GeneCompassForSequenceClassification,
        options: &InferOptions,
        cells: &CellSet,
    ) -> Result<Self, ReadBackError> {
        let folded = if options.folded {
            let emb = &model.bert.embeddings;
            let homolog = emb.homolog_ids_async().await?;
            Some(fold_for_cells_with(emb, &homolog, cells))
        } else {
            None
        };
        Ok(Self {
            model,
            folded,
            options: *options,
        })
    }

    /// Like [`BatchClassifier::for_cells`] for cells not yet tokenized: folds the rows of
    /// `ids`, every token the cells can hold (a file's [`crate::tokenize::TokenizePlan::token_ids`]),
    /// so that a file can be classified chunk by chunk with one fold. `species`: the cells'.
    pub fn for_ids(
        model: &'m GeneCompassForSequenceClassification,
        options: &InferOptions,
        ids: &[u32],
        species: Species,
    ) -> Self {
        let homolog = if options.folded {
            model.bert.embeddings.homolog_ids()
        } else {
            Vec::new()
        };
        Self::with_ids(model, options, &homolog, ids, species)
    }

    /// [`BatchClassifier::for_ids`] for devices that cannot be read synchronously.
    pub async fn for_ids_async(
        model: &'m GeneCompassForSequenceClassification,
        options: &InferOptions,
        ids: &[u32],
        species: Species,
    ) -> Result<Self, ReadBackError> {
        let homolog = if options.folded {
            model.bert.embeddings.homolog_ids_async().await?
        } else {
            Vec::new()
        };
        Ok(Self::with_ids(model, options, &homolog, ids, species))
    }

    fn with_ids(
        model: &'m GeneCompassForSequenceClassification,
        options: &InferOptions,
        homolog: &[i64],
        ids: &[u32],
        species: Species,
    ) -> Self {
        let remapped: &[u32] = if species == Species::Human { &[] } else { ids };
        Self {
            model,
            folded: options.folded.then(|| {
                FoldedEmbedding::fold_for_ids_with(
                    &model.bert.embeddings,
                    homolog,
                    ids.iter().copied(),
                    remapped.iter().copied(),
                )
            }),
            options: *options,
        }
    }

    /// The batches to run, as cell indices (see [`plan_batches`]).
    pub fn plan(&self, cells: &CellSet) -> Vec<Vec<usize>> {
        plan_batches(cells, &self.options.batch)
    }

    /// Queues the cells `idx` of `cells` as one batch on the device; the results are read with
    /// [`PendingBatch::read`] or [`PendingBatch::read_async`].
    pub fn start(&self, cells: &CellSet, idx: &[usize], device: &Device) -> PendingBatch {
        let bert = &self.model.bert;
        let (_, _, pooled) = encode_batch(
            bert,
            self.folded.as_ref(),
            cells,
            idx,
            &self.options,
            OutputRows::Cls,
            device,
        );
        let pooled = pooled.expect("classifier has a pooler");
        PendingBatch {
            logits: self.model.classifier.forward(pooled.clone()),
            pooled,
            classes: self.model.num_labels(),
        }
    }

    /// Classifies the cells `idx` of `cells` as one batch.
    pub fn run(&self, cells: &CellSet, idx: &[usize], device: &Device) -> BatchPredictions {
        self.start(cells, idx, device).read()
    }
}

/// A batch queued on its device, not yet read back.
pub struct PendingBatch {
    logits: Tensor<2>,
    pooled: Tensor<2>,
    classes: usize,
}

impl PendingBatch {
    /// Reads the results, blocking until the device is done (native backends).
    pub fn read(self) -> BatchPredictions {
        let logits = self.logits.into_data();
        let pooled = self.pooled.into_data();
        predictions(self.classes, logits, pooled)
    }

    /// Reads the results without blocking: the only way on a browser's WebGPU, where the
    /// worker must hand control back to the event loop while the GPU works.
    pub async fn read_async(self) -> Result<BatchPredictions, ReadBackError> {
        let logits = self.logits.into_data_async().await;
        let logits = logits.map_err(ReadBackError::new)?;
        let pooled = self.pooled.into_data_async().await;
        let pooled = pooled.map_err(ReadBackError::new)?;
        Ok(predictions(self.classes, logits, pooled))
    }
}

/// Logits and pooled output read back → predictions with softmax probabilities.
fn predictions(c: usize, logits: TensorData, pooled: TensorData) -> BatchPredictions {
    let logits = logits.try_to_vec::<f32>().expect("f32");
    let mut probabilities = Vec::with_capacity(logits.len());
    for r in logits.chunks(c.max(1)) {
        let max = r.iter().cloned().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = r.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        probabilities.extend(exp.iter().map(|v| v / sum));
    }
    BatchPredictions {
        classes: c,
        logits,
        probabilities,
        pooled: pooled.try_to_vec::<f32>().expect("f32"),
    }
}

/// Runs a classifier over every cell.
pub fn classify_cells(
    model: &GeneCompassForSequenceClassification,
    cells: &CellSet,
    options: &InferOptions,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Predictions {
    let c = model.num_labels();
    let h = model.bert.embeddings.word_embeddings.weight.dims()[1];
    let n = cells.len();
    let mut p = Predictions {
        classes: c,
        logits: vec![0.0; n * c],
        probabilities: vec![0.0; n * c],
        pooled: vec![0.0; n * h],
    };
    let runner = BatchClassifier::for_cells(model, options, cells);
    for idx in runner.plan(cells) {
        let b = runner.run(cells, &idx, device);
        for (row, &ci) in idx.iter().enumerate() {
            p.logits[ci * c..(ci + 1) * c].copy_from_slice(&b.logits[row * c..(row + 1) * c]);
            p.probabilities[ci * c..(ci + 1) * c]
                .copy_from_slice(&b.probabilities[row * c..(row + 1) * c]);
            p.pooled[ci * h..(ci + 1) * h].copy_from_slice(&b.pooled[row * h..(row + 1) * h]);
        }
        progress(idx.len());
    }
    p
}
