//! `genecompass-web`: cell-type annotation in the browser with the same `genecompass-core`
//! code as the CLI: core's readers open the uploaded file, core's tokenizer ranks genes, and
//! core's classifier runs on WebGPU (burn wgpu) or on burn's flex CPU backend compiled to wasm.
//!
//! One wasm bundle has two entry points: [`start_app`] mounts the Leptos (CSR) page, and
//! [`start_worker`] runs inside a dedicated Web Worker (`static/worker.js`) that does the heavy
//! work, so the page stays responsive and shows results batch by batch.
//!
//! - [`engine`]: bytes → report → tokenized cells → batched predictions (no browser APIs);
//!   [`tokenized`]: the same, chunk by chunk, with memory bounded by the chunk.
//! - [`protocol`]: the page ↔ worker messages.
//! - [`perturb`]: in-silico perturbation of the annotated cells (gene names → tokens, core's
//!   perturber, the classifier on the perturbed cells).
//! - [`layout`]: the embedding plot's PCA / UMAP choice (UMAP settings, captions, progress).
//! - [`results`]: calls, threshold, label counts and the CSV download.
//! - [`annotated`]: file rows of the annotated cells, the h5ad with the labels, label columns.
//! - [`webgpu`]: the backend of a run (WebGPU probing, the Auto policy, one wgpu device).
//! - [`model_store`]: the model list, downloads checked by SHA-256, Cache API.
//! - [`registry_models`]: the registry's classifier versions as models.
//! - `pages/`, `components/`: the UI.

pub mod annotated;
pub mod engine;
pub mod layout;
pub mod model_store;
pub mod perturb;
pub mod protocol;
pub mod registry_models;
pub mod results;
pub mod tokenized;

mod app;
mod blob_source;
mod bridge;
mod components;
mod http;
mod pages;
pub mod webgpu;
mod worker;

use wasm_bindgen::prelude::*;

/// Mounts the page (called by `index.html`).
#[wasm_bindgen]
pub fn start_app() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}

/// Starts the annotation worker (called by `worker.js`).
#[wasm_bindgen]
pub fn start_worker() {
    worker::start();
}
