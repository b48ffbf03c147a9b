//! API test suite, run against SQLite always and against PostgreSQL when
//! `GENECOMPASS_TEST_POSTGRES_URL` is set (see `server/tests/start_postgres.sh`).

mod common;
mod datasets;
mod errors;
mod jobs;
mod jobs_run;
mod jobs_tasks;
mod models;
mod priors;
mod s3;
mod security;
mod sessions;
mod tokenized;
mod uploads;
