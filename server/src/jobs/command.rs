//! Job folders and the `genecompass-train` command lines of a job's next start.

use std::path::{Path, PathBuf};

use super::JobKind;
use super::params::{AnnotateParams, FinetuneParams, PretrainParams};
use super::tasks::{FateParams, GrnParams, PerturbParams};
use crate::app::AppState;
use crate::error::AppError;
use crate::names::check_rel_path;

/// Files a job runs with, under `DATA_DIR/jobs/ID/`.
#[derive(Debug, Clone)]
pub struct JobPaths {
    /// The job folder (the trainer's working directory).
    pub dir: PathBuf,
}

impl JobPaths {
    /// The folder of job `id` under `data_dir`.
    /// The path is made absolute: the trainer runs in the job folder.
    pub fn new(data_dir: &Path, id: &str) -> Self {
        let dir = data_dir.join("jobs").join(id);
        Self {
            dir: absolute(&dir),
        }
    }

    /// The trainer's run folder.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The trainer's stdout: one JSON event per line.
    pub fn events(&self) -> PathBuf {
        self.dir.join("stdout.jsonl")
    }

    /// The trainer's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }

    /// The starting model, linked from the blob store.
    pub fn base_dir(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// Predictions of an annotate job.
    pub fn predictions(&self) -> PathBuf {
        self.dir.join("predictions.safetensors")
    }

    /// The dataset tokenized for the model (annotation and downstream tasks).
    pub fn cells(&self) -> PathBuf {
        self.dir.join("cells.safetensors")
    }

    /// The output prefix of a downstream task (`grn`, `fate`, `perturb`): the trainer writes
    /// `PREFIX.tsv` and, but for `perturb`, `PREFIX.json` (the job folder's `grn`, ...).
    pub fn task_output(&self, kind: JobKind, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", kind.as_str()))
    }

    /// The file registered as the result of a job that does not train: the predictions of
    /// an annotation, the `.tsv` table of a downstream task.
    pub fn result_file(&self, kind: JobKind) -> Option<PathBuf> {
        match kind {
            JobKind::Finetune | JobKind::Pretrain => None,
            JobKind::Annotate => Some(self.predictions()),
            JobKind::Grn | JobKind::Fate | JobKind::Perturb => Some(self.task_output(kind, "tsv")),
        }
    }

    /// The files a job that does not train must leave to have succeeded.
    pub fn outputs(&self, kind: JobKind) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.result_file(kind).into_iter().collect();
        if matches!(kind, JobKind::Grn | JobKind::Fate) {
            files.push(self.task_output(kind, "json"));
        }
        files
    }

    /// Whether the run folder holds a checkpoint the trainer can `--resume`.
    pub fn resumable(&self) -> bool {
        let run = self.run_dir();
        run.join("job.json").is_file() && run.join("checkpoint").join("state.json").is_file()
    }
}

/// Links the files of a model version into `dest` (a directory the trainer can load).
async fn materialise_version(
    state: &AppState,
    version_id: &str,
    dest: &Path,
) -> Result<(), AppError> {
    let files: Vec<(String, String)> =
        sqlx::query_as("SELECT path, sha256 FROM model_version_files WHERE version_id = $1")
            .bind(version_id)
            .fetch_all(&state.db.pool)
            .await?;
    let _ = tokio::fs::remove_dir_all(dest).await;
    for (rel, sha) in files {
        check_rel_path(&rel)?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let blob = state.blobs.local_path(&sha).await?;
        tokio::fs::symlink(absolute(&blob), &target).await?;
    }
    Ok(())
}

/// Links the files of a prior version into `dest` (a store folder the trainer can read).
async fn materialise_priors(
    state: &AppState,
    version_id: &str,
    dest: &Path,
) -> Result<(), AppError> {
    let files: Vec<(String, String)> =
        sqlx::query_as("SELECT path, sha256 FROM prior_version_files WHERE version_id = $1")
            .bind(version_id)
            .fetch_all(&state.db.pool)
            .await?;
    let _ = tokio::fs::remove_dir_all(dest).await;
    tokio::fs::create_dir_all(dest).await?;
    for (rel, sha) in files {
        check_rel_path(&rel)?;
        let blob = state.blobs.local_path(&sha).await?;
        tokio::fs::symlink(absolute(&blob), dest.join(&rel)).await?;
    }
    Ok(())
}

/// The dataset file a job reads, and whether it is tokenized cells. A tokenized dataset is
/// linked into the job folder as `cells.safetensors` (the trainer recognises cells files by
/// that extension, and the task commands read that path).
async fn dataset_input(
    state: &AppState,
    dataset_id: &str,
    paths: &JobPaths,
) -> Result<(PathBuf, bool), AppError> {
    let (sha, kind): (String, String) =
        sqlx::query_as("SELECT sha256, value_kind FROM datasets WHERE id = $1")
            .bind(dataset_id)
            .fetch_one(&state.db.pool)
            .await?;
    let blob = absolute(&state.blobs.local_path(&sha).await?);
    if kind != crate::metadata::TOKENIZED {
        return Ok((blob, false));
    }
    let link = paths.cells();
    tokio::fs::create_dir_all(&paths.dir).await?;
    let _ = tokio::fs::remove_file(&link).await;
    tokio::fs::symlink(&blob, &link).await?;
    Ok((link, true))
}

