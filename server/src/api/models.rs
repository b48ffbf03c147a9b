//! Models: checkpoint import (admin), listing, immutable versions and movable aliases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::checkpoints::{import_checkpoint, set_alias};
use crate::db::Role;
use crate::error::{ApiJson, ApiPath, ApiResult, AppError};
use crate::names::check_name;

/// `POST /api/v1/checkpoints/import` body.
#[derive(Debug, Deserialize)]
pub struct ImportRequest {
    /// A model directory on the server's file system.
    pub path: PathBuf,
    /// Model name in the team; a new version is added if it exists.
    pub name: String,
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
    /// Aliases to point at the new version besides `latest` (e.g. `production`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `POST /api/v1/checkpoints/import` (admin of the team): validates and stores a checkpoint.
pub async fn checkpoints_import(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ImportRequest>,
) -> ApiResult<(StatusCode, ApiJson<ModelVersion>)> {
    let team = user.require(req.team.as_deref(), Role::Admin)?;
    let (model_id, _, version) = import_checkpoint(
        &state,
        &team.team_id,
        &user.id,
        &req.path,
        &req.name,
        &req.aliases,
    )
    .await?;
    let v = find_version(&state, &user, &model_id, &version.to_string()).await?;
    Ok((StatusCode::CREATED, ApiJson(v)))
}

#[derive(Debug, sqlx::FromRow)]
struct ModelRow {
    id: String,
    team_id: String,
    team_name: String,
    name: String,
    created_at: i64,
}

/// A model with its versions and aliases.
#[derive(Debug, Serialize)]
pub struct Model {
    /// Id (`mdl_...`).
    pub id: String,
    /// Owning team id.
    pub team_id: String,
    /// Owning team name.
    pub team: String,
    /// Name, unique in the team.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Version numbers, ascending.
    pub versions: Vec<i64>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, i64>,
}

const SELECT_MODELS: &str = "SELECT m.id, m.team_id, t.name AS team_name, m.name, m.created_at \
     FROM models m JOIN teams t ON t.id = m.team_id \
     WHERE m.team_id IN (SELECT team_id FROM memberships WHERE user_id = $1) \
     AND ($2 IS NULL OR m.id = $2) ORDER BY t.name, m.name";

async fn load_models(state: &AppState, user: &AuthUser, id: Option<&str>) -> ApiResult<Vec<Model>> {
    let rows: Vec<ModelRow> = sqlx::query_as(SELECT_MODELS)
        .bind(&user.id)
        .bind(id)
        .fetch_all(&state.db.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let versions: Vec<(i64,)> = sqlx::query_as(
            "SELECT version FROM model_versions WHERE model_id = $1 ORDER BY version",
        )
        .bind(&r.id)
        .fetch_all(&state.db.pool)
        .await?;
        let aliases: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.alias, v.version FROM model_aliases a \
             JOIN model_versions v ON v.id = a.version_id WHERE a.model_id = $1",
        )
        .bind(&r.id)
        .fetch_all(&state.db.pool)
        .await?;
        out.push(Model {
            id: r.id,
            team_id: r.team_id,
            team: r.team_name,
            name: r.name,
            created_at: r.created_at,
            versions: versions.into_iter().map(|(v,)| v).collect(),
            aliases: aliases.into_iter().collect(),
        });
    }
    Ok(out)
}

