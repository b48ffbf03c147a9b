//! The "Perturb genes" panel: genes and mode in, progress, then one table per perturbed gene
//! (cells, CLS shift, label changes, most affected genes). The moved cells are drawn on the
//! embedding plot ([`super::EmbeddingPlot`]).

use std::collections::BTreeMap;

use leptos::prelude::*;

use crate::protocol::{GenePerturbation, PerturbMode, Reply};

/// Everything the page shows about the last perturbation.
#[derive(Clone, Copy)]
pub struct PerturbState {
    /// A perturbation is running in the worker.
    pub running: RwSignal<bool>,
    stage: RwSignal<String>,
    error: RwSignal<Option<String>>,
    done: RwSignal<usize>,
    total: RwSignal<usize>,
    seconds: RwSignal<f64>,
    mode: RwSignal<PerturbMode>,
    /// Per gene results of the last finished perturbation.
    pub results: RwSignal<Vec<GenePerturbation>>,
    notes: RwSignal<Vec<String>>,
}

impl PerturbState {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            running: RwSignal::new(false),
            stage: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            done: RwSignal::new(0),
            total: RwSignal::new(0),
            seconds: RwSignal::new(0.0),
            mode: RwSignal::new(PerturbMode::Delete),
            results: RwSignal::new(Vec::new()),
            notes: RwSignal::new(Vec::new()),
        }
    }

    /// Forgets everything (a new annotation starts).
    pub fn reset(&self) {
        self.running.set(false);
        self.stage.set(String::new());
        self.error.set(None);
        self.done.set(0);
        self.total.set(0);
        self.seconds.set(0.0);
        self.results.set(Vec::new());
        self.notes.set(Vec::new());
    }

    /// A perturbation was sent.
    pub fn start(&self, mode: PerturbMode) {
        self.reset();
        self.mode.set(mode);
        self.running.set(true);
        self.stage.set("Perturbing".into());
    }

    /// The perturbation stopped; the message says why.
    pub fn fail(&self, message: String) {
        self.error.set(Some(message));
        self.stage.set("Perturbation stopped".into());
        self.running.set(false);
    }

    /// Applies a perturbation reply; gives other replies back.
    pub fn apply(&self, reply: Reply) -> Option<Reply> {
        match reply {
            Reply::PerturbProgress {
                stage,
                done,
                total,
                seconds,
            } => {
                self.stage.set(stage);
                self.done.set(done);
                self.total.set(total);
                self.seconds.set(seconds);
            }
            Reply::Perturbed {
                genes,
                notes,
                seconds,
            } => {
                let n: usize = genes.iter().map(|g| g.cells).sum();
                self.stage.set(format!(
                    "Perturbed {} gene(s) in {n} cells in {seconds:.1} s",
                    genes.len()
                ));
                self.results.set(genes);
                self.notes.set(notes);
                self.running.set(false);
            }
            Reply::PerturbFailed { message } => self.fail(message),
            other => return Some(other),
        }
        None
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
}

