//! Job parameters: validated and resolved against the registry when a job is created (so a
//! refused request changes nothing), stored with every default filled in, and turned into
//! `genecompass-train` command lines when the job starts. The downstream tasks' parameters
//! (`grn`, `fate`, `perturb`) are in [`super::tasks`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::JobKind;
use crate::app::AppState;
use crate::auth::Membership;
use crate::error::AppError;
use crate::names::check_name;

pub(super) fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_params", message)
}

/// `finetune` parameters (the trainer's flags; defaults as in `genecompass-train finetune`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneParams {
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// Cell-type column of the dataset (a text column).
    pub label_column: String,
    /// Model id or name to start from; none: a fresh model of `config`.
    pub base_model: Option<String>,
    /// Version number or alias of `base_model` (default `latest`).
    pub base_version: Option<String>,
    /// Fresh model size without a base: tiny, small (default) or base.
    pub config: Option<String>,
    /// Epochs (1-1000).
    pub epochs: u32,
    /// Cells per step (1-4096).
    pub batch_size: u32,
    /// Peak learning rate (0 < lr <= 1).
    pub lr: f64,
    /// AdamW weight decay (0-1).
    pub weight_decay: f64,
    /// Warm-up steps.
    pub warmup_steps: u32,
    /// Frozen encoder layers.
    pub freeze_layers: u32,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Random subsample of cells (at least 10).
    pub max_cells: Option<u32>,
    /// Validation share per class.
    pub val_fraction: f64,
    /// Test share per class.
    pub test_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Checkpoint every N steps (resume point).
    pub checkpoint_every: u32,
    /// Pass species to the model.
    pub with_species: bool,
    /// Name of the model the result is registered as (default `<dataset>-finetune`).
    pub model_name: Option<String>,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            label_column: "cell_type".into(),
            base_model: None,
            base_version: None,
            config: None,
            epochs: 10,
            batch_size: 8,
            lr: 5e-5,
            weight_decay: 0.001,
            warmup_steps: 100,
            freeze_layers: 0,
            max_genes: 2048,
            max_cells: None,
            val_fraction: 0.1,
            test_fraction: 0.2,
            seed: 42,
            checkpoint_every: 100,
            with_species: false,
            model_name: None,
        }
    }
}

/// `pretrain` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainParams {
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// Masked-LM model id or name to continue; none: a fresh model of `config`.
    pub base_model: Option<String>,
    /// Version number or alias of `base_model` (default `latest`).
    pub base_version: Option<String>,
    /// Fresh model size: tiny, small (default) or base.
    pub config: Option<String>,
    /// Epochs (1-1000).
    pub epochs: u32,
    /// Cells per micro-batch (1-4096).
    pub batch_size: u32,
    /// Peak learning rate.
    pub lr: f64,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Random subsample of cells.
    pub max_cells: Option<u32>,
    /// Seed.
    pub seed: u64,
    /// Checkpoint every N steps.
    pub checkpoint_every: u32,
    /// Name of the model the result is registered as (default `<dataset>-pretrain`).
    pub model_name: Option<String>,
    /// Prior set (id or name) whose tables a fresh model (`config`) takes as its frozen
    /// knowledge; the new checkpoint is linked to that prior version.
    pub priors: Option<String>,
    /// Version number of `priors`, or `latest` (the default).
    pub priors_version: Option<String>,
    /// Set by the server: the resolved prior version id.
    pub priors_version_id: Option<String>,
}

impl Default for PretrainParams {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            base_model: None,
            base_version: None,
            config: None,
            epochs: 1,
            batch_size: 8,
            lr: 5e-5,
            max_genes: 2048,
            max_cells: None,
            seed: 42,
            checkpoint_every: 1000,
            model_name: None,
            priors: None,
            priors_version: None,
            priors_version_id: None,
        }
    }
}