/// `GET /api/v1/models`: models of the caller's teams.
pub async fn models_index(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Model>>> {
    load_models(&state, &user, None).await.map(ApiJson)
}

/// `GET /api/v1/models/{id}`.
pub async fn models_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiJson<Model>> {
    let mut found = load_models(&state, &user, Some(&id)).await?;
    found
        .pop()
        .map(ApiJson)
        .ok_or_else(|| AppError::NotFound(format!("no model `{id}` in your teams")))
}

/// One stored file of a version.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct VersionFile {
    /// Path relative to the model directory.
    pub path: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct VersionRow {
    id: String,
    model_id: String,
    version: i64,
    kind: String,
    config: String,
    weights_file: String,
    tensor_count: i64,
    source_path: String,
    created_by: String,
    created_at: i64,
    prior_version_id: Option<String>,
    parent_version_id: Option<String>,
    dataset_id: Option<String>,
    job_id: Option<String>,
    model_card: Option<String>,
}

/// A model version named from elsewhere (a parent).
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct VersionRef {
    /// Model id.
    pub model_id: String,
    /// Model name.
    pub model: String,
    /// Version number.
    pub version: i64,
    /// Version id.
    pub version_id: String,
}

/// Where a version came from.
#[derive(Debug, Default, Serialize)]
pub struct Lineage {
    /// The version it was trained from.
    pub parent: Option<VersionRef>,
    /// The dataset it was trained on: `{id, name}`.
    pub dataset: Option<Value>,
    /// The job that made it.
    pub job_id: Option<String>,
}

/// The prior version a checkpoint's knowledge tables were built from.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PriorRef {
    /// Prior set id.
    pub prior_set_id: String,
    /// Prior set name.
    pub name: String,
    /// Prior version number.
    pub version: i64,
    /// Prior version id.
    pub version_id: String,
}

/// An immutable model version.
#[derive(Debug, Serialize)]
pub struct ModelVersion {
    /// Id (`ver_...`).
    pub id: String,
    /// Model id.
    pub model_id: String,
    /// Version number (1, 2, ...).
    pub version: i64,
    /// `masked_lm` or `classifier`.
    pub kind: String,
    /// The checkpoint's `config.json` as core read it.
    pub config: Value,
    /// The weights file that was validated.
    pub weights_file: String,
    /// Tensors in that file.
    pub tensor_count: i64,
    /// Directory it was imported from.
    pub source_path: String,
    /// User name of the importer.
    pub created_by: String,
    /// Import time (Unix seconds).
    pub created_at: i64,
    /// Aliases pointing here.
    pub aliases: Vec<String>,
    /// Stored files.
    pub files: Vec<VersionFile>,
    /// The registered prior store it was built with (`pretrain --priors`), if any.
    pub priors: Option<PriorRef>,
    /// Parent version, dataset and job (for versions made by jobs).
    pub lineage: Lineage,
    /// The model card (Markdown): scores, baseline, data and settings for fine-tunes.
    pub model_card: Option<String>,
}

/// A version of a visible model by number or alias.
async fn find_version(
    state: &AppState,
    user: &AuthUser,
    model_id: &str,
    version: &str,
) -> ApiResult<ModelVersion> {
    let not_found = || {
        AppError::NotFound(format!(
            "no version `{version}` of model `{model_id}` in your teams"
        ))
    };
    let number = version.parse::<i64>().ok();
    let row: Option<VersionRow> = sqlx::query_as(
        "SELECT v.id, v.model_id, v.version, v.kind, v.config, v.weights_file, v.tensor_count, \
         v.source_path, u.name AS created_by, v.created_at, v.prior_version_id, \
         v.parent_version_id, v.dataset_id, v.job_id, v.model_card \
         FROM model_versions v JOIN models m ON m.id = v.model_id JOIN users u ON u.id = v.created_by \
         WHERE m.id = $1 AND m.team_id IN (SELECT team_id FROM memberships WHERE user_id = $2) \
         AND (v.version = $3 OR v.id = (SELECT version_id FROM model_aliases \
                                        WHERE model_id = $1 AND alias = $4))",
    )
    .bind(model_id)
    .bind(&user.id)
    .bind(number.unwrap_or(-1))
    .bind(version)
    .fetch_optional(&state.db.pool)
    .await?;
    let r = row.ok_or_else(not_found)?;
    let aliases: Vec<(String,)> =
        sqlx::query_as("SELECT alias FROM model_aliases WHERE version_id = $1 ORDER BY alias")
            .bind(&r.id)
            .fetch_all(&state.db.pool)
            .await?;
    let files: Vec<VersionFile> = sqlx::query_as(
        "SELECT path, sha256, size_bytes FROM model_version_files WHERE version_id = $1 ORDER BY path",
    )
    .bind(&r.id)
    .fetch_all(&state.db.pool)
    .await?;
    let priors: Option<PriorRef> = match &r.prior_version_id {
        Some(pv) => {
            sqlx::query_as(
                "SELECT s.id AS prior_set_id, s.name, v.version, v.id AS version_id \
                 FROM prior_versions v JOIN prior_sets s ON s.id = v.prior_set_id WHERE v.id = $1",
            )
            .bind(pv)
            .fetch_optional(&state.db.pool)
            .await?
        }
        None => None,
    };
    let parent: Option<VersionRef> = match &r.parent_version_id {
        Some(p) => {
            sqlx::query_as(
                "SELECT m.id AS model_id, m.name AS model, v.version, v.id AS version_id \
                 FROM model_versions v JOIN models m ON m.id = v.model_id WHERE v.id = $1",
            )
            .bind(p)
            .fetch_optional(&state.db.pool)
            .await?
        }
        None => None,
    };
    let dataset: Option<(String, String)> = match &r.dataset_id {
        Some(d) => {
            sqlx::query_as("SELECT id, name FROM datasets WHERE id = $1")
                .bind(d)
                .fetch_optional(&state.db.pool)
                .await?
        }
        None => None,
    };
    let lineage = Lineage {
        parent,
        dataset: dataset.map(|(id, name)| serde_json::json!({ "id": id, "name": name })),
        job_id: r.job_id.clone(),
    };
    Ok(ModelVersion {
        priors,
        lineage,
        model_card: r.model_card.clone(),
        config: serde_json::from_str(&r.config).unwrap_or(Value::Null),
        id: r.id,
        model_id: r.model_id,
        version: r.version,
        kind: r.kind,
        weights_file: r.weights_file,
        tensor_count: r.tensor_count,
        source_path: r.source_path,
        created_by: r.created_by,
        created_at: r.created_at,
        aliases: aliases.into_iter().map(|(a,)| a).collect(),
        files,
    })
}

