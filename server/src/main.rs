//! `genecompass`: the team registry server and its admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use genecompass_server::app::{
    AppState, DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_UPLOAD_BYTES, ServerConfig, default_web_dir,
    router,
};
use genecompass_server::auth::{NewUser, add_user, bootstrap_admin};
use genecompass_server::blobs::RemoteConfig;
use genecompass_server::checkpoints::import_checkpoint;
use genecompass_server::db::Role;
use genecompass_server::jobs::{JobsConfig, RunnerKind, SlurmConfig};
use std::time::Duration;

mod upload_cli;

/// GeneCompass team registry.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Data directory: SQLite database (by default), blobs, temp files.
    #[arg(
        long,
        global = true,
        env = "GENECOMPASS_DATA_DIR",
        default_value = "genecompass-data"
    )]
    data_dir: PathBuf,
    /// Database URL (`postgres://...`); default: SQLite file in the data directory.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Keep blobs (datasets, checkpoint files) in an S3-compatible bucket, `s3://bucket[/prefix]`,
    /// instead of DATA_DIR/blobs. Credentials, region and endpoint come from the standard
    /// AWS_* variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint such as MinIO or Ceph on a LAN).
    #[arg(long, global = true, env = "GENECOMPASS_BLOB_STORE")]
    blob_store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (migrates first; creates an admin on an empty database).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Largest accepted upload in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
        max_upload_bytes: u64,
        /// Largest accepted JSON body in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_JSON_BYTES)]
        max_json_bytes: usize,
        /// The built web UI to serve at `/` (scripts/build-web.sh writes web/dist).
        /// Default: web/dist next to this executable or under the working directory.
        #[arg(long, env = "GENECOMPASS_WEB_DIR")]
        web_dir: Option<PathBuf>,
        #[command(flatten)]
        jobs: JobsArgs,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Upload a dataset file to a running registry in resumable chunks (client command).
    Upload(upload_cli::UploadArgs),
    /// Validate a model directory and store it as the next version of a model.
    ImportCheckpoint {
        /// The model directory (config.json + weights).
        dir: PathBuf,
        /// Team that owns the model.
        #[arg(long)]
        team: String,
        /// Model name (default: the directory name).
        #[arg(long)]
        name: Option<String>,
        /// Extra aliases to point at the new version (`latest` always moves).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// User recorded as the importer.
        #[arg(long, default_value = "admin")]
        user: String,
    },
    /// Import a prior-knowledge store folder (`genecompass-train priors build-*` or
    /// `load-official` output) as the next version of a prior set.
    ImportPriors {
        /// The store folder (priors.json, genes.txt, tables).
        dir: PathBuf,
        /// Team that owns the set.
        #[arg(long)]
        team: String,
        /// Prior set name (default: the directory name).
        #[arg(long)]
        name: Option<String>,
        /// User recorded as the importer.
        #[arg(long, default_value = "admin")]
        user: String,
    },
}

/// How `serve` runs jobs.
#[derive(Debug, clap::Args)]
struct JobsArgs {
    /// Where jobs run: `local` (child processes) or `slurm` (sbatch/squeue/scancel).
    #[arg(long, default_value = "local", value_parser = parse_runner)]
    runner: RunnerKind,
    /// The genecompass-train binary (default: next to this executable).
    #[arg(long, env = "GENECOMPASS_TRAINER_BIN")]
    trainer_bin: Option<PathBuf>,
    /// Jobs running (or submitted to Slurm) at once; 0 only queues them.
    #[arg(long, default_value_t = 1)]
    max_concurrent_jobs: usize,
    /// GPUs for local jobs, comma-separated (e.g. `0,1`); each job gets one as
    /// CUDA_VISIBLE_DEVICES, least busy first. Default: CPU.
    #[arg(long, env = "GENECOMPASS_GPUS", value_delimiter = ',')]
    gpus: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL when a job is cancelled.
    #[arg(long, default_value_t = 30)]
    cancel_grace_secs: u64,
    /// Slurm partition.
    #[arg(long)]
    slurm_partition: Option<String>,
    /// Ask Slurm for one GPU per job (`--gres=gpu:1`) and train on CUDA.
    #[arg(long)]
    slurm_gpu: bool,
    /// Extra `#SBATCH` option, e.g. `--slurm-option=--time=04:00:00` (repeatable).
    #[arg(long = "slurm-option", allow_hyphen_values = true)]
    slurm_options: Vec<String>,
    /// TF → target table (TSV/CSV, gzip allowed, e.g.
    /// shared/data/priors/omnipath_transcriptional_tf_target.tsv.gz) that scores `grn` jobs and
    /// flags TFs in `fate` jobs. Without it `grn` jobs must name their TFs.
    #[arg(long, env = "GENECOMPASS_TF_TARGETS")]
    tf_targets: Option<PathBuf>,
}

fn parse_runner(s: &str) -> Result<RunnerKind, String> {
    s.parse()
}

