//! Training, annotation and downstream-task jobs run by the server.
//!
//! A job is a row of `jobs` (see [`store`]) whose parameters were validated and resolved
//! against the registry at creation ([`params`]). A scheduler task started by [`start`] claims
//! queued jobs up to the concurrency limit and hands each to the configured runner: the local
//! runner spawns `genecompass-train` (optionally pinned to a GPU with `CUDA_VISIBLE_DEVICES`),
//! the Slurm runner submits an sbatch script ([`slurm`]). Either way the trainer writes its JSON
//! progress events (one per line on stdout) to `DATA_DIR/jobs/ID/stdout.jsonl` and its log to
//! `stderr.log`; [`monitor`] tails that file, keeps the row's state and progress current and
//! publishes events for the SSE stream. When a fine-tune or pretraining job ends well its model
//! is imported as a new model version and its test metrics recorded as results ([`finish`]).
//! Annotation and the downstream tasks (`grn`, `fate`, `perturb`: parameters in [`tasks`])
//! tokenize the dataset for a registered model, then run the trainer's command on it; their
//! output files (and for `grn` and `fate` a few summary metrics) are registered instead.
//!
//! On start, jobs left `running` by a previous server are reconciled: a trainer still alive is
//! watched again; one that is gone is resumed from its run folder's checkpoint when there is
//! one (training kinds only), and otherwise marked failed with the reason.

pub mod command;
pub mod finish;
pub mod local;
pub mod monitor;
pub mod params;
pub mod slurm;
pub mod store;
pub mod tasks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::app::AppState;
use crate::error::AppError;

/// Attempts (first start plus resumes) before a job that keeps dying is marked failed.
pub const MAX_ATTEMPTS: i64 = 4;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Cell-type fine-tuning (`genecompass-train finetune`).
    Finetune,
    /// Masked-LM pretraining (`genecompass-train pretrain`).
    Pretrain,
    /// Cell-type predictions with a classifier (`tokenize` then `classify`).
    Annotate,
    /// Gene-regulatory network inference by in-silico TF deletion (`tokenize` then `grn`).
    Grn,
    /// Cell-fate factor search (`tokenize --label-column` then `fate`).
    Fate,
    /// In-silico gene deletion or over-expression (`tokenize` then `perturb`).
    Perturb,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Finetune => "finetune",
            JobKind::Pretrain => "pretrain",
            JobKind::Annotate => "annotate",
            JobKind::Grn => "grn",
            JobKind::Fate => "fate",
            JobKind::Perturb => "perturb",
        }
    }

    /// Every kind, in the order the API documents them.
    pub const ALL: [JobKind; 6] = [
        JobKind::Finetune,
        JobKind::Pretrain,
        JobKind::Annotate,
        JobKind::Grn,
        JobKind::Fate,
        JobKind::Perturb,
    ];

    /// Training kinds produce a model version and can resume from their run folder's
    /// checkpoint; the others (annotation, downstream tasks) run once from the start and
    /// produce files in the job folder.
    pub fn trains(self) -> bool {
        matches!(self, JobKind::Finetune | JobKind::Pretrain)
    }
}

impl FromStr for JobKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "finetune" => Ok(JobKind::Finetune),
            "pretrain" => Ok(JobKind::Pretrain),
            "annotate" => Ok(JobKind::Annotate),
            "grn" => Ok(JobKind::Grn),
            "fate" => Ok(JobKind::Fate),
            "perturb" => Ok(JobKind::Perturb),
            other => Err(format!(
                "unknown job kind `{other}`: use finetune, pretrain, annotate, grn, fate or perturb"
            )),
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot (also between a lost process and its resumption).
    Queued,
    /// A trainer process (or Slurm job) is working on it.
    Running,
    /// Finished; its outputs are registered.
    Succeeded,
    /// Ended with an error (see `error`).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed or cancelled: nothing will change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "succeeded" => Ok(JobState::Succeeded),
            "failed" => Ok(JobState::Failed),
            "cancelled" => Ok(JobState::Cancelled),
            other => Err(format!(
                "unknown job state `{other}`: use queued, running, succeeded, failed or cancelled"
            )),
        }
    }
}

/// Which runner executes jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// Child processes of the server.
    #[default]
    Local,
    /// `sbatch` / `squeue` / `scancel`.
    Slurm,
}

impl RunnerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Local => "local",
            RunnerKind::Slurm => "slurm",
        }
    }
}

impl FromStr for RunnerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(RunnerKind::Local),
            "slurm" => Ok(RunnerKind::Slurm),
            other => Err(format!("unknown runner `{other}`: use local or slurm")),
        }
    }
}

/// Slurm submission options.
#[derive(Debug, Clone, Default)]
pub struct SlurmConfig {
    /// `#SBATCH --partition`.
    pub partition: Option<String>,
    /// `#SBATCH --gres=gpu:1` and `--backend cuda` when set.
    pub gpu: bool,
    /// Extra `#SBATCH` options, e.g. `--time=04:00:00`.
    pub extra: Vec<String>,
}

