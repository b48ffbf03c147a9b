//! The classifier picker: the manifest's models, and, when the user is signed in to the
//! registry, the classifier versions of their teams ([`crate::registry_models`]). A registry
//! version the browser cannot run stays in the list with "cannot run here", and choosing it
//! shows why.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use crate::app::Shell;
use crate::http;
use crate::model_store::{ModelEntry, load_manifest};
use crate::pages::registry::Membership;
use crate::registry_models::{
    API, ModelVersion, RegistryChoice, RegistryModel, classifier_choices,
};

/// Where the model list is read from unless the user types another URL.
pub(super) const DEFAULT_MANIFEST: &str = "models/index.json";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Me {
    teams: Vec<Membership>,
}

/// The teams of the signed-in user and their classifier versions.
async fn fetch_registry(token: &str) -> Result<(Vec<Membership>, Vec<RegistryChoice>), String> {
    let me: Me = http::json(&format!("{API}/me"), Some(token), None::<&()>).await?;
    let models: Vec<RegistryModel> =
        http::json(&format!("{API}/models"), Some(token), None::<&()>).await?;
    let mut versions = Vec::new();
    for m in &models {
        for v in &m.versions {
            let url = format!("{API}/models/{}/versions/{v}", m.id);
            let version: ModelVersion = http::json(&url, Some(token), None::<&()>).await?;
            versions.push((m.clone(), version));
        }
    }
    Ok((me.teams, classifier_choices(&versions)))
}

/// What the picker shows and which model is chosen.
#[derive(Clone, Copy)]
pub(super) struct ModelList {
    pub manifest_url: RwSignal<String>,
    pub manifest: RwSignal<Vec<ModelEntry>>,
    pub manifest_error: RwSignal<Option<String>>,
    pub registry: RwSignal<Vec<RegistryChoice>>,
    /// Teams of the signed-in user (roles decide who may save results).
    pub teams: RwSignal<Vec<Membership>>,
    /// Why no registry model is listed (signed out, or the list failed).
    pub registry_note: RwSignal<Option<String>>,
    pub registry_loading: RwSignal<bool>,
    /// The chosen option: a manifest id or a [`RegistryChoice::id`].
    pub selected: RwSignal<String>,
}

impl ModelList {
    pub fn new() -> Self {
        Self {
            manifest_url: RwSignal::new(DEFAULT_MANIFEST.to_string()),
            manifest: RwSignal::new(Vec::new()),
            manifest_error: RwSignal::new(None),
            registry: RwSignal::new(Vec::new()),
            teams: RwSignal::new(Vec::new()),
            registry_note: RwSignal::new(None),
            registry_loading: RwSignal::new(false),
            selected: RwSignal::new(String::new()),
        }
    }

    /// Keeps the choice valid: the current one if it is still listed, else the first manifest
    /// model, else the first runnable registry version.
    fn keep_selection_valid(self) {
        let current = self.selected.get_untracked();
        let listed = self
            .manifest
            .with_untracked(|m| m.iter().any(|e| e.id == current))
            || self
                .registry
                .with_untracked(|r| r.iter().any(|c| c.id() == current));
        if listed {
            return;
        }
        let first = self
            .manifest
            .with_untracked(|m| m.first().map(|e| e.id.clone()))
            .or_else(|| {
                self.registry.with_untracked(|r| {
                    r.iter()
                        .find(|c| c.entry.is_ok())
                        .or(r.first())
                        .map(RegistryChoice::id)
                })
            });
        if let Some(id) = first {
            self.selected.set(id);
        }
    }

    /// Reloads the manifest from [`ModelList::manifest_url`].
    pub fn load_manifest(self) {
        let url = self.manifest_url.get_untracked();
        spawn_local(async move {
            match load_manifest(&url).await {
                Ok(list) => {
                    self.manifest_error.set(None);
                    self.manifest.set(list);
                }
                Err(e) => {
                    self.manifest.set(Vec::new());
                    self.manifest_error
                        .set(Some(format!("Cannot load the model list: {e}")));
                }
            }
            self.keep_selection_valid();
        });
    }

    /// Lists the registry's classifiers for `session` (none when signed out).
    pub fn load_registry(self, session: Option<String>) {
        let Some(token) = session else {
            self.registry.set(Vec::new());
            self.teams.set(Vec::new());
            self.registry_note.set(Some(
                "Sign in on the Registry tab to also choose your team's classifiers.".into(),
            ));
            self.keep_selection_valid();
            return;
        };
        self.registry_loading.set(true);
        spawn_local(async move {
            match fetch_registry(&token).await {
                Ok((teams, choices)) => {
                    self.registry_note.set(choices.is_empty().then(|| {
                        "Your teams have no classifier in the registry yet: fine-tune one on \
                         the Registry tab."
                            .to_string()
                    }));
                    self.teams.set(teams);
                    self.registry.set(choices);
                }
                Err(e) => {
                    self.registry.set(Vec::new());
                    self.registry_note.set(Some(format!(
                        "Cannot list the registry's models: {e}. Sign in again on the Registry \
                         tab if your sign-in expired."
                    )));
                }
            }
            self.registry_loading.set(false);
            self.keep_selection_valid();
        });
    }

