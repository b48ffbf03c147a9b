//! GeneCompass team registry: datasets, checkpoints and results behind an HTTP API
//! (axum + sqlx on SQLite or PostgreSQL).
//!
//! - [`app`]: configuration, shared state and the router ([`app::router`]).
//! - [`api`]: the `/api/v1` handlers.
//! - [`auth`]: users, teams, roles, passwords and API tokens.
//! - [`blobs`]: the content-addressed blob store (a local folder or an S3 bucket).
//! - [`checkpoints`]: checkpoint validation and import as model versions.
//! - [`db`]: connection, migrations, ids.
//! - [`jobs`]: training / annotation jobs, their local and Slurm runners.
//! - [`error`]: the JSON error type.
//! - [`metadata`]: dataset metadata via core's readers.
//! - [`names`]: name and path validation.
//! - [`priors`]: prior-knowledge stores as versioned artifacts linked to checkpoints.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]
#![deny(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod checkpoints;
pub mod db;
pub mod error;
pub mod jobs;
pub mod metadata;
pub mod names;
pub mod priors;
pub mod session;

pub use app::{AppState, ServerConfig, router};
pub use error::AppError;
