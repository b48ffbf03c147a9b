//! Registry: sign in, then the datasets, models, jobs and results of the caller's teams from
//! the server's `/api/v1` endpoints, with an upload form (resumable chunks, [`upload`]), a
//! fine-tuning form ([`finetune`]) and a jobs panel that follows a job live ([`jobs`]).
//! Signing in opens a cookie session (`/auth/session`: an HttpOnly session cookie the page
//! never sees, plus a CSRF token that [`http`] echoes on every change); `localStorage` only
//! remembers that a session exists, so a reload stays signed in until it expires, and "Sign
//! out" ends it on the server.

mod api;
mod curve;
mod finetune;
mod jobs;
mod plan;
mod sse;
mod upload;
mod watch;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shell;
use crate::http;
pub(crate) use api::{API, Membership, format_bytes, format_metric};
use api::{Dataset, Job, Model, parse_list};
use finetune::FinetuneForm;
use jobs::JobsPanel;
pub(crate) use plan::{dataset_name, name_problem};
use upload::UploadForm;
pub(crate) use upload::{Progress as UploadProgress, chunk_size, send_file};
use watch::Watch;

const TOKEN_KEY: &str = "genecompass_token";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The sign-in remembered from an earlier visit (`http::SESSION`), if any.
pub(crate) fn stored_session() -> Option<String> {
    storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
}

/// The answer of `/auth/session` (its cookies carry the session; the body is checked only).
#[derive(Debug, Clone, Deserialize)]
struct SessionCreated {
    #[serde(rename = "csrf_token")]
    _csrf_token: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Me {
    name: String,
    teams: Vec<Membership>,
}

/// What the lists hold, as JSON rows (the tables show a few fields of each).
#[derive(Debug, Clone, Default)]
struct Lists {
    me: String,
    teams: Vec<Membership>,
    datasets: Vec<Value>,
    models: Vec<Value>,
    results: Vec<Value>,
}

async fn load(token: &str) -> Result<(Lists, Vec<Job>), String> {
    let me: Me = http::json(&format!("{API}/me"), Some(token), None::<&()>).await?;
    let get = |path: &'static str| async move {
        http::json::<Vec<Value>>(&format!("{API}/{path}"), Some(token), None::<&()>).await
    };
    let lists = Lists {
        me: me.name,
        teams: me.teams,
        datasets: get("datasets").await?,
        models: get("models").await?,
        results: get("results").await?,
    };
    let jobs = parse_list(&get("jobs").await?);
    Ok((lists, jobs))
}

/// The page's shared state; cheap to copy into every part.
#[derive(Clone, Copy)]
struct Registry {
    token: RwSignal<Option<String>>,
    lists: RwSignal<Option<Lists>>,
    jobs: RwSignal<Vec<Job>>,
    error: RwSignal<Option<String>>,
    /// The team chosen for uploads and jobs (when the user edits several).
    team: RwSignal<String>,
    /// The watched job, its stream status, a message about the last action and its log.
    watch: RwSignal<Option<Watch>>,
    stream: RwSignal<String>,
    watch_message: RwSignal<Option<String>>,
    log: RwSignal<Option<String>>,
}

impl Registry {
    fn new() -> Self {
        Self {
            // Shared with the annotate page, which lists the team's models when signed in.
            token: Shell::get()
                .map(|s| s.session)
                .unwrap_or_else(|| RwSignal::new(stored_session())),
            lists: RwSignal::new(None),
            jobs: RwSignal::new(Vec::new()),
            error: RwSignal::new(None),
            team: RwSignal::new(String::new()),
            watch: RwSignal::new(None),
            stream: RwSignal::new(String::new()),
            watch_message: RwSignal::new(None),
            log: RwSignal::new(None),
        }
    }

    /// The token, untracked.
    fn token(self) -> Option<String> {
        self.token.get_untracked()
    }