/// `annotate` parameters: predictions of a registered classifier on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnotateParams {
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// Classifier model id or name.
    pub model: String,
    /// Version number or alias (default `latest`).
    pub version: String,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Cells per batch.
    pub batch_size: u32,
}

impl Default for AnnotateParams {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            model: String::new(),
            version: "latest".into(),
            max_genes: 2048,
            batch_size: 16,
        }
    }
}

/// A validated job, ready to insert.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The parameters with defaults (names resolved to ids).
    pub params: Value,
    /// The input dataset.
    pub dataset_id: String,
    /// The starting or annotating model version.
    pub base_version_id: Option<String>,
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    kind: JobKind,
    v: Value,
) -> Result<T, AppError> {
    let v = if v.is_null() {
        Value::Object(Default::default())
    } else {
        v
    };
    serde_json::from_value(v).map_err(|e| bad(format!("{} params: {e}", kind.as_str())))
}

pub(super) fn range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), AppError> {
    if v < lo || v > hi {
        return Err(bad(format!("`{name}` = {v} is out of range {lo}..={hi}")));
    }
    Ok(())
}

fn check_config(config: &Option<String>, base: &Option<String>) -> Result<(), AppError> {
    match (config.as_deref(), base) {
        (Some(_), Some(_)) => Err(bad("give either `base_model` or `config`, not both")),
        (Some(c), None) if !["tiny", "small", "base"].contains(&c) => {
            Err(bad(format!("`config` `{c}`: use tiny, small or base")))
        }
        _ => Ok(()),
    }
}

fn check_fractions(val: f64, test: f64) -> Result<(), AppError> {
    let ok = |f: f64| f.is_finite() && (0.0..1.0).contains(&f);
    if !ok(val) || !ok(test) || test == 0.0 || val + test >= 0.9 {
        return Err(bad(
            "`val_fraction` and `test_fraction` must be in [0, 1), test > 0, their sum < 0.9",
        ));
    }
    Ok(())
}

fn check_lr(lr: f64) -> Result<(), AppError> {
    if !lr.is_finite() || lr <= 0.0 || lr > 1.0 {
        return Err(bad(format!("`lr` = {lr} must be in (0, 1]")));
    }
    Ok(())
}

/// A dataset of the team by id or name: `(id, name, obs_columns JSON)`.
pub(super) async fn find_dataset(
    state: &AppState,
    team: &Membership,
    key: &str,
) -> Result<(String, String, String), AppError> {
    if key.is_empty() {
        return Err(bad(
            "`dataset` is required (a dataset id or name of the team)",
        ));
    }
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT id, name, obs_columns FROM datasets WHERE team_id = $1 AND (id = $2 OR name = $2)",
    )
    .bind(&team.team_id)
    .bind(key)
    .fetch_optional(&state.db.pool)
    .await?;
    row.ok_or_else(|| {
        AppError::NotFound(format!("no dataset `{key}` in team `{}`", team.team_name))
    })
}

/// A model version of the team: `(version id, kind, file paths)`.
pub(super) async fn find_version(
    state: &AppState,
    team: &Membership,
    model: &str,
    version: &str,
) -> Result<(String, String, Vec<String>), AppError> {
    let number = version.parse::<i64>().unwrap_or(-1);
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT v.id, v.kind FROM model_versions v JOIN models m ON m.id = v.model_id \
         WHERE m.team_id = $1 AND (m.id = $2 OR m.name = $2) \
         AND (v.version = $3 OR v.id = (SELECT a.version_id FROM model_aliases a \
                                        WHERE a.model_id = m.id AND a.alias = $4))",
    )
    .bind(&team.team_id)
    .bind(model)
    .bind(number)
    .bind(version)
    .fetch_optional(&state.db.pool)
    .await?;
    let (id, kind) = row.ok_or_else(|| {
        AppError::NotFound(format!(
            "no version `{version}` of model `{model}` in team `{}`",
            team.team_name
        ))
    })?;
    let files: Vec<(String,)> =
        sqlx::query_as("SELECT path FROM model_version_files WHERE version_id = $1")
            .bind(&id)
            .fetch_all(&state.db.pool)
            .await?;
    Ok((id, kind, files.into_iter().map(|(p,)| p).collect()))
}

