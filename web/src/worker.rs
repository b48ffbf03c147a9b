//! The annotation worker: a dedicated Web Worker that loads the same wasm bundle as the page
//! (`static/worker.js`) and runs [`crate::engine`]. Running in a worker keeps the page
//! responsive during the long CPU passes (wasm on stable Rust has no threads), and a run is
//! cancelled by terminating the worker.
//!
//! Requests run one at a time, in order: an annotation on WebGPU awaits each batch's read-back,
//! and requests that arrive meanwhile wait in a queue instead of interleaving with it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use burn::prelude::Device;
use genecompass_core::cells::CellSet;
use genecompass_core::data::{ByteSource, CachedSource, CellTable};
use genecompass_core::tasks::infer::BatchClassifier;
use genecompass_core::tasks::pca::pca_2d_fit;
use genecompass_core::tasks::umap::umap;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::annotated::{labelled_file_name, labelled_h5ad, predictions_by_row, truth_values};
use crate::blob_source::BlobSource;
use crate::engine::{AnnotateError, Annotator, ModelFiles, open_file_source};
use crate::layout::{Throttle, umap_options};
use crate::model_store::sha256_hex;
use crate::perturb::{LastRun, PERTURB_TOKENS, run_perturbation, species_named};
use crate::protocol::{CellRow, PerturbRequest, Reply, Request, RunRequest};
use crate::results::argmax;
use crate::webgpu::{self, Chosen};

thread_local! {
    /// Requests not yet handled, oldest first, and whether one is running.
    static QUEUE: RefCell<VecDeque<JsValue>> = const { RefCell::new(VecDeque::new()) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// The last model loaded, reused while the page asks for the same weights.
    static MODEL: RefCell<Option<Loaded>> = const { RefCell::new(None) };
    /// The cells of the last finished annotation, for perturbations.
    static LAST: RefCell<Option<LastRun>> = const { RefCell::new(None) };
    /// The predictions of the last finished annotation, by file row.
    static FINISHED: RefCell<Option<Finished>> = const { RefCell::new(None) };
    /// The pooled embeddings of the last finished annotation, `[cells × width]`, for UMAP.
    static POOLED: RefCell<Option<Pooled>> = const { RefCell::new(None) };
}

/// One model's instances: one per device it ran on. Perturbations always run on the CPU, so
/// after a WebGPU annotation the files stay, to build the CPU instance if one is asked for.
struct Loaded {
    key: String,
    files: Option<Rc<ModelFiles>>,
    cpu: Option<Rc<Annotator>>,
    gpu: Option<Rc<Annotator>>,
}

/// Cells' pooled embeddings, row-major.
struct Pooled {
    data: Vec<f32>,
    cells: usize,
    width: usize,
}

/// What a finished annotation leaves for writing the labelled h5ad and reading label columns.
struct Finished {
    /// The annotated file's name and SHA-256 (a later request must send the same bytes).
    file_name: String,
    sha256: String,
    /// Rows in the file.
    n_obs: usize,
    /// File row of each annotated cell.
    rows: Vec<usize>,
    /// Arg-max label index and its probability, per annotated cell.
    predicted: Vec<(usize, f32)>,
    /// Class names.
    labels: Vec<String>,
    /// The file's cell table.
    obs: CellTable,
}

/// Which reply a failed request gets: each leaves the others' results on the page.
#[derive(Clone, Copy)]
enum Failure {
    Annotate,
    Perturb,
    H5ad,
    Truth,
    Umap(u64),
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
        QUEUE.with_borrow_mut(|q| q.push_back(e.data()));
        if !BUSY.replace(true) {
            wasm_bindgen_futures::spawn_local(drain());
        }
    });
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    handler.forget();
    post(&Reply::Ready);
}