/// `p` made absolute against the working directory (unchanged if that fails).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `tokenize DATA --output CELLS` for the model linked at `base/`: its token dictionary and
/// gene medians when it has them, the cells' top `max_genes` genes, and each cell's value of
/// `label_column` as its label.
fn tokenize_line(
    paths: &JobPaths,
    data: &str,
    max_genes: u32,
    label_column: Option<&str>,
) -> Vec<String> {
    let mut line = vec![
        "tokenize".to_string(),
        data.to_string(),
        "--output".into(),
        s(&paths.cells()),
    ];
    for name in ["token_dict.json", "token_dictionary.json"] {
        if paths.base_dir().join(name).exists() {
            line.extend(["--token-dict".into(), s(&paths.base_dir().join(name))]);
            break;
        }
    }
    if paths.base_dir().join("gene_medians.json").exists() {
        let m = s(&paths.base_dir().join("gene_medians.json"));
        line.extend(["--medians".into(), m]);
    }
    line.extend(["--max-genes".into(), max_genes.to_string()]);
    if let Some(col) = label_column {
        line.push(format!("--label-column={col}"));
    }
    line
}

/// The server's TF → target table, made absolute (the trainer runs in the job folder).
fn priors(state: &AppState) -> Option<String> {
    state
        .config
        .jobs
        .tf_targets
        .as_deref()
        .map(|p| s(&absolute(p)))
}

