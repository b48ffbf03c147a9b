//! Starting, watching, cancelling and reconciling jobs.
//!
//! Whatever runs the trainer, the watcher reads the new lines of `stdout.jsonl` (the trainer's
//! JSON events: `step`, `eval`, `stopped`, `resume`, `done`) every poll interval, stores the
//! progress and publishes the events, and when the process (or Slurm job) is gone decides the
//! outcome from its exit status, the last events and the run folder ([`conclude`]).

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Child;

use super::command::{JobPaths, command_lines};
use super::store::{self, JobRow};
use super::{JobKind, JobState, MAX_ATTEMPTS, RunnerKind, finish, local, slurm};
use crate::app::AppState;
use crate::error::AppError;

/// What is running the current attempt.
enum Handle {
    /// A child of this server.
    Child(Child),
    /// A process started by an earlier server.
    Pid(i32),
    /// A Slurm job.
    Slurm(String),
}

/// How the attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Exit code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
    /// Not known (not our child, or Slurm).
    Unknown,
}

/// New complete lines of a growing file.
struct Tail {
    path: std::path::PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    fn poll(&mut self) -> Vec<Value> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=cut).collect();
        complete
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .filter(|v| v["event"].is_string())
            .collect()
    }
}

/// Starts an attempt of a job the scheduler just claimed (state `running`).
pub(crate) async fn launch(state: &AppState, job: JobRow) {
    let cfg = &state.config.jobs;
    let gpu = match cfg.runner {
        RunnerKind::Local => state.jobs.pick_gpu(&cfg.gpus),
        RunnerKind::Slurm => None,
    };
    if !state.jobs.activate(&job.id, gpu.clone()) {
        tracing::error!(job = %job.id, "claimed a job that is already being watched");
        return;
    }
    let paths = JobPaths::new(&state.config.data_dir, &job.id);
    // Events of this attempt start at the current end of the file.
    let offset = std::fs::metadata(paths.events()).map_or(0, |m| m.len());
    match start_attempt(state, &job, &paths, gpu.as_deref()).await {
        Ok(handle) => {
            store::publish_state(state, &job.id).await;
            tokio::spawn(watch(state.clone(), job.id.clone(), paths, handle, offset));
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "job could not start");
            let msg = format!("the job could not start: {e}");
            end(state, &job.id, JobState::Failed, Some(&msg), None, None).await;
            state.jobs.deactivate(&job.id);
        }
    }
}

