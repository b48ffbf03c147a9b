//! Registry: sign in, then list the datasets, models and results of the caller's teams from
//! the server's `/api/v1` endpoints. The token is kept in `localStorage` so a reload stays
//! signed in; "Sign out" forgets it (the server-side token stays valid until revoked).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http;

const API: &str = "/api/v1";
const TOKEN_KEY: &str = "genecompass_token";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

#[derive(Debug, Clone, Deserialize)]
struct TokenCreated {
    token: String,
}

/// What the three lists hold, as JSON rows (the page shows a few fields of each).
#[derive(Debug, Clone, Default)]
struct Lists {
    me: String,
    datasets: Vec<Value>,
    models: Vec<Value>,
    results: Vec<Value>,
}

async fn load(token: &str) -> Result<Lists, String> {
    let me: Value = http::json(&format!("{API}/me"), Some(token), None::<&()>).await?;
    let get = |path: &'static str| async move {
        http::json::<Vec<Value>>(&format!("{API}/{path}"), Some(token), None::<&()>).await
    };
    Ok(Lists {
        me: me["name"].as_str().unwrap_or("?").to_string(),
        datasets: get("datasets").await?,
        models: get("models").await?,
        results: get("results").await?,
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
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

/// The registry page.
#[component]
pub fn RegistryPage() -> impl IntoView {
    let token = RwSignal::new(storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()));
    let lists = RwSignal::new(None::<Lists>);
    let error = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());

    let refresh = move || {
        let Some(t) = token.get_untracked() else {
            return;
        };
        spawn_local(async move {
            match load(&t).await {
                Ok(l) => {
                    error.set(None);
                    lists.set(Some(l));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    refresh();
    let sign_in = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({"name": name.get_untracked(), "password": password.get_untracked(), "label": "web"});
        spawn_local(async move {
            match http::json::<TokenCreated>(&format!("{API}/auth/login"), None, Some(&body)).await
            {
                Ok(t) => {
                    if let Some(s) = storage() {
                        let _ = s.set_item(TOKEN_KEY, &t.token);
                    }
                    password.set(String::new());
                    token.set(Some(t.token));
                    refresh();
                }
                Err(e) => error.set(Some(format!("Sign-in failed: {e}"))),
            }
        });
    };
    let sign_out = move |_| {
        if let Some(s) = storage() {
            let _ = s.remove_item(TOKEN_KEY);
        }
        token.set(None);
        lists.set(None);
    };

    view! {
        <p class="error" role="alert">{move || error.get()}</p>
        <Show
            when=move || token.get().is_some()
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
            <p>
                {move || lists.get().map(|l| format!("Signed in as {}. ", l.me))}
                <button on:click=move |_| refresh()>"Refresh"</button>
                " "
                <button id="sign-out" on:click=sign_out>"Sign out"</button>
            </p>
            {move || lists.get().map(|l| view! {
                <h2>"Datasets"</h2>
                {table("datasets", l.datasets, &["name", "team", "format", "n_cells", "n_genes", "value_kind"])}
                <h2>"Models"</h2>
                {table("models", l.models, &["name", "team", "versions", "aliases"])}
                <h2>"Results"</h2>
                {table("results", l.results, &["model", "version", "dataset", "task", "metric", "value"])}
            })}
        </Show>
    }
}
