//! `genecompass upload FILE`: sends a dataset to a running registry in resumable chunks
//! (`/api/v1/uploads`), retrying a failed chunk from the offset the server holds, and resuming
//! an interrupted run where it stopped (the upload id is kept in a small state file).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Arguments of `genecompass upload`.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The file to register (h5ad, 10x .h5, CSV/TSV, ...).
    pub file: PathBuf,
    /// Registry address.
    #[arg(long, env = "GENECOMPASS_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token (`POST /api/v1/tokens`, or printed by `genecompass user add`).
    #[arg(long, env = "GENECOMPASS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Dataset name (default: the file name without extension, made a valid name).
    #[arg(long)]
    pub name: Option<String>,
    /// Team (name or id); needed when you belong to several.
    #[arg(long)]
    pub team: Option<String>,
    /// Chunk size in MiB.
    #[arg(long, default_value_t = 8)]
    pub chunk_mib: u64,
    /// Attempts per chunk before giving up (the run can be started again to resume).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Send at most this many chunks in this run, then stop; running the command again resumes
    /// (to spread a large upload over several sessions).
    #[arg(long)]
    pub max_chunks: Option<u64>,
    /// Where unfinished uploads are remembered (default: ~/.cache/genecompass/uploads).
    #[arg(long, env = "GENECOMPASS_UPLOAD_STATE")]
    pub state_dir: Option<PathBuf>,
}

/// A valid dataset name from a file name (`[A-Za-z0-9._-]`, other characters become `_`).
pub fn default_name(file: &Path) -> String {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dataset");
    let stem = stem.strip_suffix(".gz").unwrap_or(stem);
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "dataset".into() } else { s }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

/// An answer: status and JSON body (or the text, as a JSON string).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .or_else(|| self.body["message"].as_str())
            .map(String::from)
            .unwrap_or_else(|| self.body.to_string())
    }
}

impl Client {
    fn new(server: &str, token: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Self {
            agent,
            base: server.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
        }
    }

    fn read(mut res: ureq::http::Response<ureq::Body>) -> Result<Answer> {
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    fn get(&self, path: &str) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let res = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth)
            .call()
            .with_context(|| format!("GET {url}"))?;
        Self::read(res)
    }

    fn post(&self, path: &str) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let res = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth)
            .send_empty()
            .with_context(|| format!("POST {url}"))?;
        Self::read(res)
    }

    fn patch(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let res = self
            .agent
            .patch(&url)
            .header("Authorization", &self.auth)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .with_context(|| format!("PATCH {url}"))?;
        Self::read(res)
    }
}