impl JobsArgs {
    fn config(&self) -> JobsConfig {
        JobsConfig {
            runner: self.runner,
            trainer_bin: self.trainer_bin.clone(),
            max_concurrent: self.max_concurrent_jobs,
            gpus: self
                .gpus
                .iter()
                .filter(|g| !g.is_empty())
                .cloned()
                .collect(),
            cancel_grace: Duration::from_secs(self.cancel_grace_secs),
            slurm: SlurmConfig {
                partition: self.slurm_partition.clone(),
                gpu: self.slurm_gpu,
                extra: self.slurm_options.clone(),
            },
            // Absolute: the trainer runs in the job folder.
            tf_targets: self
                .tf_targets
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            ..JobsConfig::default()
        }
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user to a team (creating both as needed); prints a password and an API token.
    Add {
        /// User name.
        name: String,
        /// Team name.
        #[arg(long)]
        team: String,
        /// Role in the team: viewer, editor or admin.
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
}

fn print_credentials(name: &str, u: &NewUser) {
    if let Some(p) = &u.password {
        println!("password for `{name}` (shown once): {p}");
    }
    println!("API token for `{name}` (shown once): {}", u.token);
}

async fn open(cli: &Cli, config: Option<ServerConfig>) -> Result<AppState> {
    let mut config = config.unwrap_or_else(|| ServerConfig::new(&cli.data_dir));
    config.database_url = cli.database_url.clone();
    config.blob_store = cli.blob_store.as_deref().map(RemoteConfig::from_env);
    AppState::open(config)
        .await
        .context("cannot open the registry")
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "genecompass_server=info,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        // A blocking HTTP client: keep it off the runtime's async threads.
        Command::Upload(a) => tokio::task::block_in_place(|| upload_cli::run(a))?,
        Command::Serve {
            bind,
            max_upload_bytes,
            max_json_bytes,
            web_dir,
            jobs,
        } => {
            let mut config = ServerConfig::new(&cli.data_dir);
            config.max_upload_bytes = *max_upload_bytes;
            config.max_json_bytes = *max_json_bytes;
            if let Some(d) = web_dir.as_ref().filter(|d| !d.join("index.html").is_file()) {
                bail!(
                    "--web-dir {}: no index.html there; build the web UI with scripts/build-web.sh",
                    d.display()
                );
            }
            config.web_dir = web_dir.clone().or_else(default_web_dir);
            config.jobs = jobs.config();
            if let Some(p) = config.jobs.tf_targets.as_ref().filter(|p| !p.is_file()) {
                bail!(
                    "--tf-targets / GENECOMPASS_TF_TARGETS {}: no such file",
                    p.display()
                );
            }
            if config.jobs.runner == RunnerKind::Slurm
                && !genecompass_server::jobs::slurm::available()
            {
                bail!("--runner slurm: sbatch is not on PATH");
            }
            let state = open(&cli, Some(config)).await?;
            if let Some(admin) = bootstrap_admin(&state.db).await? {
                println!("first start: created user `admin` (admin of team `admin`)");
                print_credentials("admin", &admin);
            }
            genecompass_server::jobs::start(&state)
                .await
                .context("cannot reconcile the jobs left running")?;
            println!(
                "jobs: {} runner, trainer {}, {} at once{}; TF→target priors: {}",
                state.config.jobs.runner.as_str(),
                state.config.jobs.trainer_bin().display(),
                state.config.jobs.max_concurrent,
                if state.config.jobs.gpus.is_empty() {
                    String::new()
                } else {
                    format!(", GPUs {}", state.config.jobs.gpus.join(","))
                },
                state.config.jobs.tf_targets.as_ref().map_or_else(
                    || "none (grn jobs must name their TFs; set GENECOMPASS_TF_TARGETS)".into(),
                    |p| p.display().to_string()
                )
            );
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}; is another server running?"))?;
            let addr = listener.local_addr()?;
            println!(
                "genecompass registry ({}) listening on http://{addr}/api/v1",
                state.db.kind.name()
            );
            match &state.config.web_dir {
                Some(d) => println!("web UI: http://{addr}/ (from {})", d.display()),
                None => println!("web UI: not built (scripts/build-web.sh); serving the API only"),
            }
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::Migrate => {
            let state = open(&cli, None).await?;
            println!("{} database is up to date", state.db.kind.name());
        }
        Command::User {
            command: UserCommand::Add { name, team, role },
        } => {
            let state = open(&cli, None).await?;
            let u = add_user(&state.db, name, team, *role).await?;
            println!("`{name}` is {} of team `{team}`", role.as_str());
            print_credentials(name, &u);
        }
        Command::ImportCheckpoint {
            dir,
            team,
            name,
            aliases,
            user,
        } => {
            let state = open(&cli, None).await?;
            let name = match name {
                Some(n) => n.clone(),
                None => dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .context("give the model a name with --name")?,
            };
            let (team_id, user_id) = team_and_user(&state, team, user).await?;
            let (model_id, version_id, version) =
                import_checkpoint(&state, &team_id, &user_id, dir, &name, aliases).await?;
            println!(
                "imported {} as `{name}` version {version} ({model_id}, {version_id})",
                dir.display()
            );
        }
        Command::ImportPriors {
            dir,
            team,
            name,
            user,
        } => {
            let state = open(&cli, None).await?;
            let name = match name {
                Some(n) => n.clone(),
                None => dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .context("give the prior set a name with --name")?,
            };
            let (team_id, user_id) = team_and_user(&state, team, user).await?;
            let (set_id, version_id, version, created) =
                genecompass_server::priors::import_priors(&state, &team_id, &user_id, dir, &name)
                    .await?;
            let what = if created {
                "imported"
            } else {
                "already registered:"
            };
            println!(
                "{what} {} as prior set `{name}` version {version} ({set_id}, {version_id})",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The ids of a team and a user named on the command line.
async fn team_and_user(state: &AppState, team: &str, user: &str) -> Result<(String, String)> {
    let team_id: Option<(String,)> = sqlx::query_as("SELECT id FROM teams WHERE name = $1")
        .bind(team)
        .fetch_optional(&state.db.pool)
        .await?;
    let user_id: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE name = $1")
        .bind(user)
        .fetch_optional(&state.db.pool)
        .await?;
    let (Some((team_id,)), Some((user_id,))) = (team_id, user_id) else {
        bail!("unknown team `{team}` or user `{user}`; create them with `genecompass user add`");
    };
    Ok((team_id, user_id))
}
