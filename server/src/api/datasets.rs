//! Datasets: streaming upload into the blob store, scoped listing, metadata, ranged download.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{AuthUser, Membership};
use crate::blobs::TempBlob;
use crate::db::{Role, new_id, now};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError};
use crate::metadata::{ObsColumnMeta, read_metadata};
use crate::names::check_name;

/// Columns of a dataset row joined with its team and uploader names.
macro_rules! select_datasets {
    () => {
        "SELECT d.id, d.team_id, t.name AS team_name, d.name, d.sha256, d.size_bytes, d.format, \
         d.matrix_path, d.n_cells, d.n_genes, d.value_kind, d.obs_columns, d.warnings, \
         d.gene_report, u.name AS uploaded_by, d.created_at \
         FROM datasets d JOIN teams t ON t.id = d.team_id JOIN users u ON u.id = d.uploaded_by \
         WHERE d.team_id IN (SELECT team_id FROM memberships WHERE user_id = $1) "
    };
}

#[derive(Debug, sqlx::FromRow)]
struct DatasetRow {
    id: String,
    team_id: String,
    team_name: String,
    name: String,
    sha256: String,
    size_bytes: i64,
    format: String,
    matrix_path: String,
    n_cells: i64,
    n_genes: i64,
    value_kind: String,
    obs_columns: String,
    warnings: String,
    gene_report: Option<String>,
    uploaded_by: String,
    created_at: i64,
}

/// A registered dataset.
#[derive(Debug, Serialize)]
pub struct Dataset {
    /// Id (`ds_...`).
    pub id: String,
    /// Owning team id.
    pub team_id: String,
    /// Owning team name.
    pub team: String,
    /// Name, unique in the team.
    pub name: String,
    /// SHA-256 of the file (hex); also the download's ETag.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: i64,
    /// Reader's format description.
    pub format: String,
    /// Matrix read inside the file.
    pub matrix_path: String,
    /// Number of cells.
    pub n_cells: i64,
    /// Number of genes.
    pub n_genes: i64,
    /// How the values look (`raw_counts`, ...).
    pub value_kind: String,
    /// Per-cell metadata columns.
    pub obs_columns: Vec<ObsColumnMeta>,
    /// Reader warnings.
    pub warnings: Vec<String>,
    /// Species, gene identifier kind and genes recognised by the nomenclature (what decides
    /// vocabulary coverage); `null` when the species cannot be told.
    pub genes: Option<crate::metadata::GeneMeta>,
    /// User name of the uploader.
    pub uploaded_by: String,
    /// Upload time (Unix seconds).
    pub created_at: i64,
}

impl From<DatasetRow> for Dataset {
    fn from(r: DatasetRow) -> Self {
        Self {
            obs_columns: serde_json::from_str(&r.obs_columns).unwrap_or_default(),
            warnings: serde_json::from_str(&r.warnings).unwrap_or_default(),
            genes: r
                .gene_report
                .as_deref()
                .and_then(|g| serde_json::from_str(g).ok()),
            id: r.id,
            team_id: r.team_id,
            team: r.team_name,
            name: r.name,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
            format: r.format,
            matrix_path: r.matrix_path,
            n_cells: r.n_cells,
            n_genes: r.n_genes,
            value_kind: r.value_kind,
            uploaded_by: r.uploaded_by,
            created_at: r.created_at,
        }
    }
}

/// Loads a dataset the user may see; 404 otherwise (no hint whether it exists elsewhere).
async fn find_dataset(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<Dataset> {
    let row: Option<DatasetRow> = sqlx::query_as(concat!(select_datasets!(), "AND d.id = $2"))
        .bind(&user.id)
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?;
    row.map(Dataset::from)
        .ok_or_else(|| AppError::NotFound(format!("no dataset `{id}` in your teams")))
}

/// `GET /api/v1/datasets` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this team (name or id).
    pub team: Option<String>,
}

