//! Engine tests on the `reference-tiny` classifier and real files from `shared/data`.

use std::path::PathBuf;

use burn::prelude::Device;
use genecompass_core::tasks::infer::{BatchClassifier, classify_cells};

use super::*;

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
}

fn tiny_files() -> ModelFiles {
    let tiny = shared().join("fixtures/reference-tiny");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    ModelFiles {
        config_json: read(tiny.join("classifier/config.json")),
        weights: read(tiny.join("classifier/model.safetensors")),
        weights_name: "model.safetensors".into(),
        token_dict: read(tiny.join("token_dict.json")),
        token_dict_name: "token_dict.json".into(),
        medians: None,
    }
}

fn tiny() -> Annotator {
    Annotator::load("tiny", "k", &tiny_files(), &Device::flex()).expect("tiny classifier loads")
}

fn baron() -> Vec<u8> {
    std::fs::read(shared().join("data/h5ad/baron_mouse_pancreas_822.h5ad")).expect("baron h5ad")
}

#[test]
fn baron_h5ad_is_reported_tokenized_and_classified_in_batches() {
    let dev = Device::flex();
    let a = tiny();
    assert_eq!(a.labels.len(), 5);
    let opened = open_file("baron.h5ad", baron(), &a).expect("opens");
    let r = &opened.report;
    assert_eq!((r.n_cells, r.n_genes), (822, 14878));
    assert!(r.h5ad, "{}", r.format);
    assert_eq!(r.sha256, crate::model_store::sha256_hex(&baron()));
    assert!(
        r.label_columns
            .iter()
            .any(|c| c.name == "cell_type" && c.distinct == 13),
        "{:?}",
        r.label_columns
    );
    assert_eq!(r.species, "mouse");
    assert_eq!(r.identifier, "symbols");
    assert!(r.raw_counts, "{}", r.values);
    assert_eq!(
        r.in_vocab, 16,
        "16 of the 18 mouse vocabulary genes are in the file"
    );
    let t = opened.tokenize(&a).expect("tokenizes");
    // The same numbers `genecompass-train tokenize` prints for this file and dictionary.
    assert_eq!((t.qc.cells_in, t.qc.cells_kept), (822, 809));
    assert_eq!(t.names.len(), 809);
    assert!(t.names[0].starts_with("mouse1_lib"), "{}", t.names[0]);
    assert!(t.cells.cells.iter().all(|c| c.label.is_none()));
    // Each cell knows its file row; the 13 rows QC dropped are missing.
    assert_eq!((t.rows.len(), t.n_obs), (809, 822));
    assert!(t.rows.windows(2).all(|w| w[0] < w[1]), "file order");
    for (i, &r) in t.rows.iter().enumerate() {
        assert_eq!(t.names[i], t.obs.names[r]);
    }
    assert!(
        t.obs.column("__genecompass_row__").is_none(),
        "synthetic column not kept"
    );

    // Batch by batch (the worker's path) equals the CLI's whole-set path.
    let options = a.options(16);
    let whole = classify_cells(&a.model, &t.cells, &options, &dev, |_| {});
    let runner = BatchClassifier::new(&a.model, &options);
    let mut seen = 0;
    for idx in runner.plan(&t.cells) {
        let b = runner.run(&t.cells, &idx, &dev);
        for (row, &ci) in idx.iter().enumerate() {
            let got = &b.probabilities[row * 5..row * 5 + 5];
            let want = &whole.probabilities[ci * 5..ci * 5 + 5];
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "cell {ci}: {got:?} vs {want:?}");
            }
        }
        seen += idx.len();
    }
    assert_eq!(seen, 809);
}

/// The worker's path: the file read on demand, tokenized and classified chunk by chunk with one
/// fold of the file's tokens, gives the whole-file results (same cells, rows, probabilities).
#[test]
fn chunked_stream_equals_whole_file_classification() {
    use genecompass_core::data::CachedSource;
    let dev = Device::flex();
    let a = tiny();
    let whole = open_file("baron.h5ad", baron(), &a)
        .and_then(|o| o.tokenize(&a))
        .expect("tokenizes");
    let options = a.options(16);
    let want = classify_cells(&a.model, &whole.cells, &options, &dev, |_| {});

    // A small block cache, so that reads cross block edges all the time.
    let source: Arc<dyn ByteSource> = Arc::new(CachedSource::new(baron(), 4096, 4));
    let opened = open_file_source("baron.h5ad", source, &a).expect("opens");
    assert_eq!(
        opened.report.sha256,
        crate::model_store::sha256_hex(&baron())
    );
    let mut planned = opened.plan_chunked(&a, 100).expect("plans");
    assert_eq!(planned.cells_out, 809);
    assert_eq!(planned.qc, whole.qc);
    let runner = BatchClassifier::for_ids(&a.model, &options, &planned.token_ids, planned.species);
    let mut stream = planned.stream().expect("streams");
    let (mut done, mut chunks) = (0, 0);
    while let Some(chunk) = stream.next_chunk().expect("chunk") {
        assert!(chunk.cells.len() <= 100);
        for idx in runner.plan(&chunk.cells) {
            let b = runner.run(&chunk.cells, &idx, &dev);
            for (row, &ci) in idx.iter().enumerate() {
                let at = done + ci;
                assert_eq!(chunk.rows[ci], whole.rows[at]);
                assert_eq!(chunk.names[ci], whole.names[at]);
                assert_eq!(
                    chunk.cells.cells[ci].input_ids,
                    whole.cells.cells[at].input_ids
                );
                let got = &b.probabilities[row * 5..row * 5 + 5];
                let want = &want.probabilities[at * 5..at * 5 + 5];
                for (g, w) in got.iter().zip(want) {
                    assert!((g - w).abs() < 1e-5, "cell {at}: {got:?} vs {want:?}");
                }
            }
        }
        done += chunk.cells.len();
        chunks += 1;
    }
    assert_eq!((done, chunks), (809, 9));
    assert!(stream.next_chunk().expect("end").is_none());
}

