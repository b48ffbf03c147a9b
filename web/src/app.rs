//! The shell: a header with two tabs. A signal picks the page instead of a router, because the
//! bundle is served as static files and two pages do not justify URL routing. [`Shell`], given
//! to both pages as context, is what they share: the tab, the registry sign-in, and a way to ask
//! the registry page to reload its lists (after the annotate page saved results).

use leptos::prelude::*;

use crate::pages::{AnnotatePage, RegistryPage};

/// The two pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Annotate cells.
    Annotate,
    /// The registry.
    Registry,
}

/// State both pages share.
#[derive(Clone, Copy)]
pub struct Shell {
    /// The page shown.
    pub tab: RwSignal<Tab>,
    /// The registry sign-in (`http::SESSION` for the cookie session), set by the registry page.
    pub session: RwSignal<Option<String>>,
    /// Bumped to make the registry page reload its lists.
    pub reload: RwSignal<u32>,
}

impl Shell {
    /// The shell of the page (each page also works without one, for its own use).
    pub fn get() -> Option<Self> {
        use_context::<Self>()
    }

    /// Shows the registry's results table, reloaded.
    pub fn show_results(self) {
        self.reload.update(|n| *n += 1);
        self.tab.set(Tab::Registry);
    }
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let tab = RwSignal::new(Tab::Annotate);
    provide_context(Shell {
        tab,
        session: RwSignal::new(crate::pages::stored_session()),
        reload: RwSignal::new(0),
    });
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