/// A prior version of the team by set id or name and version number or `latest`.
async fn find_prior_version(
    state: &AppState,
    team: &Membership,
    set: &str,
    version: &str,
) -> Result<String, AppError> {
    let number = match version {
        "latest" => -1,
        v => v
            .parse::<i64>()
            .map_err(|_| bad(format!("`priors_version` `{v}`: give a number or `latest`")))?,
    };
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT v.id FROM prior_versions v JOIN prior_sets s ON s.id = v.prior_set_id \
         WHERE s.team_id = $1 AND (s.id = $2 OR s.name = $2) AND ($3 < 0 OR v.version = $3) \
         ORDER BY v.version DESC LIMIT 1",
    )
    .bind(&team.team_id)
    .bind(set)
    .bind(number)
    .fetch_optional(&state.db.pool)
    .await?;
    row.map(|(id,)| id).ok_or_else(|| {
        AppError::NotFound(format!(
            "no version `{version}` of prior set `{set}` in team `{}`; import one with \
             `genecompass import-priors DIR --team {}`",
            team.team_name, team.team_name
        ))
    })
}

/// Refuses `column` unless it is a text column of the dataset (`obs`: its `obs_columns` JSON).
pub(super) fn check_text_column(obs: &str, dataset: &str, column: &str) -> Result<(), AppError> {
    let cols: Vec<crate::metadata::ObsColumnMeta> = serde_json::from_str(obs).unwrap_or_default();
    let text: Vec<&str> = cols
        .iter()
        .filter(|c| c.kind == "text")
        .map(|c| c.name.as_str())
        .collect();
    if !text.contains(&column) {
        return Err(bad(format!(
            "`label_column` `{column}` is not a text column of dataset `{dataset}`; it has: {}",
            text.join(", ")
        )));
    }
    Ok(())
}

pub(super) fn has_vocab(files: &[String]) -> bool {
    files
        .iter()
        .any(|f| f == "token_dict.json" || f == "token_dictionary.json")
}

fn default_name(given: &Option<String>, dataset: &str, suffix: &str) -> Result<String, AppError> {
    let name = given
        .clone()
        .unwrap_or_else(|| format!("{dataset}-{suffix}"));
    check_name("model name", &name)?;
    Ok(name)
}

