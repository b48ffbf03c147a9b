//! Prior-knowledge stores: import (admin), listing, immutable versions with their build
//! manifest, the checkpoints built from each, and file downloads.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::models::VersionFile;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::Role;
use crate::error::{ApiJson, ApiPath, ApiResult, AppError};
use crate::priors::import_priors;

/// `POST /api/v1/priors/import` body.
#[derive(Debug, Deserialize)]
pub struct PriorsImportRequest {
    /// A store folder on the server's file system.
    pub path: PathBuf,
    /// Prior set name in the team; a new version is added if it exists.
    pub name: String,
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
}

/// `POST /api/v1/priors/import` (admin of the team): 201 with the new version, or 200 with
/// the existing one when the same store (same manifest) was imported into the set before.
pub async fn priors_import(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<PriorsImportRequest>,
) -> ApiResult<(StatusCode, ApiJson<PriorVersion>)> {
    let team = user.require(req.team.as_deref(), Role::Admin)?;
    let (set_id, _, version, created) =
        import_priors(&state, &team.team_id, &user.id, &req.path, &req.name).await?;
    let v = find_version(&state, &user, &set_id, &version.to_string()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(v)))
}

/// A prior set with a summary of its versions.
#[derive(Debug, Serialize)]
pub struct PriorSet {
    /// Id (`pri_...`).
    pub id: String,
    /// Owning team name.
    pub team: String,
    /// Name, unique in the team.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Versions, ascending.
    pub versions: Vec<PriorVersionSummary>,
}

/// One version in a listing.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PriorVersionSummary {
    /// Id (`prv_...`).
    pub id: String,
    /// Version number.
    pub version: i64,
    /// Kinds held, as JSON text in the row; decoded for the response.
    #[serde(skip)]
    pub kinds_json: String,
    /// Genes (rows).
    pub genes: i64,
    /// Knowledge width K.
    pub width: i64,
    /// SHA-256 of `priors.json`.
    pub manifest_sha256: String,
    /// Import time (Unix seconds).
    pub created_at: i64,
    /// Kinds held (promoter, co_exp, gene_family, peca_grn).
    #[sqlx(skip)]
    pub kinds: Vec<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct SetRow {
    id: String,
    team_name: String,
    name: String,
    created_at: i64,
}

async fn load_sets(
    state: &AppState,
    user: &AuthUser,
    id: Option<&str>,
) -> ApiResult<Vec<PriorSet>> {
    let rows: Vec<SetRow> = sqlx::query_as(
        "SELECT s.id, t.name AS team_name, s.name, s.created_at \
         FROM prior_sets s JOIN teams t ON t.id = s.team_id \
         WHERE s.team_id IN (SELECT team_id FROM memberships WHERE user_id = $1) \
         AND ($2 IS NULL OR s.id = $2) ORDER BY t.name, s.name",
    )
    .bind(&user.id)
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut versions: Vec<PriorVersionSummary> = sqlx::query_as(
            "SELECT id, version, kinds AS kinds_json, genes, width, manifest_sha256, created_at \
             FROM prior_versions WHERE prior_set_id = $1 ORDER BY version",
        )
        .bind(&r.id)
        .fetch_all(&state.db.pool)
        .await?;
        for v in &mut versions {
            v.kinds = serde_json::from_str(&v.kinds_json).unwrap_or_default();
        }
        out.push(PriorSet {
            id: r.id,
            team: r.team_name,
            name: r.name,
            created_at: r.created_at,
            versions,
        });
    }
    Ok(out)
}

/// `GET /api/v1/priors`: prior sets of the caller's teams.
pub async fn priors_index(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<PriorSet>>> {
    load_sets(&state, &user, None).await.map(ApiJson)
}

/// `GET /api/v1/priors/{id}`.
pub async fn priors_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiJson<PriorSet>> {
    load_sets(&state, &user, Some(&id))
        .await?
        .pop()
        .map(ApiJson)
        .ok_or_else(|| AppError::NotFound(format!("no prior set `{id}` in your teams")))
}

/// A checkpoint built from a prior version.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct PriorUser {
    /// Model id.
    pub model_id: String,
    /// Model name.
    pub model: String,
    /// Model version number.
    pub version: i64,
    /// Model version id.
    pub version_id: String,
}

