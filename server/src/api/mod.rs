//! HTTP handlers, one module per resource. Handlers are named `resource_action`.

pub mod account;
pub mod datasets;
pub mod jobs;
pub mod models;
pub mod openapi;
pub mod priors;
pub mod results;
pub mod uploads;
