//! The `jobs` table: rows, the API view, and the state transitions (each a single conditional
//! `UPDATE`, so concurrent writers cannot move a job out of a terminal state).

use serde::Serialize;
use serde_json::Value;

use super::{JobState, RunnerKind};
use crate::app::AppState;
use crate::db::{Db, now};
use crate::error::AppError;

/// Columns of a job row with its team and creator names.
pub const SELECT_JOBS: &str = "SELECT j.id, j.team_id, t.name AS team_name, j.kind, j.state, \
     j.params, j.runner, j.external_id, j.gpu, j.progress, j.last_event, j.error, j.attempts, \
     j.resume, j.cancel_requested, j.dataset_id, j.base_version_id, j.model_version_id, \
     j.result_path, j.created_by, u.name AS created_by_name, j.created_at, j.started_at, \
     j.finished_at, j.updated_at \
     FROM jobs j JOIN teams t ON t.id = j.team_id JOIN users u ON u.id = j.created_by ";

/// A job row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Id (`job_...`).
    pub id: String,
    /// Owning team id.
    pub team_id: String,
    /// Owning team name.
    pub team_name: String,
    /// `finetune`, `pretrain` or `annotate`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Validated parameters (JSON).
    pub params: String,
    /// `local` or `slurm`.
    pub runner: String,
    /// Process id or Slurm job id of the current attempt.
    pub external_id: Option<String>,
    /// `CUDA_VISIBLE_DEVICES` of the current attempt.
    pub gpu: Option<String>,
    /// Fraction done.
    pub progress: f64,
    /// Latest step event (JSON).
    pub last_event: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Starts so far.
    pub attempts: i64,
    /// 1 when the next start resumes the run folder.
    pub resume: i64,
    /// 1 once a cancel was asked for.
    pub cancel_requested: i64,
    /// Input dataset.
    pub dataset_id: Option<String>,
    /// Starting model version.
    pub base_version_id: Option<String>,
    /// Model version produced.
    pub model_version_id: Option<String>,
    /// File produced (annotations).
    pub result_path: Option<String>,
    /// Creator id.
    pub created_by: String,
    /// Creator name.
    pub created_by_name: String,
    /// Creation time.
    pub created_at: i64,
    /// First start.
    pub started_at: Option<i64>,
    /// End.
    pub finished_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

impl JobRow {
    /// The parsed state (unknown strings count as failed).
    pub fn state(&self) -> JobState {
        self.state.parse().unwrap_or(JobState::Failed)
    }

    /// The parsed runner.
    pub fn runner(&self) -> RunnerKind {
        self.runner.parse().unwrap_or_default()
    }

    /// The parsed parameters.
    pub fn params(&self) -> Value {
        serde_json::from_str(&self.params).unwrap_or(Value::Null)
    }
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Id (`job_...`).
    pub id: String,
    /// Owning team id.
    pub team_id: String,
    /// Owning team name.
    pub team: String,
    /// `finetune`, `pretrain` or `annotate`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Parameters with defaults filled in.
    pub params: Value,
    /// `local` or `slurm`.
    pub runner: String,
    /// Process id (local) or Slurm job id of the current attempt.
    pub external_id: Option<String>,
    /// GPU of the current attempt.
    pub gpu: Option<String>,
    /// Fraction done (0..1).
    pub progress: f64,
    /// Latest step event: step, total_steps, loss, eta_s, cells_per_s.
    pub last_event: Option<Value>,
    /// Why it failed (or how it was recovered).
    pub error: Option<String>,
    /// Starts so far (resumes included).
    pub attempts: i64,
    /// Whether the next start continues from the run folder's checkpoint.
    pub resume: bool,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// Input dataset id.
    pub dataset_id: Option<String>,
    /// Starting model version id.
    pub base_version_id: Option<String>,
    /// Model version registered from the output.
    pub model_version_id: Option<String>,
    /// Output file on the server (annotations).
    pub result_path: Option<String>,
    /// User name of the creator.
    pub created_by: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// First start.
    pub started_at: Option<i64>,
    /// End.
    pub finished_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Self {
            params: r.params(),
            last_event: r
                .last_event
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok()),
            resume: r.resume != 0,
            cancel_requested: r.cancel_requested != 0,
            id: r.id,
            team_id: r.team_id,
            team: r.team_name,
            kind: r.kind,
            state: r.state,
            runner: r.runner,
            external_id: r.external_id,
            gpu: r.gpu,
            progress: r.progress,
            error: r.error,
            attempts: r.attempts,
            dataset_id: r.dataset_id,
            base_version_id: r.base_version_id,
            model_version_id: r.model_version_id,
            result_path: r.result_path,
            created_by: r.created_by_name,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        }
    }
}

