//! Prior-knowledge stores as registry artifacts: a store folder (`genecompass-train priors
//! build-*` or `load-official` output) is validated with core's store reader, its files go to
//! the blob store, and it becomes the next immutable version of a named prior set. Checkpoints
//! built from a store (`priors_source.json` beside the model) link to that version.

use std::path::{Path, PathBuf};

use genecompass_core::model::PriorKind;
use genecompass_core::priors::sha256_hex;
use genecompass_core::priors::store::{GENES, HOMOLOGS, MANIFEST, read_genes, read_prior};

use crate::app::AppState;
use crate::db::{new_id, now};
use crate::error::AppError;
use crate::names::check_name;

/// The model-directory file naming the store a checkpoint's tables came from (written by
/// `genecompass-train pretrain --priors`).
pub const SOURCE_FILE: &str = "priors_source.json";

/// A checked store, before anything is stored.
#[derive(Debug)]
struct Validated {
    manifest: String,
    manifest_sha256: String,
    kinds: Vec<&'static str>,
    genes: i64,
    width: i64,
    files: Vec<(String, PathBuf)>,
}

fn bad(message: String) -> AppError {
    AppError::Unprocessable {
        code: "invalid_priors",
        message,
    }
}

/// Reads every table of `dir` and checks it against the manifest (blocking).
fn validate(dir: &Path) -> Result<Validated, AppError> {
    let shown = dir.display();
    let manifest_bytes = std::fs::read(dir.join(MANIFEST)).map_err(|_| {
        bad(format!(
            "{shown} has no {MANIFEST}: it is not a prior store; build one with \
             `genecompass-train priors build-*` or `priors load-official`"
        ))
    })?;
    let manifest: genecompass_core::priors::store::Manifest =
        serde_json::from_slice(&manifest_bytes)
            .map_err(|e| bad(format!("{shown}/{MANIFEST}: {e}")))?;
    let genes = read_genes(dir).map_err(|e| bad(format!("{shown}: {e}")))?;
    if genes.len() != manifest.rows {
        return Err(bad(format!(
            "{shown}: {GENES} lists {} genes but {MANIFEST} says {}",
            genes.len(),
            manifest.rows
        )));
    }
    let mut files = vec![
        (MANIFEST.to_string(), dir.join(MANIFEST)),
        (GENES.to_string(), dir.join(GENES)),
    ];
    let mut kinds = Vec::new();
    let mut width = 0usize;
    for entry in &manifest.priors {
        let file = dir.join(&entry.file);
        let bytes = std::fs::read(&file).map_err(|e| {
            bad(format!(
                "{shown}: {MANIFEST} lists {} but reading it failed: {e}",
                entry.file
            ))
        })?;
        if !entry.sha256.is_empty() && sha256_hex(&bytes) != entry.sha256 {
            return Err(bad(format!(
                "{shown}/{}: its SHA-256 is not the one {MANIFEST} records; the file changed \
                 after it was built: rebuild the store",
                entry.file
            )));
        }
        let (w, data) =
            read_prior(dir, entry.kind).map_err(|e| bad(format!("{shown}/{}: {e}", entry.file)))?;
        if data.len() != genes.len() * w || (width != 0 && w != width) {
            return Err(bad(format!(
                "{shown}/{}: a [{} x {w}] table does not fit {} genes of width {}",
                entry.file,
                data.len() / w.max(1),
                genes.len(),
                width.max(w)
            )));
        }
        width = w;
        kinds.push(entry.kind.stem());
        files.push((entry.file.clone(), file));
    }
    if kinds.is_empty() {
        return Err(bad(format!(
            "{shown}: {MANIFEST} lists no prior table (promoter, co_exp, gene_family, peca_grn)"
        )));
    }
    kinds.sort_by_key(|k| PriorKind::ALL.iter().position(|p| p.stem() == *k));
    if manifest.homologous_index {
        files.push((HOMOLOGS.to_string(), dir.join(HOMOLOGS)));
    }
    Ok(Validated {
        manifest: String::from_utf8_lossy(&manifest_bytes).into_owned(),
        manifest_sha256: sha256_hex(&manifest_bytes),
        kinds,
        genes: genes.len() as i64,
        width: width as i64,
        files,
    })
}

/// Imports the store in `dir` as the next version of prior set `name` in `team_id`. A store
/// whose manifest is already a version of that set is not stored twice: that version is
/// returned. Returns `(set id, version id, version, whether it is new)`.
pub async fn import_priors(
    state: &AppState,
    team_id: &str,
    user_id: &str,
    dir: &Path,
    name: &str,
) -> Result<(String, String, i64, bool), AppError> {
    check_name("prior set name", name)?;
    let dir = std::fs::canonicalize(dir)
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            bad(format!(
                "{} is not a directory on the server",
                dir.display()
            ))
        })?;
    let source = dir.display().to_string();
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
        sqlx::query_as("SELECT id FROM prior_sets WHERE team_id = $1 AND name = $2")
            .bind(team_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let set_id = match found {
        Some((id,)) => id,
        None => {
            let id = new_id("pri");
            sqlx::query(
                "INSERT INTO prior_sets (id, team_id, name, created_at) VALUES ($1, $2, $3, $4)",
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
    let same: Option<(String, i64)> = sqlx::query_as(
        "SELECT id, version FROM prior_versions WHERE prior_set_id = $1 AND manifest_sha256 = $2",
    )
    .bind(&set_id)
    .bind(&v.manifest_sha256)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, version)) = same {
        tx.commit().await?;
        return Ok((set_id, id, version, false));
    }
    let (last,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(version), 0) FROM prior_versions WHERE prior_set_id = $1",
    )
    .bind(&set_id)
    .fetch_one(&mut *tx)
    .await?;
    let version = last + 1;
    let version_id = new_id("prv");
    sqlx::query(
        "INSERT INTO prior_versions (id, prior_set_id, version, manifest_sha256, manifest, kinds, \
         genes, width, source_path, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&version_id)
    .bind(&set_id)
    .bind(version)
    .bind(&v.manifest_sha256)
    .bind(&v.manifest)
    .bind(serde_json::to_string(&v.kinds).map_err(AppError::internal)?)
    .bind(v.genes)
    .bind(v.width)
    .bind(&source)
    .bind(user_id)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    for (rel, sha, size) in &stored {
        sqlx::query(
            "INSERT INTO prior_version_files (version_id, path, sha256, size_bytes) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&version_id)
        .bind(rel)
        .bind(sha)
        .bind(size)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(%set_id, %version_id, version, %source, "prior store imported");
    Ok((set_id, version_id, version, true))
}

/// The prior version of `team_id` whose manifest hash the model directory's
/// [`SOURCE_FILE`] records (the newest, if several sets hold it); `None` when the model was not
/// built from a store, or from one the team has not registered.
pub async fn source_version(
    state: &AppState,
    team_id: &str,
    model_dir: &Path,
) -> Result<Option<String>, AppError> {
    let Ok(text) = tokio::fs::read_to_string(model_dir.join(SOURCE_FILE)).await else {
        return Ok(None);
    };
    let src: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{}/{SOURCE_FILE}: {e}", model_dir.display())))?;
    let Some(sha) = src["manifest_sha256"].as_str() else {
        return Ok(None);
    };
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT v.id FROM prior_versions v JOIN prior_sets s ON s.id = v.prior_set_id \
         WHERE s.team_id = $1 AND v.manifest_sha256 = $2 ORDER BY v.created_at DESC, v.id LIMIT 1",
    )
    .bind(team_id)
    .bind(sha)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|(id,)| id))
}
