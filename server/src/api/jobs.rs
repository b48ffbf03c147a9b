//! Jobs: create (editor), list, show, cancel (editor), logs and a server-sent event stream of
//! progress. Every query is scoped to the caller's teams; a job of another team is a 404.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{Role, new_id, now};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError};
use crate::jobs::command::JobPaths;
use crate::jobs::params::resolve;
use crate::jobs::store::{Job, JobRow, SELECT_JOBS};
use crate::jobs::{JobEvent, JobKind, JobState, monitor};

/// `POST /api/v1/jobs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
    /// `finetune`, `pretrain`, `annotate`, `grn`, `fate` or `perturb`.
    pub kind: String,
    /// Kind-specific parameters (see the OpenAPI document); defaults fill the rest.
    #[serde(default)]
    pub params: Value,
}

/// A job the caller may see; 404 otherwise.
async fn find_job(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<JobRow> {
    let sql = format!(
        "{SELECT_JOBS}WHERE j.id = $1 AND j.team_id IN \
         (SELECT team_id FROM memberships WHERE user_id = $2)"
    );
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&user.id)
        .fetch_optional(&state.db.pool)
        .await?;
    row.ok_or_else(|| AppError::NotFound(format!("no job `{id}` in your teams")))
}

/// `POST /api/v1/jobs` (editor or admin): validates, queues, returns the job (201).
pub async fn jobs_create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateJob>,
) -> ApiResult<(StatusCode, ApiJson<Job>)> {
    let team = user.require(req.team.as_deref(), Role::Editor)?.clone();
    let kind: JobKind = req
        .kind
        .parse()
        .map_err(|m: String| AppError::bad_request("invalid_kind", m))?;
    if !(req.params.is_object() || req.params.is_null()) {
        return Err(AppError::bad_request(
            "invalid_params",
            "`params` must be a JSON object",
        ));
    }
    let resolved = resolve(&state, &team, kind, req.params).await?;
    let id = new_id("job");
    let t = now();
    sqlx::query(
        "INSERT INTO jobs (id, team_id, kind, state, params, runner, dataset_id, \
         base_version_id, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&team.team_id)
    .bind(kind.as_str())
    .bind(resolved.params.to_string())
    .bind(state.config.jobs.runner.as_str())
    .bind(&resolved.dataset_id)
    .bind(&resolved.base_version_id)
    .bind(&user.id)
    .bind(t)
    .execute(&state.db.pool)
    .await?;
    tracing::info!(job = %id, kind = kind.as_str(), team = %team.team_name, "job queued");
    state.jobs.wake();
    let job = find_job(&state, &user, &id).await?;
    Ok((StatusCode::CREATED, ApiJson(Job::from(job))))
}

/// `GET /api/v1/jobs` filters.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    /// Team name or id.
    pub team: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// `GET /api/v1/jobs`: jobs of the caller's teams, newest first.
pub async fn jobs_index(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> ApiResult<ApiJson<Vec<Job>>> {
    let team_id = match q.team.as_deref() {
        Some(t) => Some(user.require(Some(t), Role::Viewer)?.team_id.clone()),
        None => None,
    };
    if let Some(s) = &q.state {
        s.parse::<JobState>()
            .map_err(|m| AppError::bad_request("invalid_query", m))?;
    }
    if let Some(k) = &q.kind {
        k.parse::<JobKind>()
            .map_err(|m| AppError::bad_request("invalid_query", m))?;
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let sql = format!(
        "{SELECT_JOBS}WHERE j.team_id IN (SELECT team_id FROM memberships WHERE user_id = $1) \
         AND ($2 IS NULL OR j.team_id = $2) AND ($3 IS NULL OR j.state = $3) \
         AND ($4 IS NULL OR j.kind = $4) ORDER BY j.created_at DESC, j.id DESC LIMIT {limit}"
    );
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&user.id)
        .bind(team_id)
        .bind(q.state)
        .bind(q.kind)
        .fetch_all(&state.db.pool)
        .await?;
    Ok(ApiJson(rows.into_iter().map(Job::from).collect()))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn jobs_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiJson<Job>> {
    find_job(&state, &user, &id)
        .await
        .map(|r| ApiJson(Job::from(r)))
}

/// `POST /api/v1/jobs/{id}/cancel` (editor or admin of the job's team): a queued job is
/// cancelled at once (200); a running one gets SIGTERM, then SIGKILL after the grace period,
/// and becomes `cancelled` when its trainer is gone (202). An ended job gives 409.
pub async fn jobs_cancel(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, ApiJson<Job>)> {
    let job = find_job(&state, &user, &id).await?;
    user.require(Some(&job.team_id), Role::Editor)?;
    if !monitor::cancel(&state, &job).await? {
        return Err(AppError::Conflict(format!(
            "job `{id}` already ended ({})",
            job.state
        )));
    }
    let job = Job::from(find_job(&state, &user, &id).await?);
    let status = if job.state == JobState::Cancelled.as_str() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, ApiJson(job)))
}

/// `GET /api/v1/jobs/{id}/logs` query.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// `stderr` (the trainer's log, default) or `stdout` (its JSON events).
    pub stream: Option<String>,
    /// Only the last N bytes (default 65536, at most 16 MiB).
    pub tail_bytes: Option<u64>,
}

/// `GET /api/v1/jobs/{id}/logs`: the end of the trainer's log as text.
pub async fn jobs_logs(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let job = find_job(&state, &user, &id).await?;
    let paths = JobPaths::new(&state.config.data_dir, &job.id);
    let path = match q.stream.as_deref().unwrap_or("stderr") {
        "stderr" => paths.log(),
        "stdout" => paths.events(),
        other => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("`stream` `{other}`: use stderr or stdout"),
            ));
        }
    };
    let tail = q.tail_bytes.unwrap_or(64 << 10).min(16 << 20);
    let text = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let Ok(mut f) = std::fs::File::open(&path) else {
            return Ok(String::new());
        };
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(tail)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await
    .map_err(AppError::internal)??;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

fn sse_event(kind: &str, data: &Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}

/// Where the event stream stands.
struct StreamState {
    id: String,
    rx: broadcast::Receiver<JobEvent>,
    first: Option<Value>,
    done: bool,
}

fn is_terminal_state(data: &Value) -> bool {
    data["state"]
        .as_str()
        .and_then(|s| s.parse::<JobState>().ok())
        .is_some_and(JobState::is_terminal)
}

/// `GET /api/v1/jobs/{id}/events`: `text/event-stream` of `state` (the whole job; first and on
/// every change), `progress` (step, total_steps, loss, eta_s, progress), `eval` and `trainer`
/// (other trainer events) events; it ends after the state that ends the job.
pub async fn jobs_events(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Subscribe before reading the row, so no change falls in between.
    let rx = state.jobs.subscribe();
    let job = Job::from(find_job(&state, &user, &id).await?);
    let first = serde_json::to_value(&job).map_err(AppError::internal)?;
    let init = StreamState {
        id,
        rx,
        first: Some(first),
        done: false,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(first) = s.first.take() {
            s.done = is_terminal_state(&first);
            return Some((Ok(sse_event("state", &first)), s));
        }
        loop {
            match s.rx.recv().await {
                Ok(e) if e.job_id == s.id => {
                    s.done = e.kind == "state" && is_terminal_state(&e.data);
                    return Some((Ok(sse_event(e.kind, &e.data)), s));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