/// The state file of an upload: keyed by server, file identity (path, size, mtime), name, team.
fn state_file(args: &UploadArgs, name: &str, size: u64) -> Result<PathBuf> {
    let dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            let home = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .context("neither XDG_CACHE_HOME nor HOME is set: pass --state-dir")?;
            home.join("genecompass").join("uploads")
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let canon = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
    let mtime = std::fs::metadata(&args.file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!(
        "{}\n{}\n{size}\n{mtime}\n{name}\n{}",
        args.server,
        canon.display(),
        args.team.as_deref().unwrap_or("")
    );
    Ok(dir.join(format!("{}.json", hex::encode(&Sha256::digest(key)[..12]))))
}

/// Uploads the file; prints the registered dataset as JSON on stdout.
pub fn run(args: &UploadArgs) -> Result<()> {
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    if size == 0 {
        bail!("{} is empty", args.file.display());
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.file));
    let client = Client::new(&args.server, &args.token);
    let state = state_file(args, &name, size)?;
    // Resume a remembered upload if the server still has it.
    let mut resumed = None;
    if let Ok(text) = std::fs::read_to_string(&state)
        && let Ok(v) = serde_json::from_str::<Value>(&text)
        && let Some(id) = v["id"].as_str()
    {
        let a = client.get(&format!("/api/v1/uploads/{id}"))?;
        if a.status == 200 {
            resumed = Some((id.to_string(), a.body["offset"].as_u64().unwrap_or(0)));
        }
    }
    let (id, mut offset) = match resumed {
        Some((id, offset)) => {
            eprintln!("resuming upload {id} at byte {offset} of {size}");
            (id, offset)
        }
        None => {
            let mut q = format!("/api/v1/uploads?name={name}&size={size}");
            if let Some(t) = &args.team {
                q.push_str(&format!("&team={t}"));
            }
            let a = client.post(&q)?;
            if a.status != 201 {
                bail!(
                    "the registry refused the upload ({}): {}",
                    a.status,
                    a.message()
                );
            }
            let id = a.body["id"]
                .as_str()
                .context("the registry's answer has no upload id")?
                .to_string();
            std::fs::write(&state, serde_json::json!({ "id": id }).to_string())
                .with_context(|| format!("writing {}", state.display()))?;
            (id, 0)
        }
    };
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let b = ProgressBar::new(size);
        b.set_style(
            ProgressStyle::with_template(
                "upload [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    bar.set_position(offset);
    let mut file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let chunk = (args.chunk_mib.max(1) * 1024 * 1024) as usize;
    let mut buf = vec![0u8; chunk];
    let path = format!("/api/v1/uploads/{id}");
    let mut failures = 0;
    let mut sent = 0u64;
    while offset < size {
        if args.max_chunks.is_some_and(|m| sent >= m) {
            bar.finish_and_clear();
            eprintln!(
                "stopped after {sent} chunk(s) at byte {offset} of {size} (--max-chunks); run the \
                 same command again to resume upload {id}"
            );
            return Ok(());
        }
        let n = chunk.min((size - offset) as usize);
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf[..n])
            .with_context(|| format!("reading {} at byte {offset}", args.file.display()))?;
        let outcome = client.patch(&path, offset, &buf[..n]);
        match outcome {
            Ok(a) if a.status == 200 => {
                offset = a.body["offset"].as_u64().unwrap_or(offset + n as u64);
                failures = 0;
                sent += 1;
            }
            Ok(a) if a.status == 404 || a.status == 413 || a.status == 401 || a.status == 403 => {
                let _ = std::fs::remove_file(&state);
                bail!(
                    "the registry stopped the upload ({}): {}",
                    a.status,
                    a.message()
                );
            }
            other => {
                failures += 1;
                let why = match &other {
                    Ok(a) => format!("{}: {}", a.status, a.message()),
                    Err(e) => format!("{e:#}"),
                };
                if failures > args.retries {
                    bail!(
                        "chunk at byte {offset} failed {failures} times ({why}); run the same \
                         command again to resume from the last byte the registry holds"
                    );
                }
                tracing::warn!(offset, failures, %why, "chunk failed; asking the registry where to resume");
                std::thread::sleep(Duration::from_millis(200 * u64::from(failures)));
                if let Ok(a) = client.get(&path)
                    && a.status == 200
                {
                    offset = a.body["offset"].as_u64().unwrap_or(offset);
                }
            }
        }
        bar.set_position(offset);
    }
    bar.finish_and_clear();
    let a = client.post(&format!("{path}/complete"))?;
    if a.status != 201 {
        if a.status != 409 {
            let _ = std::fs::remove_file(&state);
        }
        bail!(
            "the registry did not register {} ({}): {}",
            args.file.display(),
            a.status,
            a.message()
        );
    }
    let _ = std::fs::remove_file(&state);
    println!("{}", serde_json::to_string_pretty(&a.body)?);
    eprintln!(
        "registered {} as dataset {} ({} cells x {} genes)",
        args.file.display(),
        a.body["id"].as_str().unwrap_or("?"),
        a.body["n_cells"],
        a.body["n_genes"]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_dataset_names() {
        assert_eq!(
            default_name(Path::new("/x/baron mouse.h5ad")),
            "baron_mouse"
        );
        assert_eq!(default_name(Path::new("counts.csv.gz")), "counts");
        assert_eq!(default_name(Path::new("matrix")), "matrix");
    }
}
