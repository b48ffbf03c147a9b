//! "Layout: PCA | UMAP" beside the embedding plot. PCA comes with every annotation; choosing
//! UMAP asks the worker (which keeps the last annotation's pooled embeddings) for one, shows its
//! progress, and keeps it for switching back and forth until the next annotation.
//!
//! Perturbations are projected on the PCA axes of the annotation (core's `PcaBasis`), so their
//! diamonds and arrows only mean something on the PCA layout: starting a perturbation switches
//! the plot back to PCA, and the UMAP layout draws no perturbation layer (its caption says so).

use leptos::prelude::*;

use super::WORKER;
use crate::layout::{Layout, umap_refusal};
use crate::protocol::{Reply, Request};

/// The layout chosen and the UMAP's state.
#[derive(Clone, Copy)]
pub(super) struct LayoutState {
    /// What the select shows (UMAP while it is computed, with PCA still drawn).
    pub choice: RwSignal<Layout>,
    /// The UMAP of this annotation, once computed.
    pub umap: RwSignal<Option<Vec<[f32; 2]>>>,
    /// Fraction done while the worker computes it.
    pub progress: RwSignal<Option<f32>>,
    /// Seconds the last UMAP took.
    pub seconds: RwSignal<Option<f64>>,
    pub error: RwSignal<Option<String>>,
    /// Sent with each request; bumped by [`Self::reset`] so late replies of an earlier
    /// annotation are dropped.
    ticket: RwSignal<u64>,
}

impl LayoutState {
    pub fn new() -> Self {
        Self {
            choice: RwSignal::new(Layout::Pca),
            umap: RwSignal::new(None),
            progress: RwSignal::new(None),
            seconds: RwSignal::new(None),
            error: RwSignal::new(None),
            ticket: RwSignal::new(0),
        }
    }

    /// A new annotation: back to PCA, the UMAP forgotten.
    pub fn reset(self) {
        self.choice.set(Layout::Pca);
        self.umap.set(None);
        self.progress.set(None);
        self.seconds.set(None);
        self.error.set(None);
        self.ticket.update(|t| *t += 1);
    }

    /// The layout drawn: UMAP only once it is there.
    pub fn shown(self) -> Layout {
        match self.choice.get() {
            Layout::Umap if self.umap.with(Option::is_some) => Layout::Umap,
            _ => Layout::Pca,
        }
    }

    /// Whether a UMAP is being computed.
    pub fn busy(self) -> bool {
        self.progress.with_untracked(Option::is_some)
    }

    /// The user picked `layout` for `cells` cells.
    pub fn choose(self, layout: Layout, cells: usize) {
        self.error.set(None);
        if layout == Layout::Pca || self.umap.with_untracked(Option::is_some) || self.busy() {
            self.choice.set(layout);
            return;
        }
        if let Some(why) = umap_refusal(cells) {
            self.error.set(Some(why));
            self.choice.set(Layout::Pca);
            return;
        }
        let req = Request::Umap {
            ticket: self.ticket.get_untracked(),
        };
        let sent = WORKER.with_borrow(|w| w.as_ref().map(|w| w.run(&req, Vec::new())).is_some());
        if sent {
            self.choice.set(Layout::Umap);
            self.progress.set(Some(0.0));
        } else {
            self.fail(
                "The worker holding the annotation was stopped: annotate the file again".into(),
            );
        }
    }

    /// The UMAP stopped; the plot stays on PCA.
    pub fn fail(self, message: String) {
        self.error.set(Some(message));
        self.progress.set(None);
        self.choice.set(Layout::Pca);
    }

    /// Applies a UMAP reply; gives other replies back.
    pub fn apply(self, reply: Reply) -> Option<Reply> {
        let current = self.ticket.get_untracked();
        match reply {
            Reply::UmapProgress { ticket, fraction } => {
                if ticket == current && self.busy() {
                    self.progress.set(Some(fraction));
                }
            }
            Reply::Umap {
                ticket,
                points,
                seconds,
            } => {
                if ticket == current {
                    self.umap.set(Some(points));
                    self.seconds.set(Some(seconds));
                    self.progress.set(None);
                }
            }
            Reply::UmapFailed { ticket, message } => {
                if ticket == current {
                    self.fail(format!("UMAP failed: {message}"));
                }
            }
            other => return Some(other),
        }
        None
    }
}

/// The select, the UMAP's progress and its messages.
#[component]
pub(super) fn LayoutPicker(
    layout: LayoutState,
    /// Cells in the plot.
    #[prop(into)]
    cells: Signal<usize>,
) -> impl IntoView {
    let status = move || {
        if let Some(f) = layout.progress.get() {
            Some(format!("Computing UMAP in the worker… {:.0} %", f * 100.0))
        } else if layout.shown() == Layout::Umap {
            layout
                .seconds
                .get()
                .map(|s| format!("UMAP of {} cells in {s:.1} s", cells.get()))
        } else {
            None
        }
    };
    view! {
        <div class="layout-picker">
            <label>
                "Layout "
                <select id="embedding-layout" prop:value=move || layout.choice.get().value()
                    on:change=move |ev| {
                        layout.choose(Layout::from_value(&event_target_value(&ev)), cells.get_untracked())
                    }>
                    <option value="pca">"PCA"</option>
                    <option value="umap">"UMAP"</option>
                </select>
            </label>
            <progress id="umap-progress" max="1"
                style:display=move || if layout.progress.with(Option::is_some) { "inline-block" } else { "none" }
                value=move || layout.progress.get().unwrap_or(0.0)></progress>
            <span id="umap-status" class="note" role="status" aria-live="polite">{status}</span>
            <p id="umap-error" class="error" role="alert"
                style:display=move || if layout.error.with(Option::is_some) { "block" } else { "none" }>
                {move || layout.error.get()}
            </p>
        </div>
    }
}