/// How the server runs jobs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Local processes or Slurm.
    pub runner: RunnerKind,
    /// The `genecompass-train` binary; `None`: next to the server's executable.
    pub trainer_bin: Option<PathBuf>,
    /// Jobs running (or submitted to Slurm) at once; 0 keeps every job queued.
    pub max_concurrent: usize,
    /// GPUs handed out (least busy first) as `CUDA_VISIBLE_DEVICES`; empty: CPU.
    pub gpus: Vec<String>,
    /// Time between SIGTERM (the trainer checkpoints and exits) and SIGKILL on cancel.
    pub cancel_grace: Duration,
    /// How often progress files and processes are polled.
    pub poll_interval: Duration,
    /// Slurm options.
    pub slurm: SlurmConfig,
    /// TF → target table (TSV/CSV, gzip allowed) given to `grn` and `fate` jobs as `--priors`
    /// (`GENECOMPASS_TF_TARGETS`); without it `grn` jobs must name their TFs.
    pub tf_targets: Option<PathBuf>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            runner: RunnerKind::Local,
            trainer_bin: None,
            max_concurrent: 1,
            gpus: Vec::new(),
            cancel_grace: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            slurm: SlurmConfig::default(),
            tf_targets: None,
        }
    }
}

impl JobsConfig {
    /// The trainer binary in effect.
    pub fn trainer_bin(&self) -> PathBuf {
        self.trainer_bin.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("genecompass-train")))
                .unwrap_or_else(|| PathBuf::from("genecompass-train"))
        })
    }
}

/// One event of a job, as sent on `GET /api/v1/jobs/{id}/events`.
#[derive(Debug, Clone, Serialize)]
pub struct JobEvent {
    /// The job.
    pub job_id: String,
    /// SSE event name: `state` (the whole job), `progress` (a step) or `eval`.
    pub kind: &'static str,
    /// The payload.
    pub data: Value,
}

/// Jobs being watched by this server: job id → GPU in use (if any).
type Active = HashMap<String, Option<String>>;

#[derive(Debug)]
struct Inner {
    wake: Notify,
    events: broadcast::Sender<JobEvent>,
    active: Mutex<Active>,
    started: AtomicBool,
}

/// The job machinery shared by handlers and runner tasks (cheap to clone).
#[derive(Debug, Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// Nothing running, scheduler not started.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                wake: Notify::new(),
                events: broadcast::channel(1024).0,
                active: Mutex::new(HashMap::new()),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Tells the scheduler to look at the queue now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// All jobs' events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// Sends an event to the subscribers (none is fine).
    pub(crate) fn publish(&self, job_id: &str, kind: &'static str, data: Value) {
        let _ = self.inner.events.send(JobEvent {
            job_id: job_id.to_string(),
            kind,
            data,
        });
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.inner.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs this server is watching.
    pub fn active_count(&self) -> usize {
        self.active().len()
    }

    /// Marks a job as watched; false when it already was.
    pub(crate) fn activate(&self, id: &str, gpu: Option<String>) -> bool {
        let mut a = self.active();
        if a.contains_key(id) {
            return false;
        }
        a.insert(id.to_string(), gpu);
        true
    }

    /// The job is no longer watched; frees its slot and wakes the scheduler.
    pub(crate) fn deactivate(&self, id: &str) {
        self.active().remove(id);
        self.wake();
    }

    /// The least busy of `gpus` (first in the list on ties), or `None` without GPUs.
    pub(crate) fn pick_gpu(&self, gpus: &[String]) -> Option<String> {
        let a = self.active();
        gpus.iter()
            .min_by_key(|g| {
                a.values()
                    .filter(|u| u.as_deref() == Some(g.as_str()))
                    .count()
            })
            .cloned()
    }
}

/// Reconciles jobs left `running` by a previous server, then starts the scheduler task.
/// Call once per process (later calls do nothing); without it jobs stay queued.
pub async fn start(state: &AppState) -> Result<(), AppError> {
    if state.jobs.inner.started.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    monitor::reconcile(state).await?;
    tokio::spawn(scheduler(state.clone()));
    Ok(())
}

/// Claims queued jobs while slots are free; sleeps until woken or the poll interval passes.
async fn scheduler(state: AppState) {
    let cfg = state.config.jobs.clone();
    loop {
        while state.jobs.active_count() < cfg.max_concurrent {
            match store::claim_next(&state.db, cfg.runner).await {
                Ok(Some(job)) => monitor::launch(&state, job).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "job scheduler: cannot read the queue");
                    break;
                }
            }
        }
        let idle = cfg.poll_interval.max(Duration::from_millis(100)) * 4;
        tokio::select! {
            _ = state.jobs.inner.wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
}
