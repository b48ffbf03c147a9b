//! The Slurm runner (`--runner slurm`): an sbatch script per attempt, `sbatch --parsable` to
//! submit, `squeue` to follow, `scancel` to stop. The script sends the trainer's stdout and
//! stderr to the same files as the local runner, so progress and outcome are read the same way
//! (the job folder must be on a file system shared with the compute nodes).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::SlurmConfig;
use super::command::JobPaths;
use super::local::shell_line;

/// Errors talking to Slurm.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A Slurm command could not be started.
    #[error("cannot run `{cmd}`: {source} (is Slurm installed and on PATH?)")]
    Spawn {
        /// The command.
        cmd: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A Slurm command failed.
    #[error("`{cmd}` failed: {message}")]
    Failed {
        /// The command.
        cmd: &'static str,
        /// Its stderr.
        message: String,
    },
}

/// Whether `sbatch` is on PATH.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("sbatch").is_file()))
}

/// The batch script of one attempt of job `job_id`.
pub fn script(
    job_id: &str,
    bin: &Path,
    lines: &[Vec<String>],
    paths: &JobPaths,
    cfg: &SlurmConfig,
) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let mut opt = |o: String| s.push_str(&format!("#SBATCH {o}\n"));
    opt(format!("--job-name=gc-{job_id}"));
    opt(format!("--chdir={}", paths.dir.display()));
    opt(format!("--output={}", paths.events().display()));
    opt(format!("--error={}", paths.log().display()));
    opt("--open-mode=append".into());
    // The trainer checkpoints on SIGTERM; ask Slurm to send it before the time limit.
    opt("--signal=TERM@120".into());
    if let Some(p) = &cfg.partition {
        opt(format!("--partition={p}"));
    }
    if cfg.gpu {
        opt("--gres=gpu:1".into());
    }
    for e in &cfg.extra {
        opt(e.clone());
    }
    s.push_str(&format!("# genecompass job {job_id}\n"));
    s.push_str(&shell_line(bin, lines));
    s.push('\n');
    s
}

async fn run(cmd: &'static str, args: &[&str]) -> Result<String, SlurmError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .await
        .map_err(|source| SlurmError::Spawn { cmd, source })?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            cmd,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes the script into the job folder and submits it; returns the Slurm job id.
pub async fn submit(script_text: &str, paths: &JobPaths) -> Result<String, SlurmError> {
    let file = paths.dir.join("job.sbatch");
    tokio::fs::write(&file, script_text)
        .await
        .map_err(|source| SlurmError::Spawn {
            cmd: "sbatch",
            source,
        })?;
    let out = run("sbatch", &["--parsable", &file.display().to_string()]).await?;
    // `--parsable` prints `id` or `id;cluster`.
    Ok(out.split(';').next().unwrap_or_default().trim().to_string())
}

/// Whether the Slurm job is still pending or running (`squeue` lists it).
pub async fn is_active(slurm_id: &str) -> Result<bool, SlurmError> {
    let out = run("squeue", &["-h", "-j", slurm_id, "-o", "%T"]).await;
    match out {
        Ok(states) => Ok(!states.trim().is_empty()),
        // squeue fails with "Invalid job id" once the job has left the queue.
        Err(SlurmError::Failed { message, .. }) if message.contains("Invalid job id") => Ok(false),
        Err(e) => Err(e),
    }
}

/// SIGTERM to the batch step now, `scancel` after `grace` if it is still queued or running.
pub fn cancel(slurm_id: &str, grace: Duration) {
    let id = slurm_id.to_string();
    tokio::spawn(async move {
        if let Err(e) = run("scancel", &["--batch", "--signal=TERM", &id]).await {
            tracing::warn!(slurm_id = %id, error = %e, "scancel --signal=TERM failed");
        }
        tokio::time::sleep(grace).await;
        if matches!(is_active(&id).await, Ok(true))
            && let Err(e) = run("scancel", &[&id]).await
        {
            tracing::warn!(slurm_id = %id, error = %e, "scancel failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_options_and_the_command() {
        let paths = JobPaths::new(Path::new("/data"), "job_1");
        let cfg = SlurmConfig {
            partition: Some("gpu".into()),
            gpu: true,
            extra: vec!["--time=01:00:00".into()],
        };
        let s = script(
            "job_1",
            Path::new("/opt/genecompass-train"),
            &[vec![
                "finetune".into(),
                "--resume".into(),
                "/data/jobs/job_1/run".into(),
            ]],
            &paths,
            &cfg,
        );
        for want in [
            "#SBATCH --job-name=gc-job_1\n",
            "#SBATCH --output=/data/jobs/job_1/stdout.jsonl\n",
            "#SBATCH --error=/data/jobs/job_1/stderr.log\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gres=gpu:1\n",
            "#SBATCH --time=01:00:00\n",
            "exec /opt/genecompass-train finetune --resume /data/jobs/job_1/run\n",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        assert!(s.starts_with("#!/bin/sh\n"));
    }
}