/// One job by id, whatever its team (runner use; handlers scope by membership themselves).
pub async fn load(db: &Db, id: &str) -> Result<Option<JobRow>, AppError> {
    let sql = format!("{SELECT_JOBS}WHERE j.id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?)
}

/// Jobs in `state` (oldest first).
pub async fn in_state(db: &Db, state: JobState) -> Result<Vec<JobRow>, AppError> {
    let sql = format!("{SELECT_JOBS}WHERE j.state = $1 ORDER BY j.created_at, j.id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(state.as_str())
        .fetch_all(&db.pool)
        .await?)
}

/// Moves the oldest queued job to `running` for `runner` and returns it (None: queue empty).
pub async fn claim_next(db: &Db, runner: RunnerKind) -> Result<Option<JobRow>, AppError> {
    loop {
        let next: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&db.pool)
        .await?;
        let Some((id,)) = next else { return Ok(None) };
        let t = now();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'running', runner = $2, attempts = attempts + 1, \
             started_at = COALESCE(started_at, $3), updated_at = $3, external_id = NULL \
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(&id)
        .bind(runner.as_str())
        .bind(t)
        .execute(&db.pool)
        .await?;
        if done.rows_affected() == 1 {
            return load(db, &id).await;
        }
    }
}

/// Records the process / Slurm id and GPU of the attempt that just started.
pub async fn set_started(
    db: &Db,
    id: &str,
    external_id: &str,
    gpu: Option<&str>,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE jobs SET external_id = $2, gpu = $3, resume = 0, updated_at = $4 \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(external_id)
    .bind(gpu)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Stores the latest progress.
pub async fn set_progress(db: &Db, id: &str, progress: f64, event: &Value) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE jobs SET progress = $2, last_event = $3, updated_at = $4 \
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(progress)
    .bind(event.to_string())
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Puts a running job back in the queue to be resumed from its run folder.
pub async fn requeue_for_resume(db: &Db, id: &str, note: &str) -> Result<bool, AppError> {
    let r = sqlx::query(
        "UPDATE jobs SET state = 'queued', resume = 1, external_id = NULL, error = $2, \
         updated_at = $3 WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(note)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Ends a queued or running job: `failed` (with the reason), `cancelled` or `succeeded`
/// (with what it produced). Returns false when it had already ended.
pub async fn finish(
    db: &Db,
    id: &str,
    state: JobState,
    error: Option<&str>,
    model_version_id: Option<&str>,
    result_path: Option<&str>,
) -> Result<bool, AppError> {
    let t = now();
    let progress_sql = if state == JobState::Succeeded {
        "1.0"
    } else {
        "progress"
    };
    let sql = format!(
        "UPDATE jobs SET state = $2, error = $3, model_version_id = COALESCE($4, model_version_id), \
         result_path = COALESCE($5, result_path), finished_at = $6, updated_at = $6, \
         progress = {progress_sql} WHERE id = $1 AND state IN ('queued', 'running')"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(state.as_str())
        .bind(error)
        .bind(model_version_id)
        .bind(result_path)
        .bind(t)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Publishes the job's current row as a `state` event.
pub async fn publish_state(state: &AppState, id: &str) {
    match load(&state.db, id).await {
        Ok(Some(row)) => {
            let job = Job::from(row);
            let data = serde_json::to_value(&job).unwrap_or(Value::Null);
            state.jobs.publish(id, "state", data);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(job = id, error = %e, "cannot publish the job state"),
    }
}
