//! The jobs table and the watched job: live state, a step progress bar and the loss curve from
//! `GET /jobs/{id}/events` (read with `fetch`, see [`super::sse`]), the earlier steps from the
//! trainer's stdout, validation and test metrics, "Cancel" while it runs, and the log on
//! demand. When the job ends every list is reloaded, so its model and results appear.

use std::cell::{Cell, RefCell};

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use web_sys::AbortController;

use super::Registry;
use super::api::{API, Job, format_metric, format_time};
use super::curve::LossCurve;
use super::sse::{self, StreamError};
use super::watch::{Watch, metric_label};
use crate::http::{self, Body};

/// Reconnections of the event stream before the page gives up.
const MAX_RECONNECTS: u32 = 10;
/// The end of the trainer's stdout read for earlier steps (4 MiB: ~25 000 steps).
const HISTORY_BYTES: u64 = 4 << 20;

thread_local! {
    // The stream being read (browser objects are not `Send`), and a counter that makes the
    // callbacks of a replaced stream do nothing.
    static STREAM: RefCell<Option<AbortController>> = const { RefCell::new(None) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

fn current(generation: u64) -> bool {
    GENERATION.get() == generation
}

/// Stops following the watched job and forgets it.
pub(super) fn stop_watching(reg: Registry) {
    GENERATION.set(GENERATION.get() + 1);
    if let Some(c) = STREAM.with_borrow_mut(Option::take) {
        c.abort();
    }
    reg.watch.set(None);
    reg.stream.set(String::new());
    reg.watch_message.set(None);
    reg.log.set(None);
}

/// Starts following job `id` (replacing any watched job).
pub(super) fn watch_job(reg: Registry, id: String) {
    stop_watching(reg);
    let generation = GENERATION.get();
    let Ok(controller) = AbortController::new() else {
        reg.stream
            .set("This browser cannot stream job events.".into());
        return;
    };
    let signal = controller.signal();
    STREAM.with_borrow_mut(|s| *s = Some(controller));
    reg.watch.set(Some(Watch::new(&id)));
    reg.stream.set("Connecting…".into());
    spawn_local(load_history(reg, id.clone(), generation));
    spawn_local(follow_events(reg, id, generation, signal));
}

/// The steps and evaluations before the stream started (the trainer's JSON lines).
async fn load_history(reg: Registry, id: String, generation: u64) {
    let Some(token) = reg.token() else {
        return;
    };
    let url = format!("{API}/jobs/{id}/logs?stream=stdout&tail_bytes={HISTORY_BYTES}");
    let Ok(r) = http::call("GET", &url, Some(&token), Body::Empty, &[]).await else {
        return;
    };
    if !r.ok() || !current(generation) {
        return;
    }
    reg.watch.update(|w| {
        if let Some(w) = w.as_mut().filter(|w| w.job.id == id) {
            for line in r.text.lines() {
                w.apply_log_line(line);
            }
        }
    });
}

/// Puts a job's latest state into the table.
fn update_row(reg: Registry, job: &Job) {
    reg.jobs
        .update(|jobs| match jobs.iter_mut().find(|j| j.id == job.id) {
            Some(j) => *j = job.clone(),
            None => jobs.insert(0, job.clone()),
        });
}

/// Reads the event stream, reconnecting after drops, until the job ends.
async fn follow_events(reg: Registry, id: String, generation: u64, signal: web_sys::AbortSignal) {
    let url = format!("{API}/jobs/{id}/events");
    let mut attempts = 0u32;
    // Whether this watch saw the job before its end (then its end reloads the lists).
    let mut saw_active = false;
    loop {
        let Some(token) = reg.token() else {
            return;
        };
        let result = sse::follow(&url, &token, &signal, |ev| {
            if !current(generation) {
                return;
            }
            let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            reg.watch.update(|w| {
                if let Some(w) = w.as_mut() {
                    w.apply(&ev.event, &data);
                }
            });
            reg.stream.set("Live".into());
            if ev.event == "state"
                && let Ok(job) = serde_json::from_value::<Job>(data)
            {
                update_row(reg, &job);
                if !job.is_terminal() {
                    saw_active = true;
                } else if saw_active {
                    saw_active = false;
                    reg.refresh();
                }
            }
        })
        .await;
        if !current(generation) {
            return;
        }
        let ended = reg
            .watch
            .with_untracked(|w| w.as_ref().is_some_and(|w| w.job.is_terminal()));
        if ended {
            reg.stream.set("The job has ended.".into());
            return;
        }
        match result {
            Err(StreamError::Http(status, msg))
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                reg.stream.set(format!(
                    "Cannot follow this job (HTTP {status}: {msg}). Press Refresh, then Watch."
                ));
                return;
            }
            _ => {}
        }
        attempts += 1;
        if attempts > MAX_RECONNECTS {
            reg.stream.set(
                "Lost the event stream several times: check your connection and press Watch \
                 to try again."
                    .into(),
            );
            return;
        }
        reg.stream
            .set(format!("Connection lost; reconnecting (try {attempts})…"));
        http::sleep_ms(super::plan::backoff_ms(attempts)).await;
        if !current(generation) {
            return;
        }
    }
}

async fn cancel_job(reg: Registry, id: String) {
    let Some(token) = reg.token() else {
        return;
    };
    let url = format!("{API}/jobs/{id}/cancel");
    match http::call("POST", &url, Some(&token), Body::Empty, &[]).await {
        Ok(r) if r.ok() => {
            reg.watch_message.set(Some(
                "Cancel requested: the trainer saves a checkpoint and stops.".into(),
            ));
            if let Ok(job) = r.json::<Job>() {
                update_row(reg, &job);
            }
        }
        Ok(r) => reg.watch_message.set(Some(format!(
            "Cannot cancel (HTTP {}): {}",
            r.status,
            r.message()
        ))),
        Err(e) => reg
            .watch_message
            .set(Some(format!("Cannot reach the server ({e}); try again."))),
    }
}

async fn load_log(reg: Registry, id: String) {
    let Some(token) = reg.token() else {
        return;
    };
    let url = format!("{API}/jobs/{id}/logs?tail_bytes=65536");
    match http::call("GET", &url, Some(&token), Body::Empty, &[]).await {
        Ok(r) if r.ok() => reg.log.set(Some(if r.text.trim().is_empty() {
            "(the trainer has not written to its log yet)".into()
        } else {
            r.text
        })),
        Ok(r) => reg.watch_message.set(Some(format!(
            "Cannot load the log (HTTP {}): {}",
            r.status,
            r.message()
        ))),
        Err(e) => reg
            .watch_message
            .set(Some(format!("Cannot reach the server ({e}); try again."))),
    }
}

fn dataset_label(reg: Registry, job: &Job) -> String {
    job.dataset_id
        .as_deref()
        .and_then(|id| reg.dataset_name(id))
        .or_else(|| job.dataset_id.clone())
        .unwrap_or_default()
}

/// The jobs table.
fn jobs_table(reg: Registry) -> impl IntoView {
    let rows = move || {
        let watched = reg
            .watch
            .with(|w| w.as_ref().map(|w| w.job.id.clone()))
            .unwrap_or_default();
        reg.jobs
            .get()
            .into_iter()
            .map(|j| {
                let id = j.id.clone();
                let is_watched = id == watched;
                let dataset = dataset_label(reg, &j);
                let state_class = format!("state state-{}", j.state);
                let done = format!("{:.0} %", j.progress * 100.0);
                let aria = format!("Watch job {id}");
                let watch_id = id.clone();
                view! {
                    <tr data-job-id=id class:watched=is_watched>
                        <td>{j.kind.clone()}</td>
                        <td class=state_class>{j.state.clone()}</td>
                        <td>{dataset}</td>
                        <td>{format_time(j.created_at)}</td>
                        <td>{j.created_by.clone()}</td>
                        <td>{done}</td>
                        <td><button type="button" class="watch" aria-label=aria
                            on:click=move |_| watch_job(reg, watch_id.clone())>"Watch"</button></td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <table id="jobs" class="registry">
            <thead><tr>
                <th>"kind"</th><th>"state"</th><th>"dataset"</th><th>"created"</th>
                <th>"by"</th><th>"done"</th><th><span class="sr-only">"actions"</span></th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <Show when=move || reg.jobs.with(Vec::is_empty)>
            <p class="note">"No jobs yet."</p>
        </Show>
    }
}

/// The watched job.
fn watch_view(reg: Registry) -> impl IntoView {
    let w = move || reg.watch.get();
    let losses = Memo::new(move |_| {
        reg.watch
            .with(|w| w.as_ref().map(|w| w.losses.clone()).unwrap_or_default())
    });
    let id = move || reg.watch.with(|w| w.as_ref().map(|w| w.job.id.clone()));
    let title = move || {
        let w = w()?;
        let j = &w.job;
        let mut t = format!("Job {}", j.id);
        if !j.kind.is_empty() {
            t.push_str(&format!(": {} on {}", j.kind, dataset_label(reg, j)));
        }
        if let Some(m) = j.model_name() {
            t.push_str(&format!(" → model {m}"));
        }
        Some(t)
    };
    let step_text = move || {
        let w = w()?;
        let mut s = if w.total_steps > 0 {
            format!("step {} / {}", w.step, w.total_steps)
        } else if w.job.is_terminal() {
            "ended before its first training step".to_string()
        } else {
            "waiting for the first step (the trainer reads and tokenizes the data first)"
                .to_string()
        };
        if let Some(l) = w.loss {
            s.push_str(&format!(", loss {l:.4}"));
        }
        Some(s)
    };
    let speed_text = move || {
        let w = w()?;
        if w.job.is_terminal() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(e) = w.eta_s.filter(|e| *e > 0.0) {
            parts.push(format!("about {e:.0} s left"));
        }
        if let Some(c) = w.cells_per_s {
            parts.push(format!("{c:.0} cells/s"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    let evals = move || {
        w().map(|w| {
            w.evals
                .iter()
                .map(|((step, epoch), metrics)| {
                    let m = metrics
                        .iter()
                        .map(|(k, v)| format!("{} {}", metric_label(k), format_metric(*v)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    view! { <li>{format!("epoch {epoch} (step {step}): {m}")}</li> }
                })
                .collect_view()
        })
    };
    let test = move || {
        w().map(|w| {
            w.test
                .iter()
                .map(|(k, v)| {
                    let id = format!("job-test-{k}");
                    view! { <dt>{metric_label(k)}</dt><dd id=id>{format_metric(*v)}</dd> }
                })
                .collect_view()
        })
    };
    let cancel = move |_| {
        if let Some(id) = id() {
            spawn_local(cancel_job(reg, id));
        }
    };
    let show_log = move |_| {
        if let Some(id) = id() {
            spawn_local(load_log(reg, id));
        }
    };

    view! {
        <Show when=move || reg.watch.with(Option::is_some)>
            <section id="job-watch" class="watch-panel" aria-label="watched job"
                data-job-id=id data-live-events=move || w().map(|w| w.live_events)>
                <h3>{title}</h3>
                <p>
                    "State: "
                    <strong id="job-state" aria-live="polite"
                        class=move || w().map(|w| format!("state state-{}", w.job.state))>
                        {move || w().map(|w| w.job.state)}
                    </strong>
                    " "
                    <span id="job-stream" class="note">{move || reg.stream.get()}</span>
                </p>
                <p id="job-failure" class="error" role="alert">
                    {move || w().and_then(|w| w.job.error)}
                </p>
                <div class="progress-line">
                    <progress id="job-progress" aria-label="training progress" max="1"
                        value=move || w().map(|w| w.fraction()).unwrap_or(0.0)
                        data-step=move || w().map(|w| w.step) data-total=move || w().map(|w| w.total_steps)>
                    </progress>
                    <span id="job-step">{step_text}</span>
                    <span class="note">{speed_text}</span>
                </div>
                <LossCurve losses=losses />
                <Show when=move || reg.watch.with(|w| w.as_ref().is_some_and(|w| !w.evals.is_empty()))>
                    <h4>"Validation"</h4>
                    <ul id="job-evals">{evals}</ul>
                </Show>
                <Show when=move || reg.watch.with(|w| w.as_ref().is_some_and(|w| !w.test.is_empty()))>
                    <h4>"Test split (model, and the logistic-regression baseline)"</h4>
                    <dl id="job-test" class="report">{test}</dl>
                </Show>
                <ul class="notes">
                    {move || w().map(|w| w.notes.into_iter().map(|n| view! { <li>{n}</li> }).collect_view())}
                </ul>
                <p class="buttons">
                    <Show when=move || reg.watch.with(|w| w.as_ref().is_some_and(Watch::cancellable))>
                        <button id="job-cancel" type="button" class="danger" on:click=cancel>"Cancel job"</button>
                    </Show>
                    <button id="job-log-button" type="button" on:click=show_log>
                        {move || if reg.log.with(Option::is_some) { "Reload log" } else { "Show log" }}
                    </button>
                    <button id="job-close" type="button" on:click=move |_| stop_watching(reg)>"Stop watching"</button>
                </p>
                <p id="job-message" class="note" role="status">{move || reg.watch_message.get()}</p>
                <Show when=move || reg.log.with(Option::is_some)>
                    <pre id="job-log" class="log" tabindex="0" aria-label="trainer log">{move || reg.log.get()}</pre>
                </Show>
            </section>
        </Show>
    }
}

/// Jobs of the caller's teams and the watched one.
#[component]
pub(super) fn JobsPanel(reg: Registry) -> impl IntoView {
    view! {
        {jobs_table(reg)}
        {watch_view(reg)}
    }
}
