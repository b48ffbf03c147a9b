//! Downloads: the CSV of calls, and the annotated h5ad with `genecompass_label` and
//! `genecompass_confidence` in `obs`. The worker writes the h5ad (core's writer, as
//! `genecompass-train classify --write-h5ad`) from the file's bytes, sent to it again, and hands
//! the result back as bytes; the page only saves them.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::{FILE, RunState, WORKER, file_bytes};
use crate::protocol::Request;

/// Saves `data` (a `Blob` part: string or `Uint8Array`) as file `name`.
pub(super) fn download(data: &wasm_bindgen::JsValue, mime: &str, name: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(data);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
        .map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = doc
        .create_element("a")
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// The h5ad download's state.
#[derive(Clone, Copy)]
pub(super) struct Export {
    pub busy: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    pub message: RwSignal<Option<String>>,
    /// Replace prediction columns the file already has (the CLI's `--replace-columns`).
    pub replace: RwSignal<bool>,
}

impl Export {
    pub fn new() -> Self {
        Self {
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
            message: RwSignal::new(None),
            replace: RwSignal::new(false),
        }
    }

    pub fn reset(self) {
        self.busy.set(false);
        self.error.set(None);
        self.message.set(None);
    }

    pub fn fail(self, message: String) {
        self.busy.set(false);
        self.message.set(None);
        self.error.set(Some(message));
    }

    /// The worker's h5ad: saved as `file_name`.
    pub fn done(self, file_name: &str, filtered: usize, bytes: Option<js_sys::Uint8Array>) {
        self.busy.set(false);
        let Some(bytes) = bytes else {
            return self.fail("internal error: the worker sent no file".into());
        };
        let size = bytes.length();
        match download(&bytes, "application/x-hdf5", file_name) {
            Ok(()) => {
                self.error.set(None);
                self.message.set(Some(format!(
                    "Saved {file_name} ({}): obs gained genecompass_label and \
                     genecompass_confidence; {filtered} cells removed by quality control are \
                     labelled `filtered` (confidence NaN).",
                    crate::pages::registry::format_bytes(f64::from(size))
                )));
            }
            Err(e) => self.fail(format!("Cannot save the file: {e}")),
        }
    }
}

/// Asks the worker for the labelled h5ad of the finished run.
fn request_h5ad(state: RunState) {
    let x = state.export;
    if x.busy.get_untracked() {
        return;
    }
    let Some(file) = FILE.with_borrow(Clone::clone) else {
        return x.fail("Choose the file again: the page no longer holds it.".into());
    };
    x.error.set(None);
    x.message.set(None);
    x.busy.set(true);
    let replace = x.replace.get_untracked();
    spawn_local(async move {
        let data = match file_bytes(&file).await {
            Ok(d) => d,
            Err(e) => return x.fail(e),
        };
        let req = Request::WriteH5ad {
            file_name: file.name(),
            replace,
        };
        let sent =
            WORKER.with_borrow(|w| w.as_ref().map(|w| w.run(&req, vec![data.into()])).is_some());
        if !sent {
            x.fail(
                "The worker holding the predictions was stopped: annotate the file again".into(),
            );
        }
    });
}

/// "Download h5ad with labels", with why it is unavailable for other formats.
#[component]
pub(super) fn H5adDownload(state: RunState) -> impl IntoView {
    let x = state.export;
    let is_h5ad = move || state.report.with(|r| r.as_ref().is_some_and(|r| r.h5ad));
    let why_not = move || {
        state.report.with(|r| {
            r.as_ref().filter(|r| !r.h5ad).map(|r| {
                format!(
                    "Labels can be written into .h5ad files only; this file is {}. Use the CSV.",
                    r.format
                )
            })
        })
    };
    view! {
        <div class="h5ad-download">
            <button id="download-h5ad" type="button" aria-describedby="h5ad-note"
                title=move || why_not().unwrap_or_else(|| {
                    "The file with obs columns genecompass_label and genecompass_confidence (arg-max \
                     calls, as genecompass-train classify --write-h5ad writes them)".into()
                })
                on:click=move |_| request_h5ad(state)
                disabled=move || !state.finished.get() || !is_h5ad() || x.busy.get()>
                {move || if x.busy.get() { "Writing the h5ad…" } else { "Download h5ad with labels" }}
            </button>
            <label class="small" class:hidden=move || !is_h5ad()>
                <input id="h5ad-replace" type="checkbox" prop:checked=move || x.replace.get()
                    on:change=move |ev| x.replace.set(event_target_checked(&ev)) />
                " Replace the columns if the file already has them"
            </label>
            <span id="h5ad-note" class="note">
                {move || why_not().unwrap_or_else(|| {
                    "Arg-max labels for every cell, as the CLI writes them (the threshold is not \
                     applied); cells removed by quality control are `filtered`.".into()
                })}
            </span>
        </div>
        <p id="h5ad-error" class="error" role="alert">{move || x.error.get()}</p>
        <p id="h5ad-message" class="ok" role="status">{move || x.message.get()}</p>
    }
}
