//! Test harness: a fresh registry (SQLite in a temp dir, or a new database in the Postgres
//! cluster named by `GENECOMPASS_TEST_POSTGRES_URL`) driven in-process with `oneshot`.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use genecompass_server::auth::{NewUser, add_user};
use genecompass_server::db::Role;
use genecompass_server::{AppState, ServerConfig, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// The small h5ad used throughout (200 cells × 3000 genes).
pub const H5AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/wu2020_tcells_200_old_schema_v0_6.h5ad"
);
/// The Wu 2020 T cells in the current h5ad schema (196 human cells, a `source` column:
/// Tumor / NAT / Blood), for the downstream-task jobs.
pub const WU2020: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/wu2020_tcells_200.h5ad"
);
/// The OmniPath TF → target table (the server's `GENECOMPASS_TF_TARGETS` in task job tests).
pub const TF_TARGETS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/priors/omnipath_transcriptional_tf_target.tsv.gz"
);
/// The tiny official checkpoint.
pub const CHECKPOINT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/reference-tiny"
);

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in the temp data dir.
    Sqlite,
    /// A fresh database in the test Postgres cluster.
    Postgres,
}

/// A response, decoded.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Res {
    /// The body as JSON (panics with the body text otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// Asserts the status and the error shape, returning the error code.
    pub fn error_code(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.bytes)
        );
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "error shape: {v}");
        v["error"]["code"].as_str().expect("error.code").to_string()
    }
}

/// A running (in-process) registry.
pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub dir: TempDir,
}

/// Creates a uniquely named database in the test cluster and returns its URL.
async fn fresh_postgres_db(admin_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("gc_test_{}", genecompass_server::auth::random_hex(8));
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .expect("connect to GENECOMPASS_TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, ""), |(b, q)| (b, q));
    let prefix = &base[..base.rfind('/').expect("database URL has a path")];
    if query.is_empty() {
        format!("{prefix}/{name}")
    } else {
        format!("{prefix}/{name}?{query}")
    }
}

impl TestApp {
    /// A fresh registry; `None` when the backend is Postgres and no cluster is configured.
    pub async fn new(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path().join("data"));
        if backend == Backend::Postgres {
            let Ok(url) = std::env::var("GENECOMPASS_TEST_POSTGRES_URL") else {
                // CI always starts a cluster (.ci/services.sh): there, a missing URL is a failure.
                assert!(
                    std::env::var_os("GENECOMPASS_REQUIRE_POSTGRES").is_none(),
                    "GENECOMPASS_REQUIRE_POSTGRES is set but GENECOMPASS_TEST_POSTGRES_URL is not: \
                     start a cluster with `bash server/tests/start_postgres.sh`"
                );
                eprintln!("GENECOMPASS_TEST_POSTGRES_URL not set: skipping the Postgres run");
                return None;
            };
            config.database_url = Some(fresh_postgres_db(&url).await);
        }
        tweak(&mut config);
        let state = AppState::open(config).await.expect("open registry");
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(state.db.kind.name(), expected);
        Some(Self {
            router: router(state.clone()),
            state,
            dir,
        })
    }

    /// Adds a user with a role in a team; returns its credentials.
    pub async fn user(&self, name: &str, team: &str, role: Role) -> NewUser {
        add_user(&self.state.db, name, team, role)
            .await
            .expect("add user")
    }

    /// Sends one request.
    pub async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Res {
            status,
            headers,
            bytes,
        }
    }

    /// Sends `method uri` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        json: Option<Value>,
    ) -> Res {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match json {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(b.body(body).unwrap()).await
    }

    /// `GET uri` with a token.
    pub async fn get(&self, uri: &str, token: &str) -> Res {
        self.call(Method::GET, uri, Some(token), None).await
    }

    /// Uploads bytes as dataset `name` (optionally into `team`).
    pub async fn upload(&self, token: &str, name: &str, team: Option<&str>, bytes: Vec<u8>) -> Res {
        let mut uri = format!("/api/v1/datasets?name={name}");
        if let Some(t) = team {
            uri.push_str(&format!("&team={t}"));
        }
        let req = Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes))
            .unwrap();
        self.send(req).await
    }

    /// Number of dataset rows in the database.
    pub async fn dataset_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM datasets")
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap();
        n
    }

    /// Number of files under `blobs/`.
    pub fn blob_count(&self) -> usize {
        fn walk(p: &std::path::Path) -> usize {
            std::fs::read_dir(p).map_or(0, |d| {
                d.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        walk(&self.dir.path().join("data").join("blobs"))
    }
}

/// The Baron mouse pancreas file (822 cells, `cell_type` labels) for the fine-tuning job.
pub const BARON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
);

/// The `genecompass-train` binary for job tests: `$GENECOMPASS_TRAINER_BIN` if set (as
/// `scripts/test.sh` does), otherwise `cargo test --workspace --no-run` into this test's own
/// target directory, once per test process: a no-op after `cargo test --workspace`, which
/// builds the binary for the trainer's own tests. `cargo build -p genecompass-trainer` would
/// unify features differently and rebuild some 130 crates. `CARGO_BIN_EXE_*` only covers
/// binaries of the package under test.
pub fn trainer_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("GENECOMPASS_TRAINER_BIN") {
            return p.into();
        }
        // .../target/<profile>/deps/api-<hash>
        let exe = std::env::current_exe().expect("test executable");
        let profile_dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>");
        let target = profile_dir.parent().expect("target dir");
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["test", "--workspace", "--no-run"])
            .arg("--target-dir")
            .arg(target);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo test --no-run for genecompass-train");
        let bin = profile_dir.join("genecompass-train");
        if !status.success() {
            // E.g. the trainer's sources are mid-edit; an earlier build still serves.
            assert!(bin.is_file(), "building genecompass-train failed");
            eprintln!(
                "warning: building genecompass-train failed; using {}",
                bin.display()
            );
        }
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

impl TestApp {
    /// Number of job rows in the database.
    pub async fn job_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs")
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap();
        n
    }

    /// Polls `GET /api/v1/jobs/{id}` until `done(job)` or `timeout`; returns the last job.
    pub async fn wait_job(
        &self,
        token: &str,
        id: &str,
        timeout: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let job = self.get(&format!("/api/v1/jobs/{id}"), token).await.json();
            if done(&job) {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job did not get there in {timeout:?}: {job:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Queues a job, waits (up to 10 min) for it to end and asserts it succeeded, with its
    /// log in the failure message; returns the finished job.
    pub async fn run_job(&self, token: &str, body: Value) -> Value {
        let res = self
            .call(Method::POST, "/api/v1/jobs", Some(token), Some(body))
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&res.bytes)
        );
        let id = res.json()["id"].as_str().unwrap().to_string();
        let job = self
            .wait_job(token, &id, std::time::Duration::from_secs(600), |j| {
                !matches!(j["state"].as_str(), Some("queued" | "running"))
            })
            .await;
        let logs = self.get(&format!("/api/v1/jobs/{id}/logs"), token).await;
        assert_eq!(
            job["state"],
            "succeeded",
            "{job:#}\n{}",
            String::from_utf8_lossy(&logs.bytes)
        );
        job
    }

    /// The model a model version belongs to.
    pub async fn model_of_version(&self, version_id: &str) -> String {
        let (model_id,): (String,) =
            sqlx::query_as("SELECT model_id FROM model_versions WHERE id = $1")
                .bind(version_id)
                .fetch_one(&self.state.db.pool)
                .await
                .unwrap();
        model_id
    }
}

/// Runs each listed scenario `async fn name(app: TestApp)` against SQLite and Postgres.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