/// An immutable prior version.
#[derive(Debug, Serialize)]
pub struct PriorVersion {
    /// Id (`prv_...`).
    pub id: String,
    /// Prior set id.
    pub prior_set_id: String,
    /// Prior set name.
    pub name: String,
    /// Version number.
    pub version: i64,
    /// Kinds held.
    pub kinds: Vec<String>,
    /// Genes (rows).
    pub genes: i64,
    /// Knowledge width K.
    pub width: i64,
    /// The store's `priors.json`: builders, seeds, parameters, input hashes, statistics.
    pub manifest: Value,
    /// SHA-256 of `priors.json`.
    pub manifest_sha256: String,
    /// Folder it was imported from.
    pub source_path: String,
    /// User name of the importer.
    pub created_by: String,
    /// Import time (Unix seconds).
    pub created_at: i64,
    /// Stored files.
    pub files: Vec<VersionFile>,
    /// Checkpoints built from it.
    pub used_by: Vec<PriorUser>,
}

#[derive(Debug, sqlx::FromRow)]
struct VersionRow {
    id: String,
    prior_set_id: String,
    name: String,
    version: i64,
    kinds: String,
    genes: i64,
    width: i64,
    manifest: String,
    manifest_sha256: String,
    source_path: String,
    created_by: String,
    created_at: i64,
}

/// A version of a visible prior set by number or `latest`.
pub async fn find_version(
    state: &AppState,
    user: &AuthUser,
    set_id: &str,
    version: &str,
) -> ApiResult<PriorVersion> {
    let number = match version {
        "latest" => None,
        v => Some(v.parse::<i64>().map_err(|_| {
            AppError::bad_request(
                "invalid_path",
                format!("prior version `{v}`: give a number or `latest`"),
            )
        })?),
    };
    let row: Option<VersionRow> = sqlx::query_as(
        "SELECT v.id, v.prior_set_id, s.name, v.version, v.kinds, v.genes, v.width, v.manifest, \
         v.manifest_sha256, v.source_path, u.name AS created_by, v.created_at \
         FROM prior_versions v JOIN prior_sets s ON s.id = v.prior_set_id \
         JOIN users u ON u.id = v.created_by \
         WHERE s.id = $1 AND s.team_id IN (SELECT team_id FROM memberships WHERE user_id = $2) \
         AND ($3 < 0 OR v.version = $3) ORDER BY v.version DESC LIMIT 1",
    )
    .bind(set_id)
    .bind(&user.id)
    .bind(number.unwrap_or(-1))
    .fetch_optional(&state.db.pool)
    .await?;
    let r = row.ok_or_else(|| {
        AppError::NotFound(format!(
            "no version `{version}` of prior set `{set_id}` in your teams"
        ))
    })?;
    let files: Vec<VersionFile> = sqlx::query_as(
        "SELECT path, sha256, size_bytes FROM prior_version_files WHERE version_id = $1 \
         ORDER BY path",
    )
    .bind(&r.id)
    .fetch_all(&state.db.pool)
    .await?;
    let used_by: Vec<PriorUser> = sqlx::query_as(
        "SELECT m.id AS model_id, m.name AS model, v.version, v.id AS version_id \
         FROM model_versions v JOIN models m ON m.id = v.model_id \
         WHERE v.prior_version_id = $1 \
         AND m.team_id IN (SELECT team_id FROM memberships WHERE user_id = $2) \
         ORDER BY m.name, v.version",
    )
    .bind(&r.id)
    .bind(&user.id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(PriorVersion {
        kinds: serde_json::from_str(&r.kinds).unwrap_or_default(),
        manifest: serde_json::from_str(&r.manifest).unwrap_or(Value::Null),
        id: r.id,
        prior_set_id: r.prior_set_id,
        name: r.name,
        version: r.version,
        genes: r.genes,
        width: r.width,
        manifest_sha256: r.manifest_sha256,
        source_path: r.source_path,
        created_by: r.created_by,
        created_at: r.created_at,
        files,
        used_by,
    })
}

/// `GET /api/v1/priors/{id}/versions/{version}`: by number or `latest`.
pub async fn prior_versions_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<PriorVersion>> {
    find_version(&state, &user, &id, &version)
        .await
        .map(ApiJson)
}

/// `GET /api/v1/priors/{id}/versions/{version}/files/{*path}`: one file of the store, with its
/// SHA-256 as `ETag`, `Range` and `If-None-Match`.
pub async fn prior_file_download(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, version, path)): ApiPath<(String, String, String)>,
    req: axum::extract::Request,
) -> ApiResult<axum::response::Response> {
    let v = find_version(&state, &user, &id, &version).await?;
    let file = v.files.iter().find(|f| f.path == path).ok_or_else(|| {
        AppError::NotFound(format!(
            "version {} of prior set `{id}` has no file `{path}`",
            v.version
        ))
    })?;
    // Store file names are fixed by core (`priors.json`, `gene_family.safetensors`, ...).
    let name: String = path
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' && *c != '/')
        .collect();
    state.blobs.serve(&file.sha256, &name, req).await
}
