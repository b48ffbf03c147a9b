//! Checkpoint import: a model directory is validated by loading it with core
//! (`genecompass_core::checkpoint::load_checkpoint`), its files are copied into the blob store,
//! and it becomes the next immutable version of a named model, with the `latest` alias moved to it.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use genecompass_core::checkpoint::{ModelKind, WeightsFormat, load_checkpoint};

use crate::app::AppState;
use crate::db::{new_id, now};
use crate::error::AppError;
use crate::names::check_name;

/// Most files one checkpoint directory may hold.
const MAX_FILES: usize = 10_000;

/// What the loader found, before anything is stored.
#[derive(Debug, Clone)]
struct Validated {
    kind: &'static str,
    config: String,
    weights_file: String,
    tensor_count: i64,
    files: Vec<(String, PathBuf)>,
}

/// Regular files under `dir` (recursively, no symlinks, no hidden entries) as
/// `(relative path with '/', absolute path)`, sorted.
fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, AppError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .map_err(AppError::internal)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, entry.path()));
            }
            if out.len() > MAX_FILES {
                return Err(AppError::Unprocessable {
                    code: "invalid_checkpoint",
                    message: format!("{} holds more than {MAX_FILES} files", dir.display()),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads the checkpoint on the CPU to prove it is usable (blocking).
fn validate(dir: &Path) -> Result<Validated, AppError> {
    let bad = |message: String| AppError::Unprocessable {
        code: "invalid_checkpoint",
        message,
    };
    let ckpt = load_checkpoint(dir, WeightsFormat::Auto, &Device::flex())
        .map_err(|e| bad(e.to_string()))?;
    let kind = match ckpt.kind() {
        ModelKind::MaskedLm => "masked_lm",
        ModelKind::Classifier => "classifier",
    };
    let weights_file = ckpt
        .weights_file
        .strip_prefix(dir)
        .unwrap_or(&ckpt.weights_file)
        .display()
        .to_string();
    Ok(Validated {
        kind,
        config: serde_json::to_string(&ckpt.config).map_err(AppError::internal)?,
        weights_file,
        tensor_count: ckpt.tensor_count as i64,
        files: list_files(dir)?,
    })
}

/// Largest model card kept (bytes); longer cards are cut with a note.
const MAX_CARD_BYTES: usize = 256 << 10;

/// Where a checkpoint came from, recorded with its version.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// The version it was trained from.
    pub parent_version_id: Option<String>,
    /// The dataset it was trained on.
    pub dataset_id: Option<String>,
    /// The job that made it.
    pub job_id: Option<String>,
    /// Its model card; `None` reads `model_card.md` or `README.md` from the directory.
    pub model_card: Option<String>,
}

/// The model card in `dir` (`model_card.md`, else a Hugging Face style `README.md`), or, for
/// the `model/` folder of a `genecompass-train` run, the run's `model_card.md` beside it.
fn read_card(dir: &Path) -> Option<String> {
    let run_card = dir
        .parent()
        .filter(|run| {
            dir.file_name().is_some_and(|n| n == "model") && run.join("job.json").is_file()
        })
        .map(|run| run.join("model_card.md"));
    ["model_card.md", "README.md"]
        .iter()
        .map(|f| dir.join(f))
        .chain(run_card)
        .find_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn clip_card(mut card: String) -> String {
    if card.len() > MAX_CARD_BYTES {
        let mut end = MAX_CARD_BYTES;
        while !card.is_char_boundary(end) {
            end -= 1;
        }
        card.truncate(end);
        card.push_str("\n\n[model card cut at 256 KiB]\n");
    }
    card
}

/// Imports `dir` as the next version of model `name` in `team_id`, recorded as made by
/// `user_id`; moves `latest` and each of `aliases` to it. Returns `(model id, version id, version)`.
pub async fn import_checkpoint(
    state: &AppState,
    team_id: &str,
    user_id: &str,
    dir: &Path,
    name: &str,
    aliases: &[String],
) -> Result<(String, String, i64), AppError> {
    import_checkpoint_with(
        state,
        team_id,
        user_id,
        dir,
        name,
        aliases,
        Lineage::default(),
    )
    .await
}

/// [`import_checkpoint`] recording where the checkpoint came from. A version without a prior
/// record of its own inherits its parent's prior link (fine-tuning keeps the knowledge tables).
pub async fn import_checkpoint_with(
    state: &AppState,
    team_id: &str,
    user_id: &str,
    dir: &Path,
    name: &str,
    aliases: &[String],
    lineage: Lineage,
) -> Result<(String, String, i64), AppError> {
    check_name("model name", name)?;
    for a in aliases {
        check_name("alias", a)?;
    }
    let dir = std::fs::canonicalize(dir)
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| AppError::Unprocessable {
            code: "invalid_checkpoint",
            message: format!("{} is not a directory on the server", dir.display()),
        })?;
    let source = dir.display().to_string();
    let mut prior_version = crate::priors::source_version(state, team_id, &dir).await?;
    if prior_version.is_none()
        && let Some(parent) = &lineage.parent_version_id
    {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT prior_version_id FROM model_versions WHERE id = $1")
                .bind(parent)
                .fetch_optional(&state.db.pool)
                .await?;
        prior_version = row.and_then(|(p,)| p);
    }
    let card = lineage
        .model_card
        .clone()
        .or_else(|| read_card(&dir))
        .map(clip_card);
    let v = tokio::task::spawn_blocking(move || validate(&dir))
        .await
        .map_err(AppError::internal)??;
    let mut stored = Vec::with_capacity(v.files.len());
    for (rel, abs) in &v.files {
        let (sha, size) = state.blobs.put_file(abs).await?;
        stored.push((rel.clone(), sha, size as i64));
    }

    let mut tx = state.db.pool.begin().await?;
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM models WHERE team_id = $1 AND name = $2")
            .bind(team_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let model_id = match found {
        Some((id,)) => id,
        None => {
            let id = new_id("mdl");
            sqlx::query(
                "INSERT INTO models (id, team_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(team_id)
            .bind(name)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    let (last,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model_id = $1")
            .bind(&model_id)
            .fetch_one(&mut *tx)
            .await?;
    let version = last + 1;
    let version_id = new_id("ver");
    sqlx::query(
        "INSERT INTO model_versions (id, model_id, version, kind, config, weights_file, \
         tensor_count, source_path, created_by, created_at, prior_version_id, \
         parent_version_id, dataset_id, job_id, model_card) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&version_id)
    .bind(&model_id)
    .bind(version)
    .bind(v.kind)
    .bind(&v.config)
    .bind(&v.weights_file)
    .bind(v.tensor_count)
    .bind(&source)
    .bind(user_id)
    .bind(now())
    .bind(&prior_version)
    .bind(&lineage.parent_version_id)
    .bind(&lineage.dataset_id)
    .bind(&lineage.job_id)
    .bind(&card)
    .execute(&mut *tx)
    .await?;
    for (rel, sha, size) in &stored {
        sqlx::query("INSERT INTO model_version_files (version_id, path, sha256, size_bytes) VALUES ($1, $2, $3, $4)")
            .bind(&version_id)
            .bind(rel)
            .bind(sha)
            .bind(size)
            .execute(&mut *tx)
            .await?;
    }
    let latest = "latest".to_string();
    for alias in std::iter::once(&latest).chain(aliases.iter().filter(|a| **a != latest)) {
        set_alias(&mut tx, &model_id, alias, &version_id).await?;
    }
    tx.commit().await?;
    tracing::info!(%model_id, %version_id, version, %source, "checkpoint imported");
    Ok((model_id, version_id, version))
}

/// Points `alias` of a model at a version (inside the caller's transaction).
pub async fn set_alias(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    model_id: &str,
    alias: &str,
    version_id: &str,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO model_aliases (model_id, alias, version_id, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, \
         updated_at = excluded.updated_at",
    )
    .bind(model_id)
    .bind(alias)
    .bind(version_id)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