async fn start_attempt(
    state: &AppState,
    job: &JobRow,
    paths: &JobPaths,
    gpu: Option<&str>,
) -> Result<Handle, AppError> {
    let cfg = &state.config.jobs;
    tokio::fs::create_dir_all(&paths.dir).await?;
    let bin = cfg.trainer_bin();
    if cfg.runner == RunnerKind::Local && !bin.is_file() {
        return Err(AppError::Internal(format!(
            "the trainer binary {} does not exist; start the server with --trainer-bin",
            bin.display()
        )));
    }
    let device: Vec<String> = if gpu.is_some() || (cfg.runner == RunnerKind::Slurm && cfg.slurm.gpu)
    {
        ["--backend", "cuda", "--gpu", "0"]
            .map(String::from)
            .to_vec()
    } else {
        Vec::new()
    };
    let lines = command_lines(state, job, paths, &device).await?;
    let note = format!(
        "attempt {} on {} runner{}: {}\n",
        job.attempts,
        cfg.runner.as_str(),
        gpu.map(|g| format!(" (GPU {g})")).unwrap_or_default(),
        local::shell_line(&bin, &lines)
    );
    append(&paths.log(), &note);
    let (external, handle) = match cfg.runner {
        RunnerKind::Local => {
            let child = local::spawn(&bin, &lines, paths, gpu)?;
            let pid = child.id().unwrap_or(0);
            (pid.to_string(), Handle::Child(child))
        }
        RunnerKind::Slurm => {
            let text = slurm::script(&job.id, &bin, &lines, paths, &cfg.slurm);
            let id = slurm::submit(&text, paths)
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
            (id.clone(), Handle::Slurm(id))
        }
    };
    tracing::info!(job = %job.id, external_id = %external, attempt = job.attempts, "job started");
    store::set_started(&state.db, &job.id, &external, gpu).await?;
    // A cancel that arrived between the claim and the start.
    if let Some(row) = store::load(&state.db, &job.id).await?
        && row.cancel_requested != 0
    {
        signal_cancel(state, &row);
    }
    Ok(handle)
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Follows an attempt (whose events start at `offset` in the events file) until it ends,
/// then concludes the job.
async fn watch(state: AppState, id: String, paths: JobPaths, mut handle: Handle, offset: u64) {
    let poll = state
        .config
        .jobs
        .poll_interval
        .max(Duration::from_millis(50));
    let mut tail = Tail {
        path: paths.events(),
        offset,
        partial: String::new(),
    };
    let mut last_marker: Option<String> = None;
    let mut last_write = Instant::now() - Duration::from_secs(10);
    let mut last_slurm_check = Instant::now() - Duration::from_secs(60);
    let mut exit: Option<Exit> = None;
    loop {
        for ev in tail.poll() {
            let name = ev["event"].as_str().unwrap_or_default().to_string();
            match name.as_str() {
                "step" => {
                    let step = ev["step"].as_f64().unwrap_or(0.0);
                    let progress = ev["total_steps"]
                        .as_f64()
                        .filter(|t| *t > 0.0)
                        .map(|t| (step / t).clamp(0.0, 1.0));
                    let mut data = ev.clone();
                    data["progress"] = json!(progress);
                    state.jobs.publish(&id, "progress", data);
                    if last_write.elapsed() >= Duration::from_secs(1) {
                        last_write = Instant::now();
                        let p = match progress {
                            Some(p) => p,
                            None => current_progress(&state, &id).await,
                        };
                        if let Err(e) = store::set_progress(&state.db, &id, p, &ev).await {
                            tracing::warn!(job = %id, error = %e, "cannot store progress");
                        }
                    }
                }
                "eval" => state.jobs.publish(&id, "eval", ev),
                _ => {
                    last_marker = Some(name);
                    state.jobs.publish(&id, "trainer", ev);
                }
            }
        }
        if let Some(e) = exit {
            // Free the slot first: a resumption queued by `conclude` must be claimable.
            state.jobs.deactivate(&id);
            conclude(&state, &id, &paths, e, last_marker.as_deref()).await;
            return;
        }
        exit = match &mut handle {
            Handle::Child(c) => match c.try_wait() {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    Some(match (status.code(), status.signal()) {
                        (Some(c), _) => Exit::Code(c),
                        (None, Some(s)) => Exit::Signal(s),
                        _ => Exit::Unknown,
                    })
                }
                Ok(None) => None,
                Err(_) => Some(Exit::Unknown),
            },
            Handle::Pid(pid) => (!local::is_job_process(*pid, &id)).then_some(Exit::Unknown),
            Handle::Slurm(sid) => {
                if last_slurm_check.elapsed() >= Duration::from_secs(5) {
                    last_slurm_check = Instant::now();
                    match slurm::is_active(sid).await {
                        Ok(true) => None,
                        Ok(false) => Some(Exit::Unknown),
                        Err(e) => {
                            tracing::warn!(job = %id, error = %e, "squeue failed");
                            None
                        }
                    }
                } else {
                    None
                }
            }
        };
        if exit.is_none() {
            tokio::time::sleep(poll).await;
        }
    }
}

async fn current_progress(state: &AppState, id: &str) -> f64 {
    store::load(&state.db, id)
        .await
        .ok()
        .flatten()
        .map_or(0.0, |r| r.progress)
}

/// Ends a job and publishes its final state.
async fn end(
    state: &AppState,
    id: &str,
    to: JobState,
    error: Option<&str>,
    model_version_id: Option<&str>,
    result_path: Option<&str>,
) {
    match store::finish(&state.db, id, to, error, model_version_id, result_path).await {
        Ok(true) => tracing::info!(job = id, state = to.as_str(), error, "job ended"),
        Ok(false) => {}
        Err(e) => tracing::error!(job = id, error = %e, "cannot store the end of a job"),
    }
    store::publish_state(state, id).await;
}

