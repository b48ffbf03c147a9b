//! What a successful job leaves in the registry: the trained model imported as a new model
//! version (the same path as `genecompass import-checkpoint`), and for fine-tuning the test
//! metrics of `metrics.json` (model and logistic-regression baseline) as results linked to the
//! job, the new version and the dataset. Jobs that do not train register their output file as
//! the job's result path; `grn` and `fate` also record summary metrics of their `.json` as
//! results of the model version they ran.

use serde_json::Value;

use super::JobKind;
use super::command::JobPaths;
use super::store::JobRow;
use crate::app::AppState;
use crate::checkpoints::{Lineage, import_checkpoint_with};
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

/// The task name of `grn` results.
pub const GRN_TASK: &str = "grn";

/// The metrics recorded from a `grn` job's `grn.json` (means over the scored TFs; the
/// random ones are what a random ranking of the same candidates scores).
pub const GRN_METRICS: [(&str, &str); 4] = [
    ("mean_average_precision", "/mean_average_precision"),
    (
        "mean_random_average_precision",
        "/mean_random_average_precision",
    ),
    ("mean_auroc", "/mean_auroc"),
    ("scored_tfs", "/scored_tfs"),
];

/// The task name of `fate` results.
pub const FATE_TASK: &str = "fate_factors";

/// The metrics recorded from a `fate` job's `fate.json`: the best gene's mean cosine gain
/// toward the target centroid, and where the source cells started.
pub const FATE_METRICS: [(&str, &str); 2] = [
    ("top_mean_gain", "/genes/0/effect/mean_gain"),
    ("source_cos", "/source_cos_to_target_centroid"),
];

/// Records the finite numbers of `doc` at `metrics` (`(metric, JSON pointer)`; missing or
/// null ones are skipped) as results of `task` linked to the job, `version_id` and the job's
/// dataset.
async fn record_results(
    state: &AppState,
    job: &JobRow,
    version_id: Option<&str>,
    task: &str,
    doc: &Value,
    metrics: &[(&str, &str)],
) -> Result<(), AppError> {
    let mut tx = state.db.pool.begin().await?;
    for (metric, pointer) in metrics {
        let Some(value) = doc.pointer(pointer).and_then(Value::as_f64) else {
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
        .bind(version_id)
        .bind(&job.dataset_id)
        .bind(&job.id)
        .bind(task)
        .bind(*metric)
        .bind(value)
        .bind(&job.created_by)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn read_json(path: &std::path::Path) -> Result<Value, AppError> {
    let text = tokio::fs::read_to_string(path).await?;
    serde_json::from_str(&text).map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))
}

/// Registers a finished job's outputs; returns `(model version id, result path)`.
pub async fn register(
    state: &AppState,
    job: &JobRow,
    paths: &JobPaths,
) -> Result<(Option<String>, Option<String>), AppError> {
    let kind: JobKind = job.kind.parse().map_err(AppError::internal)?;
    if !kind.trains() {
        let result = paths
            .result_file(kind)
            .ok_or_else(|| AppError::internal("a job kind without a result file"))?;
        let summary = match kind {
            JobKind::Grn => Some((GRN_TASK, &GRN_METRICS[..])),
            JobKind::Fate => Some((FATE_TASK, &FATE_METRICS[..])),
            _ => None,
        };
        if let Some((task, metrics)) = summary {
            let doc = read_json(&paths.task_output(kind, "json")).await?;
            let version = job.base_version_id.as_deref();
            record_results(state, job, version, task, &doc, metrics).await?;
        }
        return Ok((None, Some(result.display().to_string())));
    }
    let params = job.params();
    let name = params["model_name"]
        .as_str()
        .ok_or_else(|| AppError::internal("job params lack model_name"))?
        .to_string();
    let model_dir = paths.run_dir().join("model");
    let (_, version_id, version) = import_checkpoint_with(
        state,
        &job.team_id,
        &job.created_by,
        &model_dir,
        &name,
        &[],
        Lineage {
            parent_version_id: job.base_version_id.clone(),
            dataset_id: job.dataset_id.clone(),
            job_id: Some(job.id.clone()),
            // Fine-tunes write their card (scores, baseline, settings) beside the model.
            model_card: tokio::fs::read_to_string(paths.run_dir().join("model_card.md"))
                .await
                .ok(),
        },
    )
    .await?;
    tracing::info!(job = %job.id, model = %name, version, "job output registered");
    if kind == JobKind::Finetune {
        let metrics_path = paths.run_dir().join("metrics.json");
        let m = read_json(&metrics_path).await?;
        record_results(
            state,
            job,
            Some(&version_id),
            FINETUNE_TASK,
            &m,
            &FINETUNE_METRICS,
        )
        .await?;
        return Ok((Some(version_id), Some(metrics_path.display().to_string())));
    }
    Ok((Some(version_id), Some(model_dir.display().to_string())))
}