/// Handles queued requests in order until none is left.
async fn drain() {
    while let Some(data) = QUEUE.with_borrow_mut(VecDeque::pop_front) {
        if let Err((kind, message)) = handle(data).await {
            post(&match kind {
                Failure::Annotate => Reply::Failed { message },
                Failure::Perturb => Reply::PerturbFailed { message },
                Failure::H5ad => Reply::H5adFailed { message },
                Failure::Truth => Reply::TruthFailed { message },
                Failure::Umap(ticket) => Reply::UmapFailed { ticket, message },
            });
        }
    }
    BUSY.set(false);
}

fn bytes(parts: &js_sys::Array, i: u32) -> Vec<u8> {
    js_sys::Uint8Array::new(&parts.get(i)).to_vec()
}

/// One request: `[request JSON, bytes...]` (see [`Request`]). Errors say which request failed.
async fn handle(data: JsValue) -> Result<(), (Failure, String)> {
    let parts: js_sys::Array = data.dyn_into().map_err(|_| {
        (
            Failure::Annotate,
            "internal error: malformed request".to_string(),
        )
    })?;
    let req: Request = serde_json::from_str(&parts.get(0).as_string().unwrap_or_default())
        .map_err(|e| {
            (
                Failure::Annotate,
                format!("internal error: malformed request: {e}"),
            )
        })?;
    match req {
        Request::Annotate(req) => handle_annotate(&parts, req)
            .await
            .map_err(|m| (Failure::Annotate, m)),
        Request::Perturb(req) => perturb(&req).map_err(|m| (Failure::Perturb, m)),
        Request::WriteH5ad { file_name, replace } => {
            write_h5ad(&file_name, bytes(&parts, 1), replace).map_err(|m| (Failure::H5ad, m))
        }
        Request::Truth { column } => truth(&column).map_err(|m| (Failure::Truth, m)),
        Request::Umap { ticket } => layout_umap(ticket).map_err(|m| (Failure::Umap(ticket), m)),
    }
}

/// Posts a UMAP of the last annotation's pooled embeddings, with throttled progress.
fn layout_umap(ticket: u64) -> Result<(), String> {
    POOLED.with_borrow(|p| {
        let p = p.as_ref().ok_or(ANNOTATE_FIRST)?;
        let start = js_sys::Date::now();
        // umap reports every ≥ 0.5 %: a message per 2 % and 100 ms is plenty for a bar.
        let mut throttle = Throttle::new(0.02, 100.0);
        let points = umap(&p.data, p.cells, p.width, &umap_options(), |fraction| {
            if throttle.due(fraction, js_sys::Date::now()) {
                post(&Reply::UmapProgress { ticket, fraction });
            }
        })
        .map_err(|e| e.to_string())?;
        post(&Reply::Umap {
            ticket,
            points,
            seconds: (js_sys::Date::now() - start) / 1e3,
        });
        Ok(())
    })
}

const ANNOTATE_FIRST: &str = "annotate a file first (the worker holding the last annotation \
                              was stopped or has none)";

/// Posts the labelled h5ad of the last annotation, built from `file` (its bytes again).
fn write_h5ad(file_name: &str, file: Vec<u8>, replace: bool) -> Result<(), String> {
    FINISHED.with_borrow(|f| {
        let f = f.as_ref().ok_or(ANNOTATE_FIRST)?;
        if sha256_hex(&file) != f.sha256 {
            return Err(format!(
                "{file_name} is not the file that was annotated ({}) or it changed since; \
                 annotate it again",
                f.file_name
            ));
        }
        let by_row = predictions_by_row(f.n_obs, &f.rows, &f.predicted, &f.labels)?;
        let filtered = by_row.iter().filter(|p| p.is_none()).count();
        let out = labelled_h5ad(&file, file_name, &by_row, replace).map_err(|e| e.to_string())?;
        drop(file);
        let reply = Reply::H5ad {
            file_name: labelled_file_name(file_name),
            filtered,
        };
        let text = serde_json::to_string(&reply).expect("replies serialise");
        let data = js_sys::Uint8Array::from(&out[..]);
        drop(out);
        let msg = js_sys::Array::of2(&JsValue::from_str(&text), &data);
        // Transferred, not copied: the worker has no further use for it.
        let transfer = js_sys::Array::of1(&data.buffer());
        scope()
            .post_message_with_transfer(&msg, &transfer)
            .map_err(|e| format!("cannot hand the file to the page: {e:?}"))
    })
}

