//! The run in numbers: cells, cells assigned at the threshold, mean confidence and, against a
//! label column of the file the user picks as truth, accuracy and macro F1 of the arg-max calls.
//! The worker reads the column (it keeps the file's cell table and each cell's row); the
//! numbers come from [`crate::results`], and are what "Save to registry" records.

use leptos::prelude::*;

use super::{RunState, WORKER};
use crate::pages::registry::format_metric;
use crate::protocol::Request;
use crate::results::{Agreement, Summary, agreement, summarize};

/// The chosen label column and its values for the annotated cells.
#[derive(Clone, Copy)]
pub(super) struct Truth {
    /// The column chosen ("" for none).
    pub column: RwSignal<String>,
    /// `(column, one value per annotated cell)`, once the worker sent them.
    pub values: RwSignal<Option<(String, Vec<String>)>>,
    pub error: RwSignal<Option<String>>,
}

impl Truth {
    pub fn new() -> Self {
        Self {
            column: RwSignal::new(String::new()),
            values: RwSignal::new(None),
            error: RwSignal::new(None),
        }
    }

    pub fn reset(self) {
        self.column.set(String::new());
        self.values.set(None);
        self.error.set(None);
    }

    fn choose(self, column: String) {
        self.error.set(None);
        self.values.set(None);
        self.column.set(column.clone());
        if column.is_empty() {
            return;
        }
        let req = Request::Truth { column };
        let sent = WORKER.with_borrow(|w| w.as_ref().map(|w| w.run(&req, Vec::new())).is_some());
        if !sent {
            self.error.set(Some(
                "The worker holding the annotation was stopped: annotate the file again".into(),
            ));
        }
    }
}

/// The summary at `threshold` and, with a truth column, the agreement (tracked).
pub(super) fn metrics(state: RunState, threshold: Signal<f32>) -> (Summary, Option<Agreement>) {
    let t = threshold.get();
    let column = state.truth.column.get();
    state.rows.with(|rows| {
        let s = summarize(rows, t);
        let a = state.truth.values.with(|v| {
            let (c, values) = v.as_ref()?;
            if *c != column {
                return None;
            }
            state.labels.with(|l| agreement(rows, l, values))
        });
        (s, a)
    })
}

/// The numbers, with the truth column picker.
#[component]
pub(super) fn RunSummary(state: RunState, threshold: Signal<f32>) -> impl IntoView {
    let truth = state.truth;
    let columns = move || {
        state.report.with(|r| {
            r.as_ref()
                .map(|r| r.label_columns.clone())
                .unwrap_or_default()
        })
    };
    let m = Memo::new(move |_| metrics(state, threshold));
    let pct = |a: usize, b: usize| format!("{:.1} %", 100.0 * a as f64 / b.max(1) as f64);
    view! {
        <dl id="run-summary" class="report">
            <dt>"Cells classified"</dt><dd id="summary-cells">{move || m.get().0.n_cells}</dd>
            <dt>"Assigned at the threshold"</dt>
            <dd id="summary-assigned" data-value=move || m.get().0.n_assigned>
                {move || { let s = m.get().0; format!("{} ({})", s.n_assigned, pct(s.n_assigned, s.n_cells)) }}
            </dd>
            <dt>"Mean confidence"</dt>
            <dd id="summary-confidence" data-value=move || m.get().0.mean_confidence.to_string()>
                {move || format_metric(m.get().0.mean_confidence)}
            </dd>
            <dt><label for="truth-column">"Compare with the file's labels"</label></dt>
            <dd>
                <select id="truth-column" prop:value=move || truth.column.get()
                    on:change=move |ev| truth.choose(event_target_value(&ev))>
                    <option value="">"(none)"</option>
                    {move || columns().into_iter().map(|c| {
                        let name = c.name.clone();
                        view! {
                            <option value=c.name.clone()
                                prop:selected=move || truth.column.get() == name>
                                {format!("{} ({} values)", c.name, c.distinct)}
                            </option>
                        }
                    }).collect_view()}
                </select>
                {move || columns().is_empty().then(|| view! {
                    <span class="note">" The file has no text column to compare with."</span>
                })}
            </dd>
            {move || m.get().1.map(|a| view! {
                <dt>"Accuracy (arg-max calls)"</dt>
                <dd id="summary-accuracy" data-value=a.accuracy.to_string()>
                    {format!("{} on {} cells with a label", format_metric(a.accuracy), a.n)}
                </dd>
                <dt>"Macro F1"</dt>
                <dd id="summary-macro-f1" data-value=a.macro_f1.to_string()>{format_metric(a.macro_f1)}</dd>
                <dt>"Labels the model knows"</dt>
                <dd id="summary-known">
                    {format!("{} of the column's {} labels are among the model's classes", a.known_classes, a.truth_classes)}
                </dd>
            })}
        </dl>
        {move || (!truth.column.get().is_empty() && truth.values.with(Option::is_none)
            && truth.error.with(Option::is_none))
            .then(|| view! { <p class="note">"Reading the column…"</p> })}
        <p id="truth-error" class="error" role="alert">{move || truth.error.get()}</p>
    }
}