/// Validates `params` of a `kind` job for `team` and resolves registry names to ids.
pub async fn resolve(
    state: &AppState,
    team: &Membership,
    kind: JobKind,
    params: Value,
) -> Result<Resolved, AppError> {
    match kind {
        JobKind::Finetune => {
            let mut p: FinetuneParams = parse(kind, params)?;
            range("epochs", p.epochs, 1, 1000)?;
            range("batch_size", p.batch_size, 1, 4096)?;
            range("max_genes", p.max_genes, 8, 4096)?;
            range("checkpoint_every", p.checkpoint_every, 1, u32::MAX)?;
            range("weight_decay", p.weight_decay, 0.0, 1.0)?;
            check_lr(p.lr)?;
            check_fractions(p.val_fraction, p.test_fraction)?;
            if let Some(n) = p.max_cells {
                range("max_cells", n, 10, u32::MAX)?;
            }
            check_config(&p.config, &p.base_model)?;
            let (dataset_id, dataset_name, obs) = find_dataset(state, team, &p.dataset).await?;
            check_text_column(&obs, &dataset_name, &p.label_column)?;
            let base_version_id = match &p.base_model {
                Some(m) => {
                    let v = p
                        .base_version
                        .get_or_insert_with(|| "latest".into())
                        .clone();
                    let (id, _, files) = find_version(state, team, m, &v).await?;
                    if !has_vocab(&files) {
                        return Err(AppError::Unprocessable {
                            code: "base_without_vocabulary",
                            message: format!(
                                "model `{m}` version `{v}` has no token_dict.json, so the cells \
                                 cannot be tokenized for it"
                            ),
                        });
                    }
                    Some(id)
                }
                None => None,
            };
            p.model_name = Some(default_name(&p.model_name, &dataset_name, "finetune")?);
            p.dataset = dataset_id.clone();
            Ok(Resolved {
                params: serde_json::to_value(&p).map_err(AppError::internal)?,
                dataset_id,
                base_version_id,
            })
        }
        JobKind::Pretrain => {
            let mut p: PretrainParams = parse(kind, params)?;
            range("epochs", p.epochs, 1, 1000)?;
            range("batch_size", p.batch_size, 1, 4096)?;
            range("max_genes", p.max_genes, 8, 4096)?;
            range("checkpoint_every", p.checkpoint_every, 1, u32::MAX)?;
            check_lr(p.lr)?;
            if let Some(n) = p.max_cells {
                range("max_cells", n, 10, u32::MAX)?;
            }
            check_config(&p.config, &p.base_model)?;
            let (dataset_id, dataset_name, _) = find_dataset(state, team, &p.dataset).await?;
            let base_version_id = match &p.base_model {
                Some(m) => {
                    let v = p
                        .base_version
                        .get_or_insert_with(|| "latest".into())
                        .clone();
                    let (id, kind, files) = find_version(state, team, m, &v).await?;
                    if kind != "masked_lm" || !has_vocab(&files) {
                        return Err(AppError::Unprocessable {
                            code: "invalid_base_model",
                            message: format!(
                                "model `{m}` version `{v}` must be a masked-LM model with a \
                                 token_dict.json to continue pretraining"
                            ),
                        });
                    }
                    Some(id)
                }
                None => None,
            };
            p.priors_version_id = match &p.priors {
                Some(_) if p.base_model.is_some() => {
                    return Err(bad(
                        "`priors` sets the knowledge tables of a fresh model (`config`); a \
                         `base_model` keeps its own",
                    ));
                }
                Some(set) => {
                    let v = p
                        .priors_version
                        .get_or_insert_with(|| "latest".into())
                        .clone();
                    Some(find_prior_version(state, team, set, &v).await?)
                }
                None => None,
            };
            p.model_name = Some(default_name(&p.model_name, &dataset_name, "pretrain")?);
            p.dataset = dataset_id.clone();
            Ok(Resolved {
                params: serde_json::to_value(&p).map_err(AppError::internal)?,
                dataset_id,
                base_version_id,
            })
        }
        JobKind::Annotate => {
            let mut p: AnnotateParams = parse(kind, params)?;
            range("max_genes", p.max_genes, 8, 4096)?;
            range("batch_size", p.batch_size, 1, 4096)?;
            if p.model.is_empty() {
                return Err(bad("`model` is required (a classifier model id or name)"));
            }
            let (dataset_id, _, _) = find_dataset(state, team, &p.dataset).await?;
            let (id, kind, files) = find_version(state, team, &p.model, &p.version).await?;
            if kind != "classifier" || !has_vocab(&files) {
                return Err(AppError::Unprocessable {
                    code: "invalid_model",
                    message: format!(
                        "model `{}` version `{}` must be a classifier with a token_dict.json",
                        p.model, p.version
                    ),
                });
            }
            p.dataset = dataset_id.clone();
            Ok(Resolved {
                params: serde_json::to_value(&p).map_err(AppError::internal)?,
                dataset_id,
                base_version_id: Some(id),
            })
        }
        JobKind::Grn | JobKind::Fate | JobKind::Perturb => {
            super::tasks::resolve(state, team, kind, params).await
        }
    }
}
