//! Uploading a dataset in resumable chunks (`/api/v1/uploads`): each chunk is a `File.slice()`
//! read with `Blob.arrayBuffer()` and sent with `PATCH` at its `Upload-Offset`; after a network
//! error, a 409 (wrong offset) or a chunk cut short the page asks the server how many bytes it
//! holds and resumes from there, a few times with growing pauses. The chunk size is 8 MiB, or
//! `?upload_chunk=BYTES` in the page's URL (tests use it to send several chunks).

use std::cell::RefCell;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, HtmlInputElement};

use super::Registry;
use super::api::{API, encode_query, format_bytes};
use super::plan::{self, MAX_RETRIES, Next};
use crate::http::{self, Body, js_err};

thread_local! {
    // Browser objects are not `Send`, so the chosen file lives here rather than in a signal.
    static FILE: RefCell<Option<File>> = const { RefCell::new(None) };
}

/// `POST /uploads` and `GET /uploads/{id}` replies.
#[derive(Debug, Deserialize)]
struct UploadStatus {
    #[serde(default)]
    id: String,
    offset: u64,
}

/// What the form shows about the upload in progress (also used by the annotate page's "also
/// upload the file").
#[derive(Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) busy: RwSignal<bool>,
    pub(crate) cancel: RwSignal<bool>,
    pub(crate) sent: RwSignal<f64>,
    pub(crate) size: RwSignal<f64>,
    rate: RwSignal<Option<f64>>,
    note: RwSignal<String>,
    error: RwSignal<Option<String>>,
    done: RwSignal<Option<String>>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            busy: RwSignal::new(false),
            cancel: RwSignal::new(false),
            sent: RwSignal::new(0.0),
            size: RwSignal::new(0.0),
            rate: RwSignal::new(None),
            note: RwSignal::new(String::new()),
            error: RwSignal::new(None),
            done: RwSignal::new(None),
        }
    }

    /// `3.4 MiB of 3.4 MiB (100 %), 1.2 MiB/s`.
    pub(crate) fn text(self) -> String {
        let (sent, size) = (self.sent.get(), self.size.get());
        let pct = if size > 0.0 { sent / size * 100.0 } else { 0.0 };
        let mut s = format!(
            "{} of {} ({pct:.0} %)",
            format_bytes(sent),
            format_bytes(size)
        );
        if let Some(r) = self.rate.get() {
            s.push_str(&format!(", {}/s", format_bytes(r)));
        }
        let note = self.note.get();
        if !note.is_empty() {
            s.push_str(&format!(". {note}"));
        }
        s
    }
}

/// The chunk size: 8 MiB, or `?upload_chunk=BYTES` in the page's URL.
pub(crate) fn chunk_size() -> u64 {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    plan::chunk_size_from_query(&search)
}

/// Bytes `[start, end)` of the file.
async fn read_slice(file: &File, start: u64, end: u64) -> Result<js_sys::Uint8Array, String> {
    let blob = file
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|e| js_err("cannot slice the file", e))?;
    let buf = JsFuture::from(blob.array_buffer()).await.map_err(|e| {
        js_err(
            &format!(
                "Cannot read {} (was it moved or changed? choose it again)",
                file.name()
            ),
            e,
        )
    })?;
    Ok(js_sys::Uint8Array::new(&buf))
}

fn unreachable(e: &str) -> String {
    format!("Cannot reach the server ({e}). Check your connection and upload again.")
}

/// Abandons an upload on the server (best effort: an abandoned one only takes disk space).
async fn abort(url: &str, token: &str) {
    let _ = http::call("DELETE", url, Some(token), Body::Empty, &[]).await;
}