/// Posts a label column's values for the annotated cells.
fn truth(column: &str) -> Result<(), String> {
    FINISHED.with_borrow(|f| {
        let f = f.as_ref().ok_or(ANNOTATE_FIRST)?;
        let values = truth_values(&f.obs, column, &f.rows)?;
        post(&Reply::Truth {
            column: column.to_string(),
            values,
        });
        Ok(())
    })
}

/// The CPU instance of the loaded model, built from the kept files after a WebGPU annotation.
fn cpu_model() -> Result<Rc<Annotator>, String> {
    MODEL.with_borrow_mut(|slot| {
        let loaded = slot.as_mut().ok_or(ANNOTATE_FIRST)?;
        if let Some(a) = &loaded.cpu {
            return Ok(a.clone());
        }
        let files = loaded.files.clone().ok_or(ANNOTATE_FIRST)?;
        stage("Loading the model on the CPU (perturbations run there)");
        let gpu = loaded.gpu.as_ref().ok_or(ANNOTATE_FIRST)?;
        let a = Rc::new(
            Annotator::load(&gpu.name, &loaded.key, &files, &Device::flex())
                .map_err(|e| e.to_string())?,
        );
        loaded.cpu = Some(a.clone());
        Ok(a)
    })
}

/// Perturbs genes in the cells of the last annotation, with its model (on the CPU).
fn perturb(req: &PerturbRequest) -> Result<(), String> {
    let device = Device::flex();
    let no_cells = "annotate a file first: perturbations run on the cells of the last finished \
                    annotation";
    if LAST.with_borrow(Option::is_none) {
        return Err(no_cells.into());
    }
    let a = cpu_model().map_err(|_| no_cells.to_string())?;
    LAST.with_borrow(|last| {
        let last = last.as_ref().ok_or(no_cells)?;
        let start = js_sys::Date::now();
        let mut stage_start = (String::new(), start);
        let (genes, notes) = run_perturbation(&a, last, req, &device, |stage, done, total| {
            if stage_start.0 != stage {
                stage_start = (stage.to_string(), js_sys::Date::now());
            }
            post(&Reply::PerturbProgress {
                stage: stage.to_string(),
                done,
                total,
                seconds: (js_sys::Date::now() - stage_start.1) / 1e3,
            });
        })?;
        post(&Reply::Perturbed {
            genes,
            notes,
            seconds: (js_sys::Date::now() - start) / 1e3,
        });
        Ok(())
    })
}

/// The model of `req` on `chosen`'s device: reused when already loaded there, else built from
/// the request's files.
fn model_for(
    parts: &js_sys::Array,
    req: &RunRequest,
    chosen: &Chosen,
) -> Result<Rc<Annotator>, String> {
    MODEL.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|l| l.key != req.model.key) {
            *slot = Some(Loaded {
                key: req.model.key.clone(),
                files: None,
                cpu: None,
                gpu: None,
            });
        }
        let loaded = slot.as_mut().expect("set above");
        let have = if chosen.gpu { &loaded.gpu } else { &loaded.cpu };
        if let Some(a) = have {
            return Ok(a.clone());
        }
        stage(if chosen.gpu {
            "Loading the model onto the GPU"
        } else {
            "Loading the model"
        });
        let files = ModelFiles {
            config_json: bytes(parts, 2),
            weights: bytes(parts, 3),
            token_dict: bytes(parts, 4),
            weights_name: req.model.weights_name.clone(),
            token_dict_name: req.model.token_dict_name.clone(),
            medians: req.model.has_medians.then(|| bytes(parts, 5)),
        };
        let a = Rc::new(
            Annotator::load(&req.model.name, &req.model.key, &files, &chosen.device)
                .map_err(|e| e.to_string())?,
        );
        if chosen.gpu {
            loaded.files = Some(Rc::new(files));
            loaded.gpu = Some(a.clone());
        } else {
            loaded.cpu = Some(a.clone());
        }
        Ok(a)
    })
}