    /// Reloads every list.
    fn refresh(self) {
        let Some(t) = self.token() else {
            return;
        };
        spawn_local(async move {
            match load(&t).await {
                Ok((l, jobs)) => {
                    self.error.set(None);
                    self.lists.set(Some(l));
                    self.jobs.set(jobs);
                }
                Err(e) => self.error.set(Some(format!(
                    "{e}. Press Refresh to try again, or sign out and in if your sign-in expired."
                ))),
            }
        });
    }

    /// Teams where the user may upload and launch jobs.
    fn editable_teams(self) -> Vec<Membership> {
        self.lists.with(|l| {
            l.as_ref()
                .map(|l| l.teams.iter().filter(|m| m.can_edit()).cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The team uploads and jobs go to: the chosen one, else the first editable one.
    fn team_name(self) -> Option<String> {
        let teams = self.editable_teams();
        let chosen = self.team.get();
        teams
            .iter()
            .find(|m| m.team_name == chosen)
            .or(teams.first())
            .map(|m| m.team_name.clone())
    }

    /// Datasets of the chosen team.
    fn datasets(self) -> Vec<Dataset> {
        let team = self.team_name();
        self.lists.with(|l| {
            l.as_ref()
                .map(|l| parse_list::<Dataset>(&l.datasets))
                .unwrap_or_default()
                .into_iter()
                .filter(|d| team.as_deref().is_none_or(|t| d.team == t))
                .collect()
        })
    }

    /// Models of the chosen team.
    fn models(self) -> Vec<Model> {
        let team = self.team_name();
        self.lists.with(|l| {
            l.as_ref()
                .map(|l| parse_list::<Model>(&l.models))
                .unwrap_or_default()
                .into_iter()
                .filter(|m| team.as_deref().is_none_or(|t| m.team == t))
                .collect()
        })
    }

    /// A dataset's name from its id (any team), untracked-safe.
    fn dataset_name(self, id: &str) -> Option<String> {
        self.lists.with(|l| {
            l.as_ref()?
                .datasets
                .iter()
                .find(|d| d["id"] == id)
                .and_then(|d| d["name"].as_str().map(str::to_string))
        })
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // Counts stored as floats (results are f64) read as counts.
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 1.0) =>
        {
            format!("{}", n.as_f64().unwrap_or_default())
        }
        // Metrics: enough digits to compare, not 17.
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), format_metric),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", cell(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A table of `rows` showing `columns`.
fn table(id: &'static str, rows: Vec<Value>, columns: &'static [&'static str]) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <table id=id class="registry">
            <thead><tr>{columns.iter().map(|c| view! { <th>{*c}</th> }).collect_view()}</tr></thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr>{columns.iter().map(|c| view! { <td>{cell(&r[*c])}</td> }).collect_view()}</tr>
                }).collect_view()}
            </tbody>
        </table>
        {empty.then(|| view! { <p class="note">"None yet."</p> })}
    }
}