    /// The chosen model, or why it cannot be used.
    pub fn chosen(self) -> Result<ModelEntry, String> {
        let id = self.selected.get_untracked();
        if let Some(e) = self
            .manifest
            .with_untracked(|m| m.iter().find(|e| e.id == id).cloned())
        {
            return Ok(e);
        }
        match self
            .registry
            .with_untracked(|r| r.iter().find(|c| c.id() == id).cloned())
        {
            Some(c) => {
                let label = c.label();
                c.entry
                    .map_err(|why| format!("{label} cannot run in the browser: {why}."))
            }
            None => Err("Choose a model first (the model list may have failed to load).".into()),
        }
    }

    /// What to show under the picker about the chosen model: `(text, is a problem)`.
    fn info(self) -> Option<(String, bool)> {
        let id = self.selected.get();
        if let Some(d) = self
            .manifest
            .with(|m| m.iter().find(|e| e.id == id).map(|e| e.description.clone()))
        {
            // The name is in the list already; say more only when the manifest does.
            return (!d.is_empty()).then_some((d, false));
        }
        self.registry.with(|r| {
            let c = r.iter().find(|c| c.id() == id)?;
            let i = &c.info;
            let aliases = if i.aliases.is_empty() {
                "no alias".to_string()
            } else {
                format!("aliases {}", i.aliases.join(", "))
            };
            let head = format!(
                "Registry model {}, version {} ({aliases}), team {}",
                i.model_name, i.version, i.team
            );
            Some(match &c.entry {
                Ok(_) => (format!("{head}."), false),
                Err(why) => (format!("{head}: cannot run in the browser: {why}."), true),
            })
        })
    }
}

/// The picker: the model list (manifest, then registry), what the chosen model is, and the
/// manifest's URL.
#[component]
pub(super) fn ModelPicker(list: ModelList) -> impl IntoView {
    list.load_manifest();
    // The registry's models follow the sign-in made on the Registry tab.
    if let Some(shell) = Shell::get() {
        Effect::new(move |_| list.load_registry(shell.session.get()));
    }
    let reload_registry = move |_| list.load_registry(Shell::get().and_then(|s| s.session.get()));
    view! {
        <label>
            "Classifier "
            <select id="model-select" aria-describedby="model-info"
                on:change=move |ev| list.selected.set(event_target_value(&ev))
                prop:value=move || list.selected.get()>
                // Options say whether they are chosen, so re-listing keeps the choice shown.
                <optgroup label="Model list">
                    {move || list.manifest.get().into_iter().map(|m| {
                        let title = m.description.clone();
                        let id = m.id.clone();
                        view! {
                            <option value=m.id.clone() title=title
                                prop:selected=move || list.selected.get() == id>{m.name.clone()}</option>
                        }
                    }).collect_view()}
                </optgroup>
                {move || list.registry.with(|r| !r.is_empty()).then(|| view! {
                    <optgroup label="Registry">
                        {list.registry.get().into_iter().map(|c| {
                            let text = match &c.entry {
                                Ok(_) => format!("{} · {}", c.label(), c.info.team),
                                Err(_) => format!("{} · {} (cannot run here)", c.label(), c.info.team),
                            };
                            let id = c.id();
                            view! {
                                <option value=c.id() data-runnable=c.entry.is_ok().to_string()
                                    prop:selected=move || list.selected.get() == id>{text}</option>
                            }
                        }).collect_view()}
                    </optgroup>
                })}
            </select>
        </label>
        <button type="button" id="registry-models-reload" on:click=reload_registry
            disabled=move || list.registry_loading.get()
            title="List the registry's classifiers again">"Reload models"</button>
        <label class="small">
            "Model list "
            <input id="manifest-url" type="text" prop:value=move || list.manifest_url.get()
                on:change=move |ev| { list.manifest_url.set(event_target_value(&ev)); list.load_manifest(); } />
        </label>
        <p id="model-info" class="note" class:error=move || list.info().is_some_and(|i| i.1)>
            {move || list.info().map(|i| i.0)}
        </p>
        <p id="registry-note" class="note">{move || list.registry_note.get()}</p>
        <p class="error" role="alert">{move || list.manifest_error.get()}</p>
    }
}