/// An annotation: `[request JSON, file, config, weights, token dict, medians?]` (see
/// [`RunRequest`]). The file comes as the page's `File` (read slice by slice) or as bytes.
async fn handle_annotate(parts: &js_sys::Array, req: RunRequest) -> Result<(), String> {
    // A new annotation replaces the cells perturbations run on, and the predictions.
    LAST.with_borrow_mut(|l| *l = None);
    FINISHED.with_borrow_mut(|f| *f = None);
    POOLED.with_borrow_mut(|p| *p = None);
    if req.backend != crate::protocol::BackendChoice::Cpu {
        stage("Looking for a WebGPU adapter");
    }
    let chosen = webgpu::choose(req.backend).await;
    let a = model_for(parts, &req, &chosen)?;
    let file = parts.get(1);
    let source: Arc<dyn ByteSource> = match file.dyn_into::<web_sys::Blob>() {
        Ok(blob) => Arc::new(CachedSource::new(
            BlobSource::new(blob)?,
            READ_BLOCK,
            READ_BLOCKS,
        )),
        Err(other) => Arc::new(js_sys::Uint8Array::new(&other).to_vec()),
    };
    annotate(&a, &req, source, &chosen)
        .await
        .map_err(|e| e.to_string())
}

/// The size of this worker's wasm memory: the most it has held, since wasm memory never
/// shrinks. Shown on the page, so users (and the benchmark) see what a file cost.
fn wasm_memory_bytes() -> Option<f64> {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().dyn_into().ok()?;
    let buffer: js_sys::ArrayBuffer = memory.buffer().dyn_into().ok()?;
    Some(buffer.byte_length() as f64)
}

/// How often result rows are posted to the page while a file is annotated.
const POST_EVERY_MS: f64 = 250.0;

/// Small reads of the file are served from the last blocks read: 8 × 1 MiB.
const READ_BLOCK: usize = 1 << 20;
const READ_BLOCKS: usize = 8;