/// One gene's result tables.
fn gene_view(g: GenePerturbation, labels: &[String], mode: PerturbMode) -> impl IntoView + use<> {
    let name = |i: usize| {
        labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {i}"))
    };
    let mut moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    for p in g.points.iter().filter(|p| p.before != p.after) {
        *moves.entry((name(p.before), name(p.after))).or_default() += 1;
    }
    let moves = moves
        .into_iter()
        .map(|((a, b), n)| format!("{a} → {b}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let what = match mode {
        PerturbMode::Delete => "deleted",
        PerturbMode::Overexpress => "over-expressed ×10000",
    };
    let changed = format!("{} of {}", g.changed(), g.points.len());
    let rows = g
        .top
        .iter()
        .enumerate()
        .map(|(i, r)| {
            view! {
                <tr>
                    <td>{i + 1}</td>
                    <td>{r.symbol.clone().unwrap_or_else(|| "–".into())}</td>
                    <td>{r.ensembl.clone()}</td>
                    <td>{r.cells}</td>
                    <td>{format!("{:.4}", r.mean_cos)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="perturb-gene" data-gene=g.ensembl.clone()>
            <h3>{format!("{} {what}", g.display())}</h3>
            <table class="perturb-summary">
                <tr><th>"Cells perturbed"</th><td class="perturb-cells">{g.cells}</td></tr>
                <tr><th>"Mean CLS cosine shift (1 − cos)"</th>
                    <td class="perturb-shift">{fmt_opt(g.cls_shift)}</td></tr>
                <tr><th>"Predicted label changed"</th>
                    <td class="perturb-changed">{changed}</td></tr>
                <tr><th>"Label changes"</th><td class="perturb-moves">{moves}</td></tr>
            </table>
            <table class="perturb-affected">
                <caption>"Most affected genes (lowest mean cosine of the gene's embedding)"</caption>
                <thead><tr><th>"#"</th><th>"Symbol"</th><th>"Ensembl id"</th><th>"Cells"</th>
                    <th>"Mean cosine"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// The panel. `on_run` gets the typed genes and the mode; `disabled` while an annotation runs.
#[component]
pub fn PerturbPanel(
    state: PerturbState,
    labels: RwSignal<Vec<String>>,
    #[prop(into)] disabled: Signal<bool>,
    on_run: Callback<(String, PerturbMode)>,
) -> impl IntoView {
    let genes = RwSignal::new(String::new());
    let mode = RwSignal::new(PerturbMode::Delete);
    let run = move || {
        if !state.running.get_untracked() {
            on_run.run((genes.get_untracked(), mode.get_untracked()));
        }
    };
    let speed = move || {
        let (d, s) = (state.done.get(), state.seconds.get());
        (state.running.get() && s > 0.0).then(|| format!("{:.1} perturbations/s", d as f64 / s))
    };
    let results = move || {
        let labels = labels.get();
        let mode = state.mode.get();
        state
            .results
            .get()
            .into_iter()
            .map(|g| gene_view(g, &labels, mode))
            .collect_view()
    };
    view! {
        <section id="perturb-panel" class="perturb">
            <h2>"Perturb genes"</h2>
            <p class="small">"In-silico deletion or over-expression in the cells above, one gene at a \
                time, with the same model; nothing leaves this machine."</p>
            <div class="controls">
                <label>
                    "Genes "
                    <input id="perturb-genes" type="text" placeholder="Ins2, ENSMUSG00000059552"
                        prop:value=move || genes.get()
                        on:input=move |ev| genes.set(event_target_value(&ev))
                        on:keydown=move |ev| if ev.key() == "Enter" { run() } />
                </label>
                <label>
                    "Mode "
                    <select id="perturb-mode" on:change=move |ev| mode.set(
                        if event_target_value(&ev) == "overexpress" {
                            PerturbMode::Overexpress
                        } else {
                            PerturbMode::Delete
                        })>
                        <option value="delete">"delete"</option>
                        <option value="overexpress">"over-express ×10000"</option>
                    </select>
                </label>
                <button id="perturb-button" on:click=move |_| run()
                    disabled=move || state.running.get() || disabled.get()>"Run"</button>
            </div>
            <p id="perturb-stage" class="stage">{move || state.stage.get()}</p>
            <Show when=move || state.running.get()>
                <div class="progress-line">
                    <progress id="perturb-progress" max=move || state.total.get()
                        value=move || state.done.get()></progress>
                    <span id="perturb-progress-text">{move || format!(
                        "{} / {} perturbed cells", state.done.get(), state.total.get())}</span>
                    <span id="perturb-speed">{speed}</span>
                </div>
            </Show>
            <div id="perturb-error" class="error" role="alert"
                style:display=move || if state.error.with(Option::is_some) { "block" } else { "none" }>
                {move || state.error.get()}
            </div>
            <ul id="perturb-notes" class="warnings">
                {move || state.notes.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
            </ul>
            <div id="perturb-results">{results}</div>
        </section>
    }
}