/// Trainer command lines (run in order; each must succeed) for a job's next start.
/// `device` are the backend flags (`--backend cuda --gpu 0`) or empty for the CPU.
pub async fn command_lines(
    state: &AppState,
    job: &super::store::JobRow,
    paths: &JobPaths,
    device: &[String],
) -> Result<Vec<Vec<String>>, AppError> {
    let kind: JobKind = job.kind.parse().map_err(AppError::internal)?;
    let params = job.params();
    let resume = job.resume != 0 && paths.resumable();
    let mut argv: Vec<String> = Vec::new();
    let mut push = |a: &[&str]| argv.extend(a.iter().map(|x| x.to_string()));
    let run = s(&paths.run_dir());
    if resume && kind.trains() {
        push(&[kind.as_str(), "--resume", &run]);
        argv.extend_from_slice(device);
        return Ok(vec![argv]);
    }
    let _ = tokio::fs::remove_dir_all(paths.run_dir()).await;
    // A job that does not train starts from scratch: no output of an earlier attempt may
    // pass for this one's.
    for f in paths.outputs(kind) {
        let _ = tokio::fs::remove_file(f).await;
    }
    let (data, tokenized) =
        dataset_input(state, job.dataset_id.as_deref().unwrap_or_default(), paths).await?;
    let data = s(&data);
    // A tokenized dataset is already the cells the task commands read: no tokenize step.
    let steps = |tokenize: Vec<String>, argv: Vec<String>| {
        if tokenized {
            vec![argv]
        } else {
            vec![tokenize, argv]
        }
    };
    let base = match &job.base_version_id {
        Some(v) => {
            materialise_version(state, v, &paths.base_dir()).await?;
            Some(s(&paths.base_dir()))
        }
        None => None,
    };
    match kind {
        JobKind::Finetune => {
            let p: FinetuneParams = serde_json::from_value(params).map_err(AppError::internal)?;
            push(&["finetune", "--data", &data, "--output", &run]);
            push(&[&format!("--label-column={}", p.label_column)]);
            for (flag, v) in [
                ("--epochs", p.epochs.to_string()),
                ("--batch-size", p.batch_size.to_string()),
                ("--lr", p.lr.to_string()),
                ("--weight-decay", p.weight_decay.to_string()),
                ("--warmup-steps", p.warmup_steps.to_string()),
                ("--freeze-layers", p.freeze_layers.to_string()),
                ("--max-genes", p.max_genes.to_string()),
                ("--val-fraction", p.val_fraction.to_string()),
                ("--test-fraction", p.test_fraction.to_string()),
                ("--seed", p.seed.to_string()),
                ("--checkpoint-every", p.checkpoint_every.to_string()),
            ] {
                push(&[flag, &v]);
            }
            if let Some(n) = p.max_cells {
                push(&["--max-cells", &n.to_string()]);
            }
            if p.with_species {
                push(&["--with-species"]);
            }
            match (&base, &p.config) {
                (Some(b), _) => push(&["--checkpoint", b]),
                (None, Some(c)) => push(&["--config", c]),
                (None, None) => {}
            }
        }
        JobKind::Pretrain => {
            let p: PretrainParams = serde_json::from_value(params).map_err(AppError::internal)?;
            push(&["pretrain", "--data", &data, "--output", &run]);
            for (flag, v) in [
                ("--epochs", p.epochs.to_string()),
                ("--batch-size", p.batch_size.to_string()),
                ("--lr", p.lr.to_string()),
                ("--max-genes", p.max_genes.to_string()),
                ("--seed", p.seed.to_string()),
                ("--checkpoint-every", p.checkpoint_every.to_string()),
            ] {
                push(&[flag, &v]);
            }
            if let Some(n) = p.max_cells {
                push(&["--max-cells", &n.to_string()]);
            }
            match (&base, &p.config) {
                (Some(b), _) => push(&["--checkpoint", b]),
                (None, Some(c)) => push(&["--config", c]),
                (None, None) => {}
            }
            if let Some(pv) = &p.priors_version_id {
                let dir = paths.dir.join("priors");
                materialise_priors(state, pv, &dir).await?;
                push(&["--priors", &s(&dir)]);
            }
        }
        JobKind::Annotate => {
            let p: AnnotateParams = serde_json::from_value(params).map_err(AppError::internal)?;
            let model = base.ok_or_else(|| AppError::internal("annotate job without a model"))?;
            let tokenize = tokenize_line(paths, &data, p.max_genes, None);
            push(&[
                "classify",
                "--checkpoint",
                &model,
                "--input",
                &s(&paths.cells()),
            ]);
            push(&["--output", &s(&paths.predictions())]);
            push(&["--batch-size", &p.batch_size.to_string()]);
            argv.extend_from_slice(device);
            return Ok(steps(tokenize, argv));
        }
        JobKind::Grn | JobKind::Fate | JobKind::Perturb => {
            let model = base.ok_or_else(|| AppError::internal("task job without a model"))?;
            let cells = s(&paths.cells());
            let out = s(&paths.dir.join(kind.as_str()));
            let list = |flag: &str, v: &[String]| format!("--{flag}={}", v.join(","));
            push(&[
                kind.as_str(),
                "--model",
                &model,
                "--cells",
                &cells,
                "--output",
                &out,
            ]);
            let tokenize = match kind {
                JobKind::Grn => {
                    let p: GrnParams =
                        serde_json::from_value(params).map_err(AppError::internal)?;
                    if p.tfs.is_empty() {
                        let n = p.top_tfs.unwrap_or(super::tasks::DEFAULT_TOP_TFS);
                        push(&["--top-tfs", &n.to_string()]);
                    } else {
                        push(&[&list("tfs", &p.tfs)]);
                    }
                    match priors(state) {
                        Some(f) if p.use_priors => push(&["--priors", &f]),
                        _ if p.tfs.is_empty() => {
                            return Err(AppError::Unavailable(
                                "the job takes its TFs from the TF→target table, but the \
                                 server has none any more (GENECOMPASS_TF_TARGETS)"
                                    .into(),
                            ));
                        }
                        _ => {}
                    }
                    push(&["--min-cells", &p.min_cells.to_string()]);
                    push(&["--batch-size", &p.batch_size.to_string()]);
                    tokenize_line(paths, &data, p.max_genes, None)
                }
                JobKind::Fate => {
                    let p: FateParams =
                        serde_json::from_value(params).map_err(AppError::internal)?;
                    push(&[&list("source", &p.source), &list("target", &p.target)]);
                    if !p.genes.is_empty() {
                        push(&[&list("genes", &p.genes)]);
                    }
                    push(&["--candidates", &p.candidates.to_string()]);
                    push(&["--mode", &p.mode]);
                    if let Some(f) = priors(state) {
                        push(&["--priors", &f]);
                    }
                    push(&["--batch-size", &p.batch_size.to_string()]);
                    tokenize_line(paths, &data, p.max_genes, Some(&p.label_column))
                }
                _ => {
                    let p: PerturbParams =
                        serde_json::from_value(params).map_err(AppError::internal)?;
                    push(&[&list("genes", &p.genes)]);
                    push(&["--mode", &p.mode, "--factor", &p.factor.to_string()]);
                    if p.joint {
                        push(&["--joint"]);
                    }
                    push(&["--batch-size", &p.batch_size.to_string()]);
                    tokenize_line(paths, &data, p.max_genes, None)
                }
            };
            argv.extend_from_slice(device);
            return Ok(steps(tokenize, argv));
        }
    }
    argv.extend_from_slice(device);
    Ok(vec![argv])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_are_absolute() {
        let p = JobPaths::new(Path::new("relative-data"), "job_1");
        assert!(p.dir.is_absolute(), "{}", p.dir.display());
        assert!(p.dir.ends_with("relative-data/jobs/job_1"));
        assert_eq!(p.events(), p.dir.join("stdout.jsonl"));
        assert!(!p.resumable());
    }
}