async fn annotate(
    a: &Annotator,
    req: &RunRequest,
    file: Arc<dyn ByteSource>,
    chosen: &Chosen,
) -> Result<(), AnnotateError> {
    let device = &chosen.device;
    stage("Reading the file");
    let opened = open_file_source(&req.file_name, file, a)?;
    post(&Reply::Report(opened.report.clone()));
    let report_sha = opened.report.sha256.clone();
    let species = species_named(&opened.report.species);
    opened.check()?;
    stage("Quality control (a first pass over the file)");
    let mut planned = opened.plan(a)?;
    post(&Reply::Qc(planned.qc.clone()));
    let total = planned.cells_out;
    post(&Reply::Started {
        cells: total,
        labels: a.labels.clone(),
        backend: chosen.label.clone(),
    });
    let mut options = a.options(req.batch_size);
    options.batch.max_scores_per_head = chosen.max_scores_per_head(a.config.num_attention_heads);
    let runner = if chosen.gpu {
        BatchClassifier::for_ids_async(&a.model, &options, &planned.token_ids, planned.species)
            .await?
    } else {
        BatchClassifier::for_ids(&a.model, &options, &planned.token_ids, planned.species)
    };
    let c = a.labels.len();
    let start = js_sys::Date::now();
    let mut done = 0;
    // Per cell, what the plots and downloads need: the pooled embedding [cells, H] (PCA plot,
    // UMAP on request), the call, the file row. The tokens are dropped with their chunk, but
    // for the first cells, kept for perturbations up to a budget.
    let mut pooled: Vec<f32> = Vec::new();
    let mut width = 0;
    let mut predicted = Vec::with_capacity(total);
    let mut rows = Vec::with_capacity(total);
    let mut kept = CellSet {
        cells: Vec::new(),
        padded_len: None,
    };
    let mut kept_tokens = 0usize;
    let mut budget_open = true;
    // Rows go to the page at most every POST_EVERY_MS (the first at once): the page updates its
    // table, chart and counts per message, which on a large file with small batches cost more
    // than the inference.
    let mut outbox: Vec<CellRow> = Vec::new();
    let mut posted = f64::NEG_INFINITY;
    let mut stream = planned.stream()?;
    while let Some(chunk) = stream.next_chunk()? {
        let first = done;
        let mut chunk_predicted = vec![(0usize, 0f32); chunk.cells.len()];
        let mut batches = runner.plan(&chunk.cells);
        // The run's first batch is a single cell, so the first row shows after one cell's time,
        // not a full batch's (16 cells of 2,048 genes take 50 s on the Small shape's CPU path).
        if done == 0
            && let Some(first) = batches.first_mut()
            && first.len() > 1
        {
            let rest = first.split_off(1);
            batches.insert(1, rest);
        }
        for idx in batches {
            let pending = runner.start(&chunk.cells, &idx, device);
            let b = if chosen.gpu {
                pending.read_async().await?
            } else {
                pending.read()
            };
            if width == 0 && !idx.is_empty() {
                width = b.pooled.len() / idx.len();
                pooled = vec![0.0; total * width];
            }
            let mut out = Vec::with_capacity(idx.len());
            for (row, &ci) in idx.iter().enumerate() {
                let at = first + ci;
                pooled[at * width..(at + 1) * width]
                    .copy_from_slice(&b.pooled[row * width..(row + 1) * width]);
                let p = &b.probabilities[row * c..(row + 1) * c];
                chunk_predicted[ci] = argmax(p);
                out.push(CellRow {
                    index: at,
                    row: chunk.rows[ci],
                    name: chunk.names[ci].clone(),
                    probabilities: p.to_vec(),
                });
            }
            done += idx.len();
            outbox.extend(out);
            let now = js_sys::Date::now();
            if now - posted >= POST_EVERY_MS {
                posted = now;
                post(&Reply::Batch {
                    rows: std::mem::take(&mut outbox),
                    done,
                    seconds: (now - start) / 1e3,
                });
            }
        }
        predicted.extend(chunk_predicted);
        rows.extend_from_slice(&chunk.rows);
        for cell in chunk.cells.cells {
            budget_open &= kept_tokens + cell.len() <= PERTURB_TOKENS;
            if !budget_open {
                break;
            }
            kept_tokens += cell.len();
            kept.cells.push(cell);
        }
    }
    drop(stream);
    if !outbox.is_empty() {
        post(&Reply::Batch {
            rows: outbox,
            done,
            seconds: (js_sys::Date::now() - start) / 1e3,
        });
    }
    stage("Projecting the cell embeddings (PCA)");
    let cells = if width == 0 { 0 } else { done };
    let (pca, basis) = pca_2d_fit(&pooled, cells, width);
    post(&Reply::Embedding {
        points: pca.points,
        explained: pca.explained,
    });
    POOLED.with_borrow_mut(|p| {
        *p = Some(Pooled {
            data: pooled,
            cells,
            width,
        });
    });
    LAST.with_borrow_mut(|l| {
        *l = Some(LastRun {
            before: predicted.iter().take(kept.len()).map(|p| p.0).collect(),
            cells: kept,
            annotated: done,
            species,
            basis,
        });
    });
    let n_obs = planned.n_obs;
    FINISHED.with_borrow_mut(|f| {
        *f = Some(Finished {
            file_name: req.file_name.clone(),
            sha256: report_sha,
            n_obs,
            rows,
            predicted,
            labels: a.labels.clone(),
            obs: planned.into_obs(),
        });
    });
    post(&Reply::Done {
        cells: done,
        seconds: (js_sys::Date::now() - start) / 1e3,
        memory_bytes: wasm_memory_bytes(),
    });
    Ok(())
}