#[test]
fn malformed_file_is_a_clear_error() {
    let a = tiny();
    let e = open_file("broken.h5ad", b"\x89HDF\r\n\x1a\nnot really".to_vec(), &a)
        .err()
        .expect("refused");
    assert!(matches!(e, AnnotateError::Data(_)), "{e:?}");
    assert!(e.to_string().contains("broken.h5ad"), "{e}");
    let e = open_file("empty.csv", Vec::new(), &a)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn file_without_known_genes_names_the_problem() {
    let a = tiny();
    let csv = b"cell,FOO1,BAR2,BAZ3\nc1,1,2,3\nc2,4,0,1\n".to_vec();
    let opened = open_file("odd.csv", csv, &a).expect("readable");
    assert_eq!(opened.report.species, "unknown");
    let e = opened.check().expect_err("refused");
    let msg = e.to_string();
    assert!(matches!(e, AnnotateError::NoKnownGenes { .. }), "{msg}");
    assert!(
        msg.contains("no known genes") && msg.contains("FOO1"),
        "{msg}"
    );
}

#[test]
fn normalised_values_are_refused_before_tokenizing() {
    let a = tiny();
    let csv = b"cell,Actb,Gapdh,Ins2\nc1,0.5,2.25,3\nc2,1.5,0,1\n".to_vec();
    let e = open_file("lognorm.csv", csv, &a)
        .and_then(|o| o.check())
        .expect_err("refused");
    assert!(matches!(e, AnnotateError::NotCounts { .. }), "{e}");
    assert!(e.to_string().contains("raw counts"), "{e}");
}

#[test]
fn dictionary_larger_than_the_model_is_a_vocabulary_mismatch() {
    let mut files = tiny_files();
    let mut dict: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&files.token_dict).unwrap();
    dict.insert("ENSG00000000003".into(), 40.into());
    files.token_dict = serde_json::to_vec(&dict).unwrap();
    let e = Annotator::load("tiny", "k", &files, &Device::flex())
        .err()
        .expect("refused");
    assert!(matches!(e, AnnotateError::VocabMismatch { .. }), "{e}");
    assert!(e.to_string().contains("41 tokens"), "{e}");
}

#[test]
fn pretraining_model_is_not_a_classifier() {
    let tiny = shared().join("fixtures/reference-tiny");
    let mut files = tiny_files();
    files.config_json = std::fs::read(tiny.join("config.json")).unwrap();
    files.weights = std::fs::read(tiny.join("model.safetensors")).unwrap();
    let e = Annotator::load("mlm", "k", &files, &Device::flex())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("not a cell-type classifier"), "{e}");
}

#[test]
fn native_burnpack_weights_predict_like_the_safetensors_ones() {
    use genecompass_core::checkpoint::{WeightsFormat, load_checkpoint, save_native};
    let dev = Device::flex();
    let tiny_dir = shared().join("fixtures/reference-tiny/classifier");
    let ck = load_checkpoint(&tiny_dir, WeightsFormat::Safetensors, &dev).expect("tiny loads");
    let dir = std::env::temp_dir().join(format!("gc-web-native-{}", std::process::id()));
    save_native(&ck, &dir, false).expect("native written");
    let mut files = tiny_files();
    files.config_json = std::fs::read(dir.join("config.json")).unwrap();
    files.weights = std::fs::read(dir.join("model.bpk")).unwrap();
    files.weights_name = "model.bpk".into();
    let native = Annotator::load("tiny-native", "n", &files, &dev).expect("burnpack loads");
    std::fs::remove_dir_all(&dir).ok();
    let a = tiny();
    assert_eq!(native.labels, a.labels);
    let cells = open_file("baron.h5ad", baron(), &a)
        .unwrap()
        .tokenize(&a)
        .unwrap()
        .cells;
    let want = classify_cells(&a.model, &cells, &a.options(16), &dev, |_| {});
    let got = classify_cells(&native.model, &cells, &native.options(16), &dev, |_| {});
    assert_eq!(
        got.probabilities, want.probabilities,
        "same weights, same numbers"
    );

    // A pickle checkpoint is refused with what to do.
    files.weights_name = "pytorch_model.bin".into();
    let e = Annotator::load("bin", "b", &files, &dev)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("genecompass-train"), "{e}");
}
