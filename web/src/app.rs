//! The shell: a header with two tabs. A signal picks the page instead of a router, because the
//! bundle is served as static files and two pages do not justify URL routing.

use leptos::prelude::*;

use crate::pages::{AnnotatePage, RegistryPage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Annotate,
    Registry,
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let tab = RwSignal::new(Tab::Annotate);
    let tab_button = move |t: Tab, label: &'static str, id: &'static str| {
        view! {
            <button
                id=id
                class="tab"
                class:active=move || tab.get() == t
                on:click=move |_| tab.set(t)
            >
                {label}
            </button>
        }
    };
    view! {
        <header>
            <h1>"GeneCompass"</h1>
            <nav>
                {tab_button(Tab::Annotate, "Annotate cells", "tab-annotate")}
                {tab_button(Tab::Registry, "Registry", "tab-registry")}
            </nav>
        </header>
        <main>
            // Both pages stay mounted so a run keeps going while the registry is shown.
            <div style:display=move || if tab.get() == Tab::Annotate { "block" } else { "none" }>
                <AnnotatePage />
            </div>
            <div style:display=move || if tab.get() == Tab::Registry { "block" } else { "none" }>
                <RegistryPage />
            </div>
        </main>
    }
}
