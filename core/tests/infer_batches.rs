//! `BatchClassifier` (the browser's batch-at-a-time path) against `classify_cells` (the CLI's)
//! and the official classifier logits of `reference-tiny`.

mod common;

use burn::prelude::*;
use common::{assert_close, read_f32, read_i64, tiny};
use genecompass_core::batch::{BatchOptions, Padding};
use genecompass_core::cells::{CellSet, Species, TokenizedCell};
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::model::GeneCompassForSequenceClassification;
use genecompass_core::tasks::infer::{BatchClassifier, InferOptions, classify_cells, embed_cells};

/// The fixture's six cells without padding.
fn fixture_cells() -> CellSet {
    let ints = read_i64(tiny().join("inputs.safetensors"));
    let values = &read_f32(tiny().join("inputs.safetensors"))["values"].1;
    let (ids, lengths, species) = (&ints["input_ids"], &ints["lengths"], &ints["species"]);
    let cells = (0..6)
        .map(|i| {
            let n = lengths[i] as usize;
            TokenizedCell {
                input_ids: ids[i * 16..i * 16 + n].iter().map(|&v| v as u32).collect(),
                values: values[i * 16..i * 16 + n].to_vec(),
                species: Species::from_code(species[i]).expect("0 or 1"),
                label: None,
            }
        })
        .collect();
    CellSet {
        cells,
        padded_len: Some(16),
    }
}

/// The fixture's fine-tuned classifier.
fn tiny_classifier(dev: &Device) -> GeneCompassForSequenceClassification {
    let ck = load_checkpoint(&tiny().join("classifier"), WeightsFormat::Safetensors, dev)
        .expect("load classifier");
    let LoadedModel::Classifier(model) = ck.model else {
        panic!("expected a classifier")
    };
    model
}

fn options(batch_size: usize) -> InferOptions {
    InferOptions {
        batch: BatchOptions {
            batch_size,
            padding: Padding::Dynamic,
            sort_by_length: true,
            // The official classification forward takes no species.
            use_species: false,
            attention_mask: true,
            truncate_values: false,
            max_scores_per_head: None,
        },
        ..Default::default()
    }
}

#[test]
fn batch_classifier_matches_classify_cells_and_reference_logits() {
    let dev = Device::flex();
    let model = &tiny_classifier(&dev);
    let cells = fixture_cells();
    let whole = classify_cells(model, &cells, &options(16), &dev, |_| {});
    let want = &read_f32(tiny().join("outputs.safetensors"))["cls_logits"].1;
    assert_close("classify_cells logits", &whole.logits, want, 1e-4);

    // Batches of 2, longest first: rows come back in the order of each batch's indices.
    let runner = BatchClassifier::new(model, &options(2));
    let plan = runner.plan(&cells);
    assert_eq!(plan.len(), 3, "6 cells in batches of 2");
    assert_eq!(plan[0], vec![1, 3], "longest cells (16, 14 genes) first");
    let mut logits = vec![0f32; 6 * 5];
    let mut seen = 0;
    for idx in &plan {
        let b = runner.run(&cells, idx, &dev);
        assert_eq!(b.classes, 5);
        assert_eq!(b.probabilities.len(), idx.len() * 5);
        for (row, &ci) in idx.iter().enumerate() {
            logits[ci * 5..ci * 5 + 5].copy_from_slice(&b.logits[row * 5..row * 5 + 5]);
            let p: f32 = b.probabilities[row * 5..row * 5 + 5].iter().sum();
            assert!(
                (p - 1.0).abs() < 1e-5,
                "probabilities of cell {ci} sum to {p}"
            );
        }
        seen += idx.len();
    }
    assert_eq!(seen, 6);
    assert_close("batched logits", &logits, want, 1e-4);
}

/// Rounding batch lengths up (the GPU default) pads more but changes no number.
#[test]
fn padding_to_a_multiple_is_exact() {
    let dev = Device::flex();
    let model = &tiny_classifier(&dev);
    let cells = fixture_cells();
    let want = &read_f32(tiny().join("outputs.safetensors"))["cls_logits"].1;
    let mut o = options(2);
    o.batch.padding = Padding::Multiple { of: 8, max: 64 };
    let got = classify_cells(model, &cells, &o, &dev, |_| {});
    assert_close("logits, lengths rounded to 8", &got.logits, want, 1e-4);

    let p = Padding::Multiple { of: 64, max: 2048 };
    assert_eq!(p.length(1169, Some(2048)), 1216);
    assert_eq!(p.length(2048, None), 2048);
    assert_eq!(p.length(1, None), 64);
    let tiny_model = Padding::Multiple { of: 64, max: 16 };
    assert_eq!(
        tiny_model.length(12, Some(16)),
        16,
        "never past the model's positions"
    );
    assert_eq!(
        tiny_model.length(20, None),
        20,
        "a longer cell is never cut"
    );
}

/// Polls a future to completion on this thread. flex answers read-backs at once, so this is
/// all the executor the async path needs natively (a browser's event loop drives it there).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// The browser's WebGPU path (folding after an awaited homolog read, results read back
/// asynchronously) gives exactly the numbers of the synchronous path, mouse cells included.
#[test]
fn async_read_back_equals_the_synchronous_path() {
    let dev = Device::flex();
    let model = &tiny_classifier(&dev);
    let cells = fixture_cells();
    assert!(
        cells.cells.iter().any(|c| c.species == Species::Mouse),
        "the fixture has mouse cells, so the homolog index is used"
    );
    let mut o = options(2);
    o.batch.use_species = true;
    let sync = BatchClassifier::for_cells(model, &o, &cells);
    let asynch = block_on(BatchClassifier::for_cells_async(model, &o, &cells)).expect("homolog");
    for idx in sync.plan(&cells) {
        let a = sync.run(&cells, &idx, &dev);
        let b = block_on(asynch.start(&cells, &idx, &dev).read_async()).expect("read back");
        assert_eq!(a.logits, b.logits, "logits of batch {idx:?}");
        assert_eq!(a.probabilities, b.probabilities);
        assert_eq!(a.pooled, b.pooled);
    }
}

/// Cell embeddings without the mean run the last layer for the CLS rows only: the CLS must equal
/// the full last layer's, with and without species, and the mean is left out.
#[test]
fn cls_only_embeddings_equal_the_full_last_layer() {
    let dev = Device::flex();
    let ck = load_checkpoint(&tiny(), WeightsFormat::Safetensors, &dev).expect("load MLM");
    let cells = fixture_cells();
    for use_species in [true, false] {
        let mut full = options(4);
        full.batch.use_species = use_species;
        let cls_only = InferOptions {
            mean_embedding: false,
            ..full
        };
        let a = embed_cells(ck.bert(), &cells, &full, &dev, |_| {});
        let b = embed_cells(ck.bert(), &cells, &cls_only, &dev, |_| {});
        assert_eq!(a.mean.len(), a.cls.len());
        assert!(
            b.mean.is_empty(),
            "the mean was computed without being asked for"
        );
        assert_close("CLS-only vs full last layer", &b.cls, &a.cls, 1e-5);
        assert!(
            a.cls.iter().any(|v| v.abs() > 1e-3),
            "CLS outputs are all ~0"
        );
    }
}