/// The team picker, shown when the user may edit in several teams.
fn team_picker(reg: Registry) -> impl IntoView {
    move || {
        let teams = reg.editable_teams();
        (teams.len() > 1).then(|| {
            let current = reg.team_name().unwrap_or_default();
            view! {
                <label>"Team for uploads and jobs "
                    <select id="team" on:change=move |ev| reg.team.set(event_target_value(&ev))>
                        {teams.into_iter().map(|m| {
                            let selected = m.team_name == current;
                            view! { <option value=m.team_name.clone() selected=selected>{m.team_name.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
            }
        })
    }
}

/// The registry page.
#[component]
pub fn RegistryPage() -> impl IntoView {
    let reg = Registry::new();
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());

    // Loads the lists now, and again whenever another page asks (e.g. after saving results).
    let reload = Shell::get().map(|s| s.reload);
    Effect::new(move |_| {
        if let Some(r) = reload {
            r.track();
        }
        reg.refresh();
    });
    let sign_in = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"name": name.get_untracked(), "password": password.get_untracked()});
        spawn_local(async move {
            // A cookie session: the HttpOnly session cookie never reaches page scripts.
            match http::json::<SessionCreated>(&format!("{API}/auth/session"), None, Some(&body))
                .await
            {
                Ok(_) => {
                    if let Some(s) = storage() {
                        let _ = s.set_item(TOKEN_KEY, http::SESSION);
                    }
                    password.set(String::new());
                    reg.token.set(Some(http::SESSION.to_string()));
                    reg.refresh();
                }
                Err(e) => reg.error.set(Some(format!(
                    "Sign-in failed: {e}. Check the user name and password."
                ))),
            }
        });
    };
    let sign_out = move |_| {
        jobs::stop_watching(reg);
        if let Some(t) = reg.token.get_untracked() {
            // Ends the session on the server (and clears its cookies).
            spawn_local(async move {
                let _ = http::send(
                    "POST",
                    &format!("{API}/auth/logout"),
                    Some(&t),
                    http::Body::Empty,
                    &[],
                    None,
                )
                .await;
            });
        }
        if let Some(s) = storage() {
            let _ = s.remove_item(TOKEN_KEY);
        }
        reg.token.set(None);
        reg.lists.set(None);
        reg.jobs.set(Vec::new());
    };
    let can_edit = move || !reg.editable_teams().is_empty();

    view! {
        <p class="error" role="alert">{move || reg.error.get()}</p>
        <Show
            when=move || reg.token.get().is_some()
            fallback=move || view! {
                <form id="sign-in" class="controls" on:submit=sign_in>
                    <label>"User " <input id="user" type="text" autocomplete="username"
                        on:input=move |ev| name.set(event_target_value(&ev)) /></label>
                    <label>"Password " <input id="password" type="password" autocomplete="current-password"
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev)) /></label>
                    <button type="submit">"Sign in"</button>
                </form>
            }
        >
            <p class="signed-in">
                {move || reg.lists.get().map(|l| format!("Signed in as {}. ", l.me))}
                <button type="button" id="refresh" on:click=move |_| reg.refresh()>"Refresh"</button>
                " "
                <button type="button" id="sign-out" on:click=sign_out>"Sign out"</button>
                " "
                {team_picker(reg)}
            </p>
            <Show when=move || reg.lists.with(Option::is_some)>
                <Show when=can_edit fallback=|| view! {
                    <p class="note" id="viewer-note">"You are a viewer in all your teams: ask a team \
                        admin for the editor role to upload datasets and launch jobs."</p>
                }>
                    <h2>"Upload a dataset"</h2>
                    <UploadForm reg=reg />
                </Show>
            </Show>
            {move || reg.lists.get().map(|l| view! {
                <h2>"Datasets"</h2>
                {table("datasets", l.datasets, &["name", "team", "format", "n_cells", "n_genes", "value_kind"])}
                <h2>"Models"</h2>
                {table("models", l.models, &["name", "team", "versions", "aliases"])}
            })}
            <Show when=move || reg.lists.with(Option::is_some) && can_edit()>
                <h2>"Fine-tune a classifier"</h2>
                <FinetuneForm reg=reg />
            </Show>
            <Show when=move || reg.lists.with(Option::is_some)>
                <h2>"Jobs"</h2>
                <JobsPanel reg=reg />
            </Show>
            {move || reg.lists.get().map(|l| view! {
                <h2>"Results"</h2>
                {table("results", l.results, &["model", "version", "dataset", "task", "metric", "value"])}
            })}
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::cell;
    use serde_json::json;

    #[test]
    fn table_cells() {
        assert_eq!(cell(&json!(0.4110429447852761)), "0.411");
        assert_eq!(cell(&json!(822)), "822");
        assert_eq!(cell(&json!(809.0)), "809");
        assert_eq!(cell(&json!(0.0)), "0.000");
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!([1, 2])), "1, 2");
        assert_eq!(cell(&json!({"latest": 1})), "latest: 1");
    }
}