/// Uploads `file` as dataset `name`; returns the registered dataset's JSON.
pub(crate) async fn send_file(
    token: String,
    p: Progress,
    file: File,
    name: String,
    team: Option<String>,
    chunk: u64,
) -> Result<Value, String> {
    let size = file.size() as u64;
    if size == 0 {
        return Err("The file is empty: choose another file.".into());
    }
    let mut url = format!("{API}/uploads?name={}&size={size}", encode_query(&name));
    if let Some(t) = &team {
        url.push_str(&format!("&team={}", encode_query(t)));
    }
    let r = http::call("POST", &url, Some(&token), Body::Empty, &[])
        .await
        .map_err(|e| unreachable(&e))?;
    if !r.ok() {
        return Err(plan::refusal(r.status, &r.message()));
    }
    let created: UploadStatus = r.json()?;
    let base = format!("{API}/uploads/{}", created.id);
    let mut offset = created.offset;
    let (t0, first) = (js_sys::Date::now(), offset);
    let mut failures = 0u32;
    while let Some((start, end)) = plan::chunk_range(offset, size, chunk) {
        if p.cancel.get_untracked() {
            abort(&base, &token).await;
            return Err("Upload cancelled; nothing was registered.".into());
        }
        let bytes = match read_slice(&file, start, end).await {
            Ok(b) => b,
            Err(e) => {
                abort(&base, &token).await;
                return Err(e);
            }
        };
        let start_header = start.to_string();
        let reply = http::call(
            "PATCH",
            &base,
            Some(&token),
            Body::Bytes(bytes),
            &[("Upload-Offset", &start_header)],
        )
        .await
        .map(|r| {
            let at = r.json::<UploadStatus>().ok().map(|s| s.offset);
            (r.status, at, r.message())
        });
        match plan::after_chunk(end, reply) {
            Next::Advance(o) => {
                offset = o;
                failures = 0;
                p.note.set(String::new());
            }
            Next::Resume(why) => {
                failures += 1;
                if failures > MAX_RETRIES {
                    return Err(format!(
                        "The upload stopped at byte {offset} of {size} after {MAX_RETRIES} \
                         retries ({why}). Check your connection and upload the file again."
                    ));
                }
                p.note
                    .set(format!("Retry {failures} of {MAX_RETRIES} after: {why}"));
                http::sleep_ms(plan::backoff_ms(failures)).await;
                match http::call("GET", &base, Some(&token), Body::Empty, &[]).await {
                    Ok(r) if r.ok() => {
                        if let Ok(s) = r.json::<UploadStatus>() {
                            offset = s.offset;
                        }
                    }
                    Ok(r) if r.status == 404 || r.status == 401 => {
                        return Err(plan::refusal(r.status, &r.message()));
                    }
                    // Still unreachable: the next attempt counts as another failure.
                    _ => {}
                }
            }
            Next::Fail(m) => {
                abort(&base, &token).await;
                return Err(m);
            }
        }
        p.sent.set(offset as f64);
        let secs = (js_sys::Date::now() - t0) / 1e3;
        if secs > 0.0 {
            p.rate.set(Some(offset.saturating_sub(first) as f64 / secs));
        }
    }
    p.note
        .set("All bytes sent; the server is reading the file".into());
    let r = http::call(
        "POST",
        &format!("{base}/complete"),
        Some(&token),
        Body::Empty,
        &[],
    )
    .await
    .map_err(|e| unreachable(&e))?;
    if r.ok() {
        return r.json();
    }
    if r.status == 409 {
        // The name was taken meanwhile; the server keeps the bytes, which nobody can use.
        abort(&base, &token).await;
    }
    Err(plan::refusal(r.status, &r.message()))
}

/// The upload form with its progress bar.
#[component]
pub(super) fn UploadForm(reg: Registry) -> impl IntoView {
    let p = Progress::new();
    let name = RwSignal::new(String::new());
    let has_file = RwSignal::new(false);
    let chunk = chunk_size();

    let on_file = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        let file = input.files().and_then(|f| f.get(0));
        if let Some(f) = &file {
            name.set(plan::dataset_name(&f.name()));
            p.size.set(f.size());
        }
        p.sent.set(0.0);
        p.rate.set(None);
        p.note.set(String::new());
        p.error.set(None);
        p.done.set(None);
        has_file.set(file.is_some());
        FILE.with_borrow_mut(|slot| *slot = file);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if p.busy.get_untracked() {
            return;
        }
        // A refused attempt must not leave the previous upload's progress on show.
        p.sent.set(0.0);
        p.rate.set(None);
        p.note.set(String::new());
        p.done.set(None);
        let Some(file) = FILE.with_borrow(Clone::clone) else {
            p.error.set(Some("Choose a file first.".into()));
            return;
        };
        let n = name.get_untracked().trim().to_string();
        if let Some(problem) = plan::name_problem(&n) {
            p.error.set(Some(problem));
            return;
        }
        let Some(token) = reg.token() else {
            p.error.set(Some("Sign in first.".into()));
            return;
        };
        let team = reg.team_name();
        p.error.set(None);
        p.cancel.set(false);
        p.busy.set(true);
        p.size.set(file.size());
        spawn_local(async move {
            let result = send_file(token, p, file, n.clone(), team, chunk).await;
            p.busy.set(false);
            p.note.set(String::new());
            match result {
                Ok(ds) => {
                    p.done.set(Some(format!(
                        "Uploaded `{}`: {} cells × {} genes ({}).",
                        ds["name"].as_str().unwrap_or(&n),
                        ds["n_cells"],
                        ds["n_genes"],
                        ds["format"].as_str().unwrap_or("?")
                    )));
                    reg.refresh();
                }
                Err(e) => p.error.set(Some(e)),
            }
        });
    };

    view! {
        <form id="upload" class="controls" on:submit=submit data-chunk-bytes=chunk>
            <label>"Dataset file (h5ad, 10x .h5, CSV/TSV) "
                <input id="upload-file" type="file" accept=".h5ad,.h5,.csv,.tsv,.txt,.gz"
                    on:change=on_file disabled=move || p.busy.get() />
            </label>
            <label>"Name "
                <input id="upload-name" type="text" title="letters, digits, ., _ or -"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <button id="upload-button" type="submit" class="primary"
                disabled=move || p.busy.get() || !has_file.get()>"Upload"</button>
            <button id="upload-cancel" type="button" on:click=move |_| p.cancel.set(true)
                disabled=move || !p.busy.get() || p.cancel.get()>"Cancel upload"</button>
        </form>
        <Show when=move || { p.busy.get() || p.sent.get() > 0.0 }>
            <div class="progress-line">
                <progress id="upload-progress" aria-label="upload progress"
                    max=move || p.size.get().max(1.0) value=move || p.sent.get()></progress>
                <span id="upload-status" role="status">{move || p.text()}</span>
            </div>
        </Show>
        <p id="upload-error" class="error" role="alert">{move || p.error.get()}</p>
        <p id="upload-message" class="ok" role="status">{move || p.done.get()}</p>
    }
}