/// `GET /api/v1/models/{id}/versions/{version}`: by number (`3`) or alias (`production`).
pub async fn versions_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<ModelVersion>> {
    find_version(&state, &user, &id, &version)
        .await
        .map(ApiJson)
}

/// `PUT /api/v1/models/{id}/aliases/{alias}` body.
#[derive(Debug, Deserialize)]
pub struct AliasUpdate {
    /// Version number the alias should point at.
    pub version: i64,
}

/// `PUT /api/v1/models/{id}/aliases/{alias}` (admin of the model's team): moves an alias.
pub async fn aliases_update(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, alias)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<AliasUpdate>,
) -> ApiResult<ApiJson<ModelVersion>> {
    check_name("alias", &alias)?;
    if alias.parse::<i64>().is_ok() {
        return Err(AppError::bad_request(
            "invalid_name",
            "an alias cannot be a number",
        ));
    }
    let model = load_models(&state, &user, Some(&id))
        .await?
        .pop()
        .ok_or_else(|| AppError::NotFound(format!("no model `{id}` in your teams")))?;
    user.require(Some(&model.team_id), Role::Admin)?;
    let target = find_version(&state, &user, &id, &req.version.to_string()).await?;
    let mut tx = state.db.pool.begin().await?;
    set_alias(&mut tx, &id, &alias, &target.id).await?;
    tx.commit().await?;
    find_version(&state, &user, &id, &alias).await.map(ApiJson)
}

/// `GET /api/v1/models/{id}/versions/{version}/files/{*path}`: one file of a version (by number
/// or alias), with its SHA-256 as `ETag`, `Range` and `If-None-Match`: what the web app
/// downloads once and caches by hash.
pub async fn version_file_download(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, version, path)): ApiPath<(String, String, String)>,
    req: axum::extract::Request,
) -> ApiResult<axum::response::Response> {
    let v = find_version(&state, &user, &id, &version).await?;
    let file = v.files.iter().find(|f| f.path == path).ok_or_else(|| {
        AppError::NotFound(format!(
            "version {} of model `{id}` has no file `{path}`; its files are listed by \
             GET /api/v1/models/{id}/versions/{}",
            v.version, v.version
        ))
    })?;
    // Stored paths are relative paths checked at import; the download name is the last part,
    // stripped of anything that could break out of the header's quotes.
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    state.blobs.serve(&file.sha256, &name, req).await
}