/// `GET /api/v1/datasets`: datasets of the caller's teams, newest first.
pub async fn datasets_index(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<ApiJson<Vec<Dataset>>> {
    let team_id = match q.team.as_deref() {
        Some(t) => Some(user.require(Some(t), Role::Viewer)?.team_id.clone()),
        None => None,
    };
    let rows: Vec<DatasetRow> = sqlx::query_as(concat!(
        select_datasets!(),
        "AND ($2 IS NULL OR d.team_id = $2) ORDER BY d.created_at DESC, d.id"
    ))
    .bind(&user.id)
    .bind(team_id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(ApiJson(rows.into_iter().map(Dataset::from).collect()))
}

/// `GET /api/v1/datasets/{id}`.
pub async fn datasets_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiJson<Dataset>> {
    find_dataset(&state, &user, &id).await.map(ApiJson)
}

/// `POST /api/v1/datasets` query.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// Dataset name, unique in the team (`[A-Za-z0-9._-]`).
    pub name: String,
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
}

/// `POST /api/v1/datasets?name=N[&team=T]` with the raw file as body (editor or admin).
///
/// The body is streamed to a temp file while hashing, read with core's readers, renamed to its
/// content address, and only then registered; a failure at any step leaves no row and no temp file.
pub async fn datasets_create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_name("dataset name", &q.name)?;
    let team = user.require(q.team.as_deref(), Role::Editor)?.clone();
    let limit = state.config.max_upload_bytes;
    let too_large = || AppError::PayloadTooLarge(format!("uploads are limited to {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    check_free_name(&state, &team, &q.name).await?;

    let mut writer = state.blobs.writer().await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::bad_request(
                "upload_interrupted",
                format!("reading the upload failed: {e}"),
            )
        })?;
        if writer.size() + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        writer.write(&chunk).await?;
    }
    if writer.size() == 0 {
        return Err(AppError::bad_request("empty_body", "the upload is empty"));
    }
    let blob = writer.finish().await?;
    register_dataset(&state, &user, &team, &q.name, blob).await
}

/// Whether `name` is free in the team (409 naming the dataset that holds it otherwise).
pub(crate) async fn check_free_name(
    state: &AppState,
    team: &Membership,
    name: &str,
) -> Result<(), AppError> {
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM datasets WHERE team_id = $1 AND name = $2")
            .bind(&team.team_id)
            .bind(name)
            .fetch_optional(&state.db.pool)
            .await?;
    match taken {
        Some((id,)) => Err(AppError::Conflict(format!(
            "team `{}` already has a dataset `{name}` ({id})",
            team.team_name
        ))),
        None => Ok(()),
    }
}

/// Reads a finished upload with core's readers, moves it to its content address and registers
/// it; a failure at any step leaves no row and no temp file. Answers 201 with the dataset.
pub(crate) async fn register_dataset(
    state: &AppState,
    user: &AuthUser,
    team: &Membership,
    name: &str,
    blob: TempBlob,
) -> ApiResult<Response> {
    let tmp = blob.path().to_path_buf();
    let meta = tokio::task::spawn_blocking(move || read_metadata(&tmp))
        .await
        .map_err(AppError::internal)?
        .map_err(|message| AppError::Unprocessable {
            code: "unreadable_dataset",
            message,
        })?;
    let (sha256, size) = (blob.sha256.clone(), blob.size as i64);
    blob.commit(&state.blobs).await?;

    let id = new_id("ds");
    let mut tx = state.db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO datasets (id, team_id, name, sha256, size_bytes, format, matrix_path, \
         n_cells, n_genes, value_kind, obs_columns, warnings, uploaded_by, created_at, \
         gene_report) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&id)
    .bind(&team.team_id)
    .bind(name)
    .bind(&sha256)
    .bind(size)
    .bind(&meta.format)
    .bind(&meta.matrix_path)
    .bind(meta.n_cells as i64)
    .bind(meta.n_genes as i64)
    .bind(&meta.value_kind)
    .bind(serde_json::to_string(&meta.obs_columns).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&meta.warnings).map_err(AppError::internal)?)
    .bind(&user.id)
    .bind(now())
    .bind(
        meta.genes
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(AppError::internal)?,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%id, team = %team.team_name, %name, %sha256, "dataset registered");

    let dataset = find_dataset(state, user, &id).await?;
    let location =
        HeaderValue::from_str(&format!("/api/v1/datasets/{id}")).map_err(AppError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(LOCATION, location)],
        ApiJson(dataset),
    )
        .into_response())
}

/// `GET /api/v1/datasets/{id}/download`: the file, honouring `Range` and conditional headers.
pub async fn datasets_download(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let d = find_dataset(&state, &user, &id).await?;
    // The name passed `check_name`, so it is safe inside quotes.
    state.blobs.serve(&d.sha256, &d.name, req).await
}
