//! Annotate: pick a classifier (from the model list or the registry, [`models`]) and a local
//! file; the worker reads, tokenizes and classifies it while this page shows the report, a
//! progress bar, and results as batches arrive. Afterwards: the run's numbers ([`summary`]),
//! downloads ([`export`]: CSV, h5ad with the labels) and "Save to registry" ([`save`]). The
//! embedding plot shows the PCA or, on request, a UMAP ([`layout`]).

mod export;
mod layout;
mod models;
mod save;
mod summary;

use std::cell::RefCell;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, HtmlInputElement};

use crate::bridge::WorkerHandle;
use crate::components::{
    EmbeddingPlot, FileReportView, LabelChart, PerturbPanel, PerturbState, QcReportView,
    ResultsTable,
};
use crate::layout::{Layout, caption};
use crate::model_store::{ModelEntry, fetch_model};
use crate::pages::registry::format_bytes;
use crate::perturb::parse_gene_list;
use crate::protocol::{
    BackendChoice, CellRow, FileReport, ModelMeta, PerturbMode, PerturbRequest, QcReport, Reply,
    Request, RunRequest,
};
use crate::results::{label_counts, to_csv};
use export::{Export, H5adDownload, download};
use layout::{LayoutPicker, LayoutState};
use models::{ModelList, ModelPicker};
use save::SavePanel;
use summary::{RunSummary, Truth};

thread_local! {
    // Browser objects are not `Send`, so they live here rather than in signals.
    static FILE: RefCell<Option<File>> = const { RefCell::new(None) };
    static WORKER: RefCell<Option<WorkerHandle>> = const { RefCell::new(None) };
}

/// Everything the page shows about one run.
#[derive(Clone, Copy)]
struct RunState {
    stage: RwSignal<String>,
    error: RwSignal<Option<String>>,
    running: RwSignal<bool>,
    report: RwSignal<Option<FileReport>>,
    qc: RwSignal<Option<QcReport>>,
    labels: RwSignal<Vec<String>>,
    rows: RwSignal<Vec<CellRow>>,
    total: RwSignal<usize>,
    done: RwSignal<usize>,
    seconds: RwSignal<f64>,
    /// The worker's peak wasm memory, in bytes, once a run is done.
    memory: RwSignal<Option<f64>>,
    backend: RwSignal<String>,
    finished: RwSignal<bool>,
    points: RwSignal<Vec<[f32; 2]>>,
    explained: RwSignal<[f64; 2]>,
    layout: LayoutState,
    perturb: PerturbState,
    /// The model of this run, and where its files came from.
    model: RwSignal<Option<ModelEntry>>,
    model_source: RwSignal<Option<(String, bool)>>,
    export: Export,
    truth: Truth,
}

impl RunState {
    fn new() -> Self {
        Self {
            stage: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            running: RwSignal::new(false),
            report: RwSignal::new(None),
            qc: RwSignal::new(None),
            labels: RwSignal::new(Vec::new()),
            rows: RwSignal::new(Vec::new()),
            total: RwSignal::new(0),
            done: RwSignal::new(0),
            seconds: RwSignal::new(0.0),
            memory: RwSignal::new(None),
            backend: RwSignal::new(String::new()),
            finished: RwSignal::new(false),
            points: RwSignal::new(Vec::new()),
            explained: RwSignal::new([0.0; 2]),
            layout: LayoutState::new(),
            perturb: PerturbState::new(),
            model: RwSignal::new(None),
            model_source: RwSignal::new(None),
            export: Export::new(),
            truth: Truth::new(),
        }
    }

    fn reset(&self) {
        self.error.set(None);
        self.report.set(None);
        self.qc.set(None);
        self.labels.set(Vec::new());
        self.rows.set(Vec::new());
        self.total.set(0);
        self.done.set(0);
        self.seconds.set(0.0);
        self.memory.set(None);
        self.finished.set(false);
        self.points.set(Vec::new());
        self.explained.set([0.0; 2]);
        self.layout.reset();
        self.perturb.reset();
        self.model.set(None);
        self.model_source.set(None);
        self.export.reset();
        self.truth.reset();
    }

    fn fail(&self, message: String) {
        self.error.set(Some(message));
        self.stage.set("Stopped".into());
        self.running.set(false);
    }

