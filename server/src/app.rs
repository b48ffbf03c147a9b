//! Server configuration, shared state and the router with its middleware stack.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::blobs::{BlobError, BlobStore, RemoteConfig};
use crate::db::{Db, DbError, sqlite_url};
use crate::error::AppError;
use crate::jobs::{Jobs, JobsConfig};

/// Default limit for JSON bodies (1 MiB).
pub const DEFAULT_MAX_JSON_BYTES: usize = 1 << 20;
/// Default limit for dataset uploads (20 GiB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 << 30;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds the SQLite file (by default), `blobs/` and `tmp/`.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; `None` means `DATA_DIR/genecompass.db`.
    pub database_url: Option<String>,
    /// Largest accepted JSON body, in bytes (default 1 MiB).
    pub max_json_bytes: usize,
    /// Largest accepted upload, in bytes (default 20 GiB).
    pub max_upload_bytes: u64,
    /// The built web UI (`web/dist`), served at `/`; `None` serves only the API.
    pub web_dir: Option<PathBuf>,
    /// How jobs run (runner, trainer binary, concurrency, GPUs).
    pub jobs: JobsConfig,
    /// An S3-compatible bucket for blobs; `None` keeps them in `DATA_DIR/blobs`.
    pub blob_store: Option<RemoteConfig>,
}

impl ServerConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            web_dir: None,
            jobs: JobsConfig::default(),
            blob_store: None,
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.data_dir))
    }
}

/// Shared by all handlers (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The blob store.
    pub blobs: BlobStore,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// Job scheduling and events (the runner starts with [`crate::jobs::start`]).
    pub jobs: Jobs,
}

/// Errors while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database cannot be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The blob store cannot be opened.
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

impl AppState {
    /// Creates the data directory, connects, applies migrations.
    pub async fn open(config: ServerConfig) -> Result<Self, StartError> {
        let dir_err = |source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(dir_err)?;
        let blobs = BlobStore::open(&config.data_dir, config.blob_store.as_ref())?;
        let db = Db::connect(&config.database_url()).await?;
        db.migrate().await?;
        Ok(Self {
            db,
            blobs,
            config: Arc::new(config),
            jobs: Jobs::new(),
        })
    }
}

/// `GET /api/v1/health`: 200 when the database answers, 503 otherwise.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let ok = state.db.ping().await;
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": state.db.kind.name(),
        "blob_store": if state.blobs.remote().is_some() { "s3" } else { "local" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Unknown paths get the API's error shape too.
async fn fallback() -> AppError {
    AppError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
}

/// The `/api/v1` routes, without middleware.
fn api_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(api::openapi::document))
        .route("/auth/login", post(api::account::login))
        .route("/auth/session", post(api::account::session_create))
        .route("/auth/logout", post(api::account::logout))
        .route("/me", get(api::account::me))
        .route(
            "/tokens",
            get(api::account::tokens_index).post(api::account::tokens_create),
        )
        .route(
            "/tokens/{id}",
            axum::routing::delete(api::account::tokens_revoke),
        )
        .route(
            "/datasets",
            get(api::datasets::datasets_index).post(api::datasets::datasets_create),
        )
        .route("/datasets/{id}", get(api::datasets::datasets_show))
        .route(
            "/datasets/{id}/download",
            get(api::datasets::datasets_download),
        )
        .route("/uploads", post(api::uploads::uploads_create))
        .route(
            "/uploads/{id}",
            get(api::uploads::uploads_show)
                .patch(api::uploads::uploads_append)
                .delete(api::uploads::uploads_abort),
        )
        .route(
            "/uploads/{id}/complete",
            post(api::uploads::uploads_complete),
        )
        .route("/checkpoints/import", post(api::models::checkpoints_import))
        .route("/models", get(api::models::models_index))
        .route("/models/{id}", get(api::models::models_show))
        .route(
            "/models/{id}/versions/{version}",
            get(api::models::versions_show),
        )
        .route(
            "/models/{id}/versions/{version}/files/{*path}",
            get(api::models::version_file_download),
        )
        .route(
            "/models/{id}/aliases/{alias}",
            put(api::models::aliases_update),
        )
        .route("/priors", get(api::priors::priors_index))
        .route("/priors/import", post(api::priors::priors_import))
        .route("/priors/{id}", get(api::priors::priors_show))
        .route(
            "/priors/{id}/versions/{version}",
            get(api::priors::prior_versions_show),
        )
        .route(
            "/priors/{id}/versions/{version}/files/{*path}",
            get(api::priors::prior_file_download),
        )
        .route(
            "/jobs",
            get(api::jobs::jobs_index).post(api::jobs::jobs_create),
        )
        .route("/jobs/{id}", get(api::jobs::jobs_show))
        .route("/jobs/{id}/cancel", post(api::jobs::jobs_cancel))
        .route("/jobs/{id}/logs", get(api::jobs::jobs_logs))
        .route("/jobs/{id}/events", get(api::jobs::jobs_events))
        .route(
            "/results",
            get(api::results::results_index).post(api::results::results_create),
        )
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
}

/// The whole application: routes, request ids (`x-request-id`, generated when absent and
/// echoed back), a tracing span per request carrying that id, and the JSON fallback.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id));
    // The API keeps its JSON 404 under /api/v1 whether or not the web UI is served.
    let app = Router::new().nest("/api/v1", api_routes(&state).fallback(fallback));
    let app = match &state.config.web_dir {
        Some(dir) => app.fallback_service(ServeDir::new(dir)),
        None => app.fallback(fallback),
    };
    app.layer(middleware).with_state(state)
}

/// Where `serve` finds the web UI when `--web-dir` is not given: `web/dist` (or `dist`) next
/// to the executable, else `web/dist` under the working directory (a checkout). Only a folder
/// holding `index.html` counts, so an unbuilt checkout serves the API alone.
pub fn default_web_dir() -> Option<PathBuf> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from));
    let cwd = std::env::current_dir().ok();
    exe_dir
        .iter()
        .flat_map(|d| [d.join("web/dist"), d.join("dist")])
        .chain(cwd.map(|d| d.join("web/dist")))
        .find(|d| d.join("index.html").is_file())
}
