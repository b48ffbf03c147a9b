//! The local runner: trainer processes started by the server, signals and liveness checks.
//!
//! Each process gets its own process group (a Ctrl-C to the server's terminal does not reach
//! it, and a server restart leaves it running to be watched again), the job folder as working
//! directory, stdout appended to `stdout.jsonl` and stderr to `stderr.log`.

use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::command::JobPaths;

/// Quotes a word for `/bin/sh`.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One shell line running `lines` in order with `bin`, stopping at the first failure; the last
/// one is `exec`uted so that signals reach the trainer itself.
pub fn shell_line(bin: &Path, lines: &[Vec<String>]) -> String {
    let bin = shell_quote(&bin.display().to_string());
    let n = lines.len();
    lines
        .iter()
        .enumerate()
        .map(|(i, args)| {
            let words: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
            let exec = if i + 1 == n { "exec " } else { "" };
            format!("{exec}{bin} {}", words.join(" "))
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Starts the trainer for `lines` (one command line, or several run by `/bin/sh`).
pub fn spawn(
    bin: &Path,
    lines: &[Vec<String>],
    paths: &JobPaths,
    gpu: Option<&str>,
) -> std::io::Result<Child> {
    let append = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let stdout = append(&paths.events())?;
    let stderr = append(&paths.log())?;
    let mut cmd = if let [only] = lines {
        let mut c = Command::new(bin);
        c.args(only);
        c
    } else {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(shell_line(bin, lines));
        c
    };
    cmd.current_dir(&paths.dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if let Some(g) = gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", g);
    }
    cmd.spawn()
}

/// Whether `pid` is a live process (zombies count as gone).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|st| st != 'Z' && st != 'X'),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        Err(_) => matches!(
            kill(Pid::from_raw(pid), None),
            Ok(()) | Err(nix::Error::EPERM)
        ),
    }
}

/// Whether `pid` is alive and is the trainer of job `job_id` (its command line names the job
/// folder), so a recycled pid is never signalled. Without `/proc` only liveness is checked.
pub fn is_job_process(pid: i32, job_id: &str) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => String::from_utf8_lossy(&cmd).contains(job_id),
        Err(_) => !Path::new("/proc/self/cmdline").exists(),
    }
}

/// Sends `sig` to the job's process if it is still the job's.
pub fn signal_job(pid: i32, job_id: &str, sig: Signal) -> bool {
    if !is_job_process(pid, job_id) {
        return false;
    }
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(job = job_id, pid, error = %e, signal = ?sig, "cannot signal the trainer");
            false
        }
    }
}

/// SIGTERM now (the trainer checkpoints and exits), SIGKILL after `grace` if still there.
pub fn terminate(pid: i32, job_id: &str, grace: std::time::Duration) {
    if !signal_job(pid, job_id, Signal::SIGTERM) {
        return;
    }
    let job_id = job_id.to_string();
    tokio::spawn(async move {
        let step = std::time::Duration::from_millis(200);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if !is_job_process(pid, &job_id) {
                return;
            }
            tokio::time::sleep(step).await;
        }
        if signal_job(pid, &job_id, Signal::SIGKILL) {
            tracing::warn!(job = %job_id, pid, "trainer ignored SIGTERM; killed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c_1.h5ad"), "/a/b-c_1.h5ad");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let line = shell_line(
            Path::new("/x/genecompass-train"),
            &[
                vec!["tokenize".into(), "in put".into()],
                vec!["classify".into()],
            ],
        );
        assert_eq!(
            line,
            "/x/genecompass-train tokenize 'in put' && exec /x/genecompass-train classify"
        );
    }

    #[test]
    fn liveness() {
        assert!(is_alive(std::process::id() as i32));
        assert!(!is_alive(0));
        assert!(!is_alive(i32::MAX));
    }
}
