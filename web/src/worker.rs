//! The annotation worker: a dedicated Web Worker that loads the same wasm bundle as the page
//! (`static/worker.js`) and runs [`crate::engine`] synchronously. Running in a worker keeps the
//! page responsive during the long CPU passes (wasm on stable Rust has no threads), and a run is
//! cancelled by terminating the worker.

use std::cell::RefCell;

use burn::prelude::Device;
use genecompass_core::tasks::infer::BatchClassifier;
use genecompass_core::tasks::pca::pca_2d;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::engine::{AnnotateError, Annotator, ModelFiles, open_file};
use crate::protocol::{CellRow, Reply, RunRequest};

/// Shown on the page next to the speed.
pub const BACKEND: &str = "CPU: burn flex (wasm, single thread)";

thread_local! {
    /// The last model loaded, reused while the page asks for the same weights.
    static MODEL: RefCell<Option<Annotator>> = const { RefCell::new(None) };
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(reply: &Reply) {
    let text = serde_json::to_string(reply).expect("replies serialise");
    // Posting only fails for uncloneable values; a string always clones.
    let _ = scope().post_message(&JsValue::from_str(&text));
}

fn stage(message: &str) {
    post(&Reply::Stage {
        message: message.into(),
    });
}

/// Installs the message handler and tells the page the worker is ready.
pub fn start() {
    console_error_panic_hook::set_once();
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(|e: MessageEvent| {
        if let Err(message) = handle(e.data()) {
            post(&Reply::Failed { message });
        }
    });
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    handler.forget();
    post(&Reply::Ready);
}

fn bytes(parts: &js_sys::Array, i: u32) -> Vec<u8> {
    js_sys::Uint8Array::new(&parts.get(i)).to_vec()
}

/// One run: `[request JSON, file, config, weights, token dict, medians?]` (see [`RunRequest`]).
fn handle(data: JsValue) -> Result<(), String> {
    let parts: js_sys::Array = data
        .dyn_into()
        .map_err(|_| "internal error: malformed request".to_string())?;
    let req: RunRequest = serde_json::from_str(&parts.get(0).as_string().unwrap_or_default())
        .map_err(|e| format!("internal error: malformed request: {e}"))?;
    let device = Device::flex();
    MODEL.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|a| a.key != req.model.key) {
            stage("Loading the model");
            *slot = None;
            let files = ModelFiles {
                config_json: bytes(&parts, 2),
                weights: bytes(&parts, 3),
                token_dict: bytes(&parts, 4),
                token_dict_name: req.model.token_dict_name.clone(),
                medians: req.model.has_medians.then(|| bytes(&parts, 5)),
            };
            let a = Annotator::load(&req.model.name, &req.model.key, &files, &device)
                .map_err(|e| e.to_string())?;
            *slot = Some(a);
        }
        let a = slot.as_ref().expect("loaded above");
        annotate(a, &req, bytes(&parts, 1), &device).map_err(|e| e.to_string())
    })
}

fn annotate(
    a: &Annotator,
    req: &RunRequest,
    file: Vec<u8>,
    device: &Device,
) -> Result<(), AnnotateError> {
    stage("Reading the file");
    let opened = open_file(&req.file_name, file, a)?;
    post(&Reply::Report(opened.report.clone()));
    opened.check()?;
    stage("Tokenizing (quality control, ranking)");
    let t = opened.tokenize(a)?;
    post(&Reply::Qc(t.qc.clone()));
    post(&Reply::Started {
        cells: t.cells.len(),
        labels: a.labels.clone(),
        backend: BACKEND.into(),
    });
    let runner = BatchClassifier::new(&a.model, &a.options(req.batch_size));
    let c = a.labels.len();
    let start = js_sys::Date::now();
    let mut done = 0;
    // Pooled embeddings, for the PCA plot: [cells, H].
    let mut pooled: Vec<f32> = Vec::new();
    let mut width = 0;
    for idx in runner.plan(&t.cells) {
        let b = runner.run(&t.cells, &idx, device);
        if width == 0 && !idx.is_empty() {
            width = b.pooled.len() / idx.len();
            pooled = vec![0.0; t.cells.len() * width];
        }
        for (row, &ci) in idx.iter().enumerate() {
            pooled[ci * width..(ci + 1) * width]
                .copy_from_slice(&b.pooled[row * width..(row + 1) * width]);
        }
        let rows = idx
            .iter()
            .enumerate()
            .map(|(row, &ci)| CellRow {
                index: ci,
                name: t.names[ci].clone(),
                probabilities: b.probabilities[row * c..(row + 1) * c].to_vec(),
            })
            .collect();
        done += idx.len();
        post(&Reply::Batch {
            rows,
            done,
            seconds: (js_sys::Date::now() - start) / 1e3,
        });
    }
    stage("Projecting the cell embeddings (PCA)");
    let pca = pca_2d(&pooled, if width == 0 { 0 } else { done }, width);
    post(&Reply::Embedding {
        points: pca.points,
        explained: pca.explained,
    });
    post(&Reply::Done {
        cells: done,
        seconds: (js_sys::Date::now() - start) / 1e3,
    });
    Ok(())
}