    fn apply(&self, reply: Reply, bytes: Option<js_sys::Uint8Array>) {
        let Some(reply) = self.perturb.apply(reply).and_then(|r| self.layout.apply(r)) else {
            return;
        };
        match reply {
            Reply::H5ad {
                file_name,
                filtered,
            } => self.export.done(&file_name, filtered, bytes),
            Reply::H5adFailed { message } => self.export.fail(message),
            Reply::Truth { column, values } => self.truth.values.set(Some((column, values))),
            Reply::TruthFailed { message } => self.truth.error.set(Some(message)),
            // Perturbation and UMAP replies were taken by `self.perturb` and `self.layout` above.
            Reply::Ready
            | Reply::PerturbProgress { .. }
            | Reply::Perturbed { .. }
            | Reply::PerturbFailed { .. }
            | Reply::UmapProgress { .. }
            | Reply::Umap { .. }
            | Reply::UmapFailed { .. } => {}
            Reply::Stage { message } => self.stage.set(message),
            Reply::Report(r) => self.report.set(Some(r)),
            Reply::Qc(q) => self.qc.set(Some(q)),
            Reply::Started {
                cells,
                labels,
                backend,
            } => {
                self.total.set(cells);
                self.labels.set(labels);
                self.backend.set(backend);
                self.stage.set("Classifying".into());
            }
            Reply::Batch {
                rows,
                done,
                seconds,
            } => {
                self.rows.update(|v| v.extend(rows));
                self.done.set(done);
                self.seconds.set(seconds);
            }
            Reply::Embedding { points, explained } => {
                self.points.set(points);
                self.explained.set(explained);
            }
            Reply::Done {
                cells,
                seconds,
                memory_bytes,
            } => {
                self.done.set(cells);
                self.seconds.set(seconds);
                self.memory.set(memory_bytes);
                self.finished.set(true);
                self.running.set(false);
                self.stage.set(format!("Done: {cells} cells"));
            }
            Reply::Failed { message } => {
                // A crashed worker cannot be reused; the next run starts a fresh one.
                if message.starts_with("the annotation worker stopped") {
                    WORKER.with_borrow_mut(|w| *w = None);
                }
                let umap = self.layout.busy();
                if umap {
                    // The annotation's results stay; its embeddings went with the worker.
                    self.layout.fail(format!(
                        "{message}. Annotate the file again to lay its cells out by UMAP"
                    ));
                }
                if self.perturb.running.get_untracked() {
                    // The annotation's results stay; its cells went with the worker.
                    self.perturb.fail(format!(
                        "{message}. Annotate the file again to perturb its cells"
                    ));
                } else if self.export.busy.get_untracked() {
                    self.export.fail(format!(
                        "{message}. Annotate the file again to download it with labels"
                    ));
                } else if !umap {
                    self.fail(message);
                }
            }
        }
    }
}

async fn file_bytes(file: &File) -> Result<js_sys::Uint8Array, String> {
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("cannot read {}: {e:?}", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buf))
}

/// Fetches the model (cache first), reads the file and hands both to the worker.
async fn start_run(
    state: RunState,
    entry: ModelEntry,
    batch_size: usize,
    backend: BackendChoice,
) -> Result<(), String> {
    let file = FILE
        .with_borrow(Clone::clone)
        .ok_or("choose a file first")?;
    state.stage.set(format!("Fetching model {}", entry.name));
    let fetched = fetch_model(&entry).await?;
    let source = if fetched.from_cache {
        "loaded from the browser cache".to_string()
    } else {
        format!(
            "downloaded ({}) and cached",
            format_bytes(fetched.downloaded as f64)
        )
    };
    state.stage.set(format!("Model {source}"));
    state.model_source.set(Some((
        format!("{}: {source}", entry.name),
        fetched.from_cache,
    )));
    state.model.set(Some(entry.clone()));
    let f = fetched.files;
    // The file goes as a handle: the worker reads it a slice at a time, never whole.
    let mut parts: Vec<JsValue> = vec![
        file.clone().into(),
        js_sys::Uint8Array::from(&f.config_json[..]).into(),
        js_sys::Uint8Array::from(&f.weights[..]).into(),
        js_sys::Uint8Array::from(&f.token_dict[..]).into(),
    ];
    if let Some(m) = &f.medians {
        parts.push(js_sys::Uint8Array::from(&m[..]).into());
    }
    let req = RunRequest {
        file_name: file.name(),
        model: ModelMeta {
            name: entry.name.clone(),
            key: entry.weights.sha256.clone(),
            weights_name: f.weights_name.clone(),
            token_dict_name: f.token_dict_name.clone(),
            has_medians: f.medians.is_some(),
        },
        batch_size,
        backend,
    };
    WORKER.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(WorkerHandle::spawn(move |r, b| state.apply(r, b))?);
        }
        slot.as_ref()
            .expect("spawned above")
            .run(&Request::Annotate(req), parts);
        Ok::<(), String>(())
    })
}

