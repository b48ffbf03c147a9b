//! "Save to registry": the run's metrics (not its data) become results of the registry model
//! version that made them (`POST /api/v1/results`, task `cell_type_annotation`), for a
//! signed-in editor of the model's team. Optionally the file is uploaded too (the registry
//! tab's resumable chunked upload), or found among the team's datasets by its SHA-256, and the
//! results are linked to that dataset.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};
use web_sys::File;

use super::summary::metrics;
use super::{FILE, RunState};
use crate::app::Shell;
use crate::http::{self, Body};
use crate::model_store::RegistryInfo;
use crate::pages::registry::{
    API, Membership, UploadProgress, chunk_size, dataset_name, name_problem, send_file,
};
use crate::results::result_metrics;

/// The task the results are recorded under (the fine-tune jobs' task).
pub const TASK: &str = "cell_type_annotation";

/// The file to link, when asked.
struct Upload {
    file: File,
    name: String,
    sha256: String,
}

/// What was saved.
struct Saved {
    results: usize,
    dataset: Option<(String, bool)>,
}

/// The team's dataset with `sha256`, if any (`GET /datasets`).
async fn existing_dataset(token: &str, team: &str, sha256: &str) -> Result<Option<Value>, String> {
    let list: Vec<Value> = http::json(&format!("{API}/datasets"), Some(token), None::<&()>).await?;
    Ok(list
        .into_iter()
        .find(|d| d["team"] == team && d["sha256"] == sha256))
}

