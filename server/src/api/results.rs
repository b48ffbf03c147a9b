//! Evaluation results: one row per (model version, dataset, task, metric).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{Role, new_id, now};
use crate::error::{ApiJson, ApiQuery, ApiResult, AppError};

/// One result row, with names resolved.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ResultRow {
    /// Id (`res_...`).
    pub id: String,
    /// Team name.
    pub team: String,
    /// Model id, if any.
    pub model_id: Option<String>,
    /// Model name, if any.
    pub model: Option<String>,
    /// Model version id, if any.
    pub model_version_id: Option<String>,
    /// Model version number, if any.
    pub version: Option<i64>,
    /// Dataset id, if any.
    pub dataset_id: Option<String>,
    /// Dataset name, if any.
    pub dataset: Option<String>,
    /// Job that produced it, if any.
    pub job_id: Option<String>,
    /// Task, e.g. `cell_type_annotation`.
    pub task: String,
    /// Metric, e.g. `macro_f1`.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Recording time (Unix seconds).
    pub created_at: i64,
}

/// `GET /api/v1/results` filters.
#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    /// Model id.
    pub model: Option<String>,
    /// Dataset id.
    pub dataset: Option<String>,
    /// Task.
    pub task: Option<String>,
}

/// `GET /api/v1/results`: the model × dataset × task metrics of the caller's teams.
pub async fn results_index(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> ApiResult<ApiJson<Vec<ResultRow>>> {
    let rows = sqlx::query_as(
        "SELECT r.id, t.name AS team, m.id AS model_id, m.name AS model, r.model_version_id, \
         v.version, r.dataset_id, d.name AS dataset, r.job_id, r.task, r.metric, r.value, r.created_at \
         FROM results r JOIN teams t ON t.id = r.team_id \
         LEFT JOIN model_versions v ON v.id = r.model_version_id \
         LEFT JOIN models m ON m.id = v.model_id \
         LEFT JOIN datasets d ON d.id = r.dataset_id \
         WHERE r.team_id IN (SELECT team_id FROM memberships WHERE user_id = $1) \
         AND ($2 IS NULL OR m.id = $2) AND ($3 IS NULL OR r.dataset_id = $3) \
         AND ($4 IS NULL OR r.task = $4) \
         ORDER BY m.name, v.version, d.name, r.task, r.metric, r.id",
    )
    .bind(&user.id)
    .bind(q.model)
    .bind(q.dataset)
    .bind(q.task)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(ApiJson(rows))
}

/// `POST /api/v1/results` body.
#[derive(Debug, Deserialize)]
pub struct CreateResult {
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
    /// Model version id (must belong to the team).
    pub model_version_id: Option<String>,
    /// Dataset id (must belong to the team).
    pub dataset_id: Option<String>,
    /// Task name.
    pub task: String,
    /// Metric name.
    pub metric: String,
    /// Value (finite).
    pub value: f64,
}

/// `POST /api/v1/results` (editor or admin): records one metric.
pub async fn results_create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateResult>,
) -> ApiResult<(StatusCode, ApiJson<serde_json::Value>)> {
    let team = user.require(req.team.as_deref(), Role::Editor)?;
    if !req.value.is_finite() || req.task.is_empty() || req.metric.is_empty() {
        return Err(AppError::bad_request(
            "invalid_result",
            "task and metric must be non-empty and value finite",
        ));
    }
    if let Some(v) = &req.model_version_id {
        let owned: Option<(String,)> = sqlx::query_as(
            "SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id \
             WHERE v.id = $1 AND m.team_id = $2",
        )
        .bind(v)
        .bind(&team.team_id)
        .fetch_optional(&state.db.pool)
        .await?;
        owned.ok_or_else(|| {
            AppError::NotFound(format!(
                "no model version `{v}` in team `{}`",
                team.team_name
            ))
        })?;
    }
    if let Some(d) = &req.dataset_id {
        let owned: Option<(String,)> =
            sqlx::query_as("SELECT id FROM datasets WHERE id = $1 AND team_id = $2")
                .bind(d)
                .bind(&team.team_id)
                .fetch_optional(&state.db.pool)
                .await?;
        owned.ok_or_else(|| {
            AppError::NotFound(format!("no dataset `{d}` in team `{}`", team.team_name))
        })?;
    }
    let id = new_id("res");
    sqlx::query(
        "INSERT INTO results (id, team_id, model_version_id, dataset_id, task, metric, value, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&team.team_id)
    .bind(&req.model_version_id)
    .bind(&req.dataset_id)
    .bind(&req.task)
    .bind(&req.metric)
    .bind(req.value)
    .bind(&user.id)
    .bind(now())
    .execute(&state.db.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(serde_json::json!({ "id": id })),
    ))
}