/// The annotate page.
#[component]
pub fn AnnotatePage() -> impl IntoView {
    let state = RunState::new();
    let list = ModelList::new();
    let file_name = RwSignal::new(None::<String>);
    let threshold = RwSignal::new(0.0f32);
    let batch_size = RwSignal::new(16usize);
    let backend = RwSignal::new(BackendChoice::Auto);

    let run = move || {
        if state.running.get_untracked() {
            return;
        }
        let entry = match list.chosen() {
            Ok(e) => e,
            Err(why) => return state.fail(why),
        };
        state.reset();
        state.running.set(true);
        let bs = batch_size.get_untracked();
        let be = backend.get_untracked();
        spawn_local(async move {
            if let Err(e) = start_run(state, entry, bs, be).await {
                state.fail(e);
            }
        });
    };
    let on_file = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let file = input.files().and_then(|f| f.get(0));
        file_name.set(file.as_ref().map(File::name));
        let chosen = file.is_some();
        FILE.with_borrow_mut(|f| *f = file);
        if chosen {
            run();
        }
    };
    let cancel = move |_| {
        WORKER.with_borrow_mut(|w| *w = None);
        if state.perturb.running.get_untracked() {
            state.perturb.fail(
                "Cancelled; the worker and its cells were stopped: annotate the file again to \
                 perturb it"
                    .into(),
            );
        } else {
            state.running.set(false);
            state.stage.set("Cancelled".into());
        }
    };
    let perturb = Callback::new(move |(text, mode): (String, PerturbMode)| {
        let p = state.perturb;
        let genes = parse_gene_list(&text);
        if genes.is_empty() {
            p.fail("Type at least one gene: Ensembl ids or symbols, comma-separated".into());
            return;
        }
        p.start(mode);
        // The perturbed cells are projected on the annotation's PCA axes: show those.
        state.layout.choice.set(Layout::Pca);
        let req = Request::Perturb(PerturbRequest {
            genes,
            mode,
            batch_size: batch_size.get_untracked(),
        });
        let sent = WORKER.with_borrow(|w| w.as_ref().map(|w| w.run(&req, Vec::new())).is_some());
        if !sent {
            p.fail(
                "The worker holding the annotated cells was stopped: annotate the file again"
                    .into(),
            );
        }
    });

    let counts = Signal::derive(move || {
        let labels = state.labels.get();
        let t = threshold.get();
        state.rows.with(|r| label_counts(r, &labels, t))
    });
    let shown_points = Signal::derive(move || match state.layout.shown() {
        Layout::Umap => state.layout.umap.get().unwrap_or_default(),
        Layout::Pca => state.points.get(),
    });
    let shown_caption =
        Signal::derive(move || caption(state.layout.shown(), state.explained.get()));
    let speed = move || {
        let (d, s) = (state.done.get(), state.seconds.get());
        (s > 0.0).then(|| {
            // Three significant digits: a large model on the CPU runs under one cell/s.
            let r = d as f64 / s;
            let digits = 2 - (r >= 10.0) as usize - (r >= 100.0) as usize;
            format!("{r:.digits$} cells/s")
        })
    };
    let csv = move |_| {
        let text = state.rows.with_untracked(|r| {
            to_csv(r, &state.labels.get_untracked(), threshold.get_untracked())
        });
        if let Err(e) = download(
            &wasm_bindgen::JsValue::from_str(&text),
            "text/csv",
            "genecompass_annotation.csv",
        ) {
            state
                .error
                .set(Some(format!("Cannot download the CSV: {e}")));
        }
    };

    view! {
        <section class="controls">
            <ModelPicker list=list />
            <label>
                "Single-cell file (h5ad, 10x .h5, CSV/TSV) "
                <input id="file-input" type="file" accept=".h5ad,.h5,.csv,.tsv,.txt,.gz"
                    on:change=on_file />
            </label>
            <label class="small">
                "Batch size "
                <input id="batch-size" type="number" min="1" max="256" prop:value=move || batch_size.get()
                    on:change=move |ev| batch_size.set(event_target_value(&ev).parse().unwrap_or(16).clamp(1, 256)) />
            </label>
            <label class="small">
                "Run on "
                <select id="backend-choice" prop:value=move || backend.get().as_str()
                    on:change=move |ev| backend.set(BackendChoice::parse(&event_target_value(&ev)))>
                    <option value="auto">"Auto (GPU if it has one)"</option>
                    <option value="webgpu">"WebGPU"</option>
                    <option value="cpu">"CPU"</option>
                </select>
            </label>
            <button id="run-button" on:click=move |_| run()
                disabled=move || state.running.get() || file_name.get().is_none()>"Annotate"</button>
            <button id="cancel-button" on:click=cancel
                disabled=move || !state.running.get() && !state.perturb.running.get()>"Cancel"</button>
        </section>

        <p id="stage" class="stage">{move || state.stage.get()}</p>
        <p id="model-source" class="note"
            data-from-cache=move || state.model_source.get().map(|s| s.1.to_string())>
            {move || state.model_source.get().map(|s| format!("Model {}", s.0))}
        </p>
        <div id="error" class="error" role="alert"
            style:display=move || if state.error.with(Option::is_some) { "block" } else { "none" }>
            {move || state.error.get()}
        </div>

        {move || state.report.get().map(|r| view! { <h2>"File"</h2><FileReportView report=r /> })}
        {move || state.qc.get().map(|q| view! { <h2>"Tokenization"</h2><QcReportView qc=q /> })}

        <Show when=move || { state.total.get() > 0 }>
            <h2>"Inference"</h2>
            <div class="progress-line">
                <progress id="progress" max=move || state.total.get() value=move || state.done.get()></progress>
                <span id="progress-text">{move || format!("{} / {} cells", state.done.get(), state.total.get())}</span>
                <span id="speed">{speed}</span>
                <span id="backend" class="backend">{move || state.backend.get()}</span>
                <span id="worker-memory" title="The annotation worker's memory: it holds the chunk of cells being processed and the results, never the whole file">
                    {move || state.memory.get().map(|b| format!("worker memory {}", format_bytes(b)))}
                </span>
            </div>
            <h2>"Results"</h2>
            <label class="threshold">
                "Unassigned below confidence "
                <input id="threshold" type="range" min="0" max="1" step="0.01"
                    prop:value=move || threshold.get().to_string()
                    on:input=move |ev| threshold.set(event_target_value(&ev).parse().unwrap_or(0.0)) />
                <span id="threshold-value">{move || format!("{:.2}", threshold.get())}</span>
            </label>
            <Show when=move || state.finished.get()>
                <RunSummary state=state threshold=threshold.into() />
            </Show>
            <div class="downloads">
                <button id="download-csv" on:click=csv disabled=move || !state.finished.get()>
                    "Download CSV (labels + probabilities)"
                </button>
                <H5adDownload state=state />
            </div>
            <Show when=move || state.finished.get()>
                <h2>"Save to registry"</h2>
                <SavePanel state=state threshold=threshold.into() teams=list.teams />
            </Show>
            <LabelChart counts=counts />
            <Show when=move || state.points.with(|p| !p.is_empty())>
                <LayoutPicker layout=state.layout cells=Signal::derive(move || state.points.with(Vec::len)) />
                <EmbeddingPlot points=shown_points caption=shown_caption
                    on_pca=Signal::derive(move || state.layout.shown() == Layout::Pca)
                    rows=state.rows labels=state.labels threshold=threshold
                    perturbed=state.perturb.results />
            </Show>
            <Show when=move || state.finished.get()>
                <PerturbPanel state=state.perturb labels=state.labels
                    disabled=Signal::derive(move || state.running.get()) on_run=perturb />
            </Show>
            <ResultsTable rows=state.rows labels=state.labels threshold=threshold />
        </Show>
    }
}