/// The last `error: ...` line of the trainer's log, or its last line.
fn last_error(paths: &JobPaths) -> Option<String> {
    let text = std::fs::read_to_string(paths.log()).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or(lines.last())
        .map(|l| l.chars().take(2000).collect())
}

/// Decides how an attempt ended: register the outputs, cancel, resume or fail.
async fn conclude(state: &AppState, id: &str, paths: &JobPaths, exit: Exit, marker: Option<&str>) {
    let job = match store::load(&state.db, id).await {
        Ok(Some(j)) if j.state() == JobState::Running => j,
        Ok(_) => return,
        Err(e) => {
            tracing::error!(job = id, error = %e, "cannot load a finished job");
            return;
        }
    };
    let kind: JobKind = job.kind.parse().unwrap_or(JobKind::Finetune);
    let produced = match kind {
        JobKind::Finetune | JobKind::Pretrain => {
            marker == Some("done") && paths.run_dir().join("model").join("config.json").is_file()
        }
        // Annotation and the downstream tasks: every output file, from a run that did not fail.
        JobKind::Annotate | JobKind::Grn | JobKind::Fate | JobKind::Perturb => {
            matches!(exit, Exit::Code(0) | Exit::Unknown)
                && paths.outputs(kind).iter().all(|f| f.is_file())
        }
    };
    if produced {
        match finish::register(state, &job, paths).await {
            Ok((version, result)) => {
                end(
                    state,
                    id,
                    JobState::Succeeded,
                    None,
                    version.as_deref(),
                    result.as_deref(),
                )
                .await
            }
            Err(e) => {
                let msg = format!("the trainer finished but registering its output failed: {e}");
                end(state, id, JobState::Failed, Some(&msg), None, None).await
            }
        }
        return;
    }
    if job.cancel_requested != 0 {
        end(state, id, JobState::Cancelled, None, None, None).await;
        return;
    }
    let reason = match exit {
        Exit::Code(0) if marker == Some("stopped") => {
            "the trainer was stopped by a signal the server did not send".to_string()
        }
        Exit::Code(0) => {
            let msg = "the trainer exited without producing its output".to_string();
            end(state, id, JobState::Failed, Some(&msg), None, None).await;
            return;
        }
        Exit::Code(c) => {
            let msg =
                last_error(paths).unwrap_or_else(|| format!("the trainer exited with status {c}"));
            end(state, id, JobState::Failed, Some(&msg), None, None).await;
            return;
        }
        Exit::Signal(s) => format!("the trainer was killed by signal {s}"),
        Exit::Unknown => format!(
            "the trainer ({} {}) ended without finishing{}",
            job.runner,
            job.external_id.as_deref().unwrap_or("?"),
            last_error(paths)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    };
    resume_or_fail(state, &job, paths, &reason).await;
}

/// Queues a resumption from the run folder's checkpoint, or fails the job with `reason`.
async fn resume_or_fail(state: &AppState, job: &JobRow, paths: &JobPaths, reason: &str) {
    let kind: JobKind = job.kind.parse().unwrap_or(JobKind::Finetune);
    // Only training runs checkpoint; the others are never resumed (nor restarted).
    if kind.trains() && paths.resumable() && job.attempts < MAX_ATTEMPTS {
        let note = format!("{reason}; resuming from the run folder's checkpoint");
        match store::requeue_for_resume(&state.db, &job.id, &note).await {
            Ok(_) => tracing::warn!(job = %job.id, %note, "job requeued"),
            Err(e) => tracing::error!(job = %job.id, error = %e, "cannot requeue"),
        }
        store::publish_state(state, &job.id).await;
        state.jobs.wake();
    } else {
        let why = if !kind.trains() {
            format!("{reason}; {} jobs are not resumed", kind.as_str())
        } else if job.attempts >= MAX_ATTEMPTS {
            format!("{reason}; gave up after {} attempts", job.attempts)
        } else {
            format!("{reason}; no checkpoint to resume from")
        };
        end(state, &job.id, JobState::Failed, Some(&why), None, None).await;
    }
}

/// Sends the stop signal for a running job (the watcher records `cancelled` when it ends).
fn signal_cancel(state: &AppState, job: &JobRow) {
    let grace = state.config.jobs.cancel_grace;
    match (job.runner(), job.external_id.as_deref()) {
        (RunnerKind::Local, Some(pid)) => {
            if let Ok(pid) = pid.parse::<i32>() {
                local::terminate(pid, &job.id, grace);
            }
        }
        (RunnerKind::Slurm, Some(sid)) => slurm::cancel(sid, grace),
        (_, None) => {}
    }
}

/// Cancels a job: a queued one ends at once, a running one is signalled and ends when its
/// trainer is gone. Returns false when the job had already ended.
pub async fn cancel(state: &AppState, job: &JobRow) -> Result<bool, AppError> {
    let t = crate::db::now();
    let queued = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $2, \
         updated_at = $2 WHERE id = $1 AND state = 'queued'",
    )
    .bind(&job.id)
    .bind(t)
    .execute(&state.db.pool)
    .await?;
    if queued.rows_affected() == 0 {
        let running = sqlx::query(
            "UPDATE jobs SET cancel_requested = 1, updated_at = $2 \
             WHERE id = $1 AND state = 'running'",
        )
        .bind(&job.id)
        .bind(t)
        .execute(&state.db.pool)
        .await?;
        if running.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(row) = store::load(&state.db, &job.id).await? {
            signal_cancel(state, &row);
        }
    }
    tracing::info!(job = %job.id, "job cancel requested");
    store::publish_state(state, &job.id).await;
    Ok(true)
}

