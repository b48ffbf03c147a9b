//! What a successful job leaves in the registry: the trained model imported as a new model
//! version (the same path as `genecompass import-checkpoint`), and for fine-tuning the test
//! metrics of `metrics.json` (model and logistic-regression baseline) as results linked to the
//! job, the new version and the dataset.

use serde_json::Value;

use super::JobKind;
use super::command::JobPaths;
use super::store::JobRow;
use crate::app::AppState;
use crate::checkpoints::import_checkpoint;
use crate::db::{new_id, now};
use crate::error::AppError;

/// The task name of fine-tuning results.
pub const FINETUNE_TASK: &str = "cell_type_annotation";

/// The metrics recorded from a fine-tune's `metrics.json`: `(metric, JSON pointer)`.
pub const FINETUNE_METRICS: [(&str, &str); 4] = [
    ("accuracy", "/test/accuracy"),
    ("macro_f1", "/test/macro_f1"),
    ("baseline_accuracy", "/baseline/test/accuracy"),
    ("baseline_macro_f1", "/baseline/test/macro_f1"),
];

/// Registers a finished job's outputs; returns `(model version id, result path)`.
pub async fn register(
    state: &AppState,
    job: &JobRow,
    paths: &JobPaths,
) -> Result<(Option<String>, Option<String>), AppError> {
    let kind: JobKind = job.kind.parse().map_err(AppError::internal)?;
    if kind == JobKind::Annotate {
        return Ok((None, Some(paths.predictions().display().to_string())));
    }
    let params = job.params();
    let name = params["model_name"]
        .as_str()
        .ok_or_else(|| AppError::internal("job params lack model_name"))?
        .to_string();
    let model_dir = paths.run_dir().join("model");
    let (_, version_id, version) =
        import_checkpoint(state, &job.team_id, &job.created_by, &model_dir, &name, &[]).await?;
    tracing::info!(job = %job.id, model = %name, version, "job output registered");
    if kind == JobKind::Finetune {
        let metrics_path = paths.run_dir().join("metrics.json");
        let text = tokio::fs::read_to_string(&metrics_path).await?;
        let m: Value = serde_json::from_str(&text).map_err(AppError::internal)?;
        let mut tx = state.db.pool.begin().await?;
        for (metric, pointer) in FINETUNE_METRICS {
            let Some(value) = m.pointer(pointer).and_then(Value::as_f64) else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            sqlx::query(
                "INSERT INTO results (id, team_id, model_version_id, dataset_id, job_id, task, \
                 metric, value, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new_id("res"))
            .bind(&job.team_id)
            .bind(&version_id)
            .bind(&job.dataset_id)
            .bind(&job.id)
            .bind(FINETUNE_TASK)
            .bind(metric)
            .bind(value)
            .bind(&job.created_by)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok((Some(version_id), Some(metrics_path.display().to_string())));
    }
    Ok((Some(version_id), Some(model_dir.display().to_string())))
}