async fn save(
    token: String,
    info: RegistryInfo,
    metrics: Vec<(&'static str, f64)>,
    upload: Option<Upload>,
    progress: UploadProgress,
) -> Result<Saved, String> {
    let dataset = match upload {
        None => None,
        Some(u) => match existing_dataset(&token, &info.team, &u.sha256).await? {
            Some(d) => Some((d, false)),
            None => {
                progress.busy.set(true);
                progress.size.set(u.file.size());
                let r = send_file(
                    token.clone(),
                    progress,
                    u.file,
                    u.name,
                    Some(info.team.clone()),
                    chunk_size(),
                )
                .await;
                progress.busy.set(false);
                Some((
                    r.map_err(|e| format!("The file was not uploaded: {e}"))?,
                    true,
                ))
            }
        },
    };
    let dataset_id = dataset
        .as_ref()
        .and_then(|(d, _)| d["id"].as_str().map(str::to_string));
    let url = format!("{API}/results");
    for (i, (metric, value)) in metrics.iter().enumerate() {
        let body = json!({
            "team": info.team, "model_version_id": info.version_id, "dataset_id": dataset_id,
            "task": TASK, "metric": metric, "value": value,
        });
        let r = http::call(
            "POST",
            &url,
            Some(&token),
            Body::Json(body.to_string()),
            &[],
        )
        .await
        .map_err(|e| format!("{e} ({i} of {} results saved)", metrics.len()))?;
        if !r.ok() {
            return Err(format!(
                "The registry refused result `{metric}` (HTTP {}): {} ({i} of {} results saved)",
                r.status,
                r.message(),
                metrics.len()
            ));
        }
    }
    Ok(Saved {
        results: metrics.len(),
        dataset: dataset.map(|(d, uploaded)| {
            let name = d["name"].as_str().unwrap_or("?").to_string();
            (name, uploaded)
        }),
    })
}

/// Why the run cannot be saved, if it cannot.
fn blocker(
    session: Option<&str>,
    info: Option<&RegistryInfo>,
    teams: &[Membership],
) -> Option<String> {
    if session.is_none() {
        return Some("Sign in on the Registry tab to save these results.".into());
    }
    let Some(info) = info else {
        return Some(
            "Results are saved against a registry model version: annotate with a model from the \
             Registry group of the classifier list to save them."
                .into(),
        );
    };
    let role = teams.iter().find(|m| m.team_name == info.team);
    if !role.is_some_and(Membership::can_edit) {
        return Some(format!(
            "Saving results in team {} needs the editor role there; ask a team admin.",
            info.team
        ));
    }
    None
}

/// The panel.
#[component]
pub(super) fn SavePanel(
    state: RunState,
    threshold: Signal<f32>,
    teams: RwSignal<Vec<Membership>>,
) -> impl IntoView {
    let shell = Shell::get();
    let session = move || shell.and_then(|s| s.session.get());
    let info = move || {
        state
            .model
            .with(|m| m.as_ref().and_then(|m| m.registry.clone()))
    };
    let why_not = move || teams.with(|t| blocker(session().as_deref(), info().as_ref(), t));
    let upload = RwSignal::new(false);
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let message = RwSignal::new(None::<String>);
    let progress = UploadProgress::new();
    // A new run: a fresh default name and no stale message.
    Effect::new(move |_| {
        if let Some(r) = state.report.get() {
            name.set(dataset_name(&r.file));
        }
        message.set(None);
        error.set(None);
    });

    let save_click = move |_| {
        if busy.get_untracked() {
            return;
        }
        let (Some(token), Some(info)) = (session(), info()) else {
            return;
        };
        let metrics = {
            let (s, a) = metrics(state, threshold);
            result_metrics(&s, threshold.get_untracked(), a.as_ref())
        };
        let up = if upload.get_untracked() {
            let Some(file) = FILE.with_borrow(Clone::clone) else {
                error.set(Some(
                    "Choose the file again: the page no longer holds it.".into(),
                ));
                return;
            };
            let n = name.get_untracked().trim().to_string();
            if let Some(p) = name_problem(&n) {
                error.set(Some(p));
                return;
            }
            let sha256 = state
                .report
                .with_untracked(|r| r.as_ref().map(|r| r.sha256.clone()))
                .unwrap_or_default();
            Some(Upload {
                file,
                name: n,
                sha256,
            })
        } else {
            None
        };
        busy.set(true);
        error.set(None);
        message.set(None);
        spawn_local(async move {
            let label = format!("{} v{}", info.model_name, info.version);
            match save(token, info, metrics, up, progress).await {
                Ok(s) => {
                    let on = match &s.dataset {
                        Some((d, true)) => format!(" on dataset {d} (uploaded)"),
                        Some((d, false)) => {
                            format!(" on dataset {d} (already in the registry)")
                        }
                        None => String::new(),
                    };
                    message.set(Some(format!("Saved {} results of {label}{on}.", s.results)));
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    let show = move |_| {
        if let Some(s) = shell {
            s.show_results();
        }
    };

    view! {
        <section id="save-panel" class="controls">
            {move || match why_not() {
                Some(w) => view! { <p id="save-note" class="note">{w}</p> }.into_any(),
                None => view! {
                    <p class="note">
                        {move || info().map(|i| format!(
                            "Records the metrics above (task {TASK}) for {} v{} in team {}; the \
                             file itself stays here unless you upload it.",
                            i.model_name, i.version, i.team
                        ))}
                    </p>
                    <label>
                        <input id="save-upload" type="checkbox" prop:checked=move || upload.get()
                            on:change=move |ev| upload.set(event_target_checked(&ev)) />
                        " Also upload the file and link the results to it"
                    </label>
                    <label class="small" class:hidden=move || !upload.get()>
                        "Dataset name "
                        <input id="save-dataset-name" type="text" title="letters, digits, ., _ or -"
                            prop:value=move || name.get()
                            on:input=move |ev| name.set(event_target_value(&ev)) />
                    </label>
                    <button id="save-button" type="button" class="primary" on:click=save_click
                        disabled=move || busy.get() || !state.finished.get()>
                        {move || if busy.get() { "Saving…" } else { "Save to registry" }}
                    </button>
                }.into_any(),
            }}
        </section>
        <Show when=move || progress.busy.get()>
            <div class="progress-line">
                <progress id="save-upload-progress" aria-label="upload progress"
                    max=move || progress.size.get().max(1.0) value=move || progress.sent.get()></progress>
                <span role="status">{move || progress.text()}</span>
            </div>
        </Show>
        <p id="save-error" class="error" role="alert">{move || error.get()}</p>
        <p class="ok" role="status">
            <span id="save-message">{move || message.get()}</span>
            {move || message.with(Option::is_some).then(|| view! {
                " "
                <a id="save-results-link" href="#results" on:click=move |ev| { ev.prevent_default(); show(ev); }>
                    "See them in the registry's results table"
                </a>
            })}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RegistryInfo {
        RegistryInfo {
            model_id: "mdl_1".into(),
            model_name: "m".into(),
            version: 1,
            version_id: "ver_1".into(),
            aliases: vec![],
            team: "lab".into(),
        }
    }

    fn member(role: &str) -> Membership {
        Membership {
            team_id: "t".into(),
            team_name: "lab".into(),
            role: role.into(),
        }
    }

    #[test]
    fn saving_needs_a_session_a_registry_model_and_the_editor_role() {
        assert!(
            blocker(None, Some(&info()), &[member("editor")])
                .unwrap()
                .contains("Sign in")
        );
        assert!(
            blocker(Some("@session"), None, &[member("editor")])
                .unwrap()
                .contains("registry model version")
        );
        assert!(
            blocker(Some("@session"), Some(&info()), &[member("viewer")])
                .unwrap()
                .contains("editor role")
        );
        assert!(blocker(Some("@session"), Some(&info()), &[]).is_some());
        assert_eq!(
            blocker(Some("@session"), Some(&info()), &[member("admin")]),
            None
        );
    }
}