/// Jobs left `running` by an earlier server: watch the live ones again, conclude the others.
pub(crate) async fn reconcile(state: &AppState) -> Result<(), AppError> {
    for job in store::in_state(&state.db, JobState::Running).await? {
        let paths = JobPaths::new(&state.config.data_dir, &job.id);
        let ext = job.external_id.clone().unwrap_or_default();
        let handle = match job.runner() {
            RunnerKind::Local => ext
                .parse::<i32>()
                .ok()
                .filter(|pid| local::is_job_process(*pid, &job.id))
                .map(Handle::Pid),
            RunnerKind::Slurm if !ext.is_empty() && slurm::available() => {
                match slurm::is_active(&ext).await {
                    Ok(true) => Some(Handle::Slurm(ext.clone())),
                    _ => None,
                }
            }
            RunnerKind::Slurm => None,
        };
        match handle {
            Some(h) => {
                tracing::info!(job = %job.id, external_id = %ext, "watching a job started before the restart");
                if state.jobs.activate(&job.id, job.gpu.clone()) {
                    tokio::spawn(watch(state.clone(), job.id.clone(), paths, h, 0));
                }
            }
            None => {
                let marker = last_marker(&paths);
                let reason = format!(
                    "the server restarted while the job ran and its trainer ({} {}) is gone",
                    job.runner,
                    if ext.is_empty() { "?" } else { &ext }
                );
                if marker.as_deref() == Some("done") || job.cancel_requested != 0 {
                    conclude(state, &job.id, &paths, Exit::Unknown, marker.as_deref()).await;
                } else {
                    tracing::warn!(job = %job.id, %reason, "reconciling");
                    resume_or_fail(state, &job, &paths, &reason).await;
                }
            }
        }
    }
    Ok(())
}

/// The last non-step event of the events file.
fn last_marker(paths: &JobPaths) -> Option<String> {
    let mut t = Tail {
        path: paths.events(),
        offset: 0,
        partial: String::new(),
    };
    t.poll()
        .into_iter()
        .filter_map(|e| e["event"].as_str().map(str::to_string))
        .rfind(|e| e != "step" && e != "eval")
}
