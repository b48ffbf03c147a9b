//! Blobs in an S3-compatible bucket: a real S3 server (moto's standalone server, `pip install
//! 'moto[server]'`) started on loopback for each test, with the registry pointed at it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use genecompass_server::blobs::RemoteConfig;
use genecompass_server::db::Role;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::{Backend, CHECKPOINT, H5AD, TestApp};

/// A moto S3 server on a free loopback port, killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let python = std::env::var("GENECOMPASS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        loop {
            if ureq::get(&server.endpoint).call().is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the S3 test server exited ({status}): install it with \
                     `pip install 'moto[server]'` (or set GENECOMPASS_TEST_PYTHON)"
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the S3 test server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates a bucket (moto accepts unsigned requests).
    fn bucket(&self, name: &str) {
        ureq::put(&format!("{}/{name}", self.endpoint))
            .send_empty()
            .expect("create bucket");
    }

    /// An object's bytes, `None` when absent.
    fn object(&self, key: &str) -> Option<Vec<u8>> {
        let mut res = ureq::get(&format!("{}/{key}", self.endpoint)).call().ok()?;
        Some(
            res.body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
                .expect("object body"),
        )
    }

    fn config(&self, url: &str) -> RemoteConfig {
        let o = |k: &str, v: &str| (k.to_string(), v.to_string());
        RemoteConfig {
            url: url.into(),
            options: vec![
                o("aws_endpoint", &self.endpoint),
                o("aws_access_key_id", "test"),
                o("aws_secret_access_key", "test"),
                o("aws_region", "us-east-1"),
                o("aws_allow_http", "true"),
            ],
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex_sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Files under the data directory's local blob folder (must stay empty with a bucket).
fn local_blobs(app: &TestApp) -> usize {
    walk(&app.dir.path().join("data/blobs"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_and_checkpoints_live_in_the_bucket() {
    let s3 = S3Server::start();
    s3.bucket("gc-test");
    let config = s3.config("s3://gc-test/registry");
    let app = TestApp::new(Backend::Sqlite, |c| c.blob_store = Some(config))
        .await
        .expect("sqlite app");
    let t = app.user("alice", "lab-a", Role::Admin).await.token;
    let health = app
        .call(Method::GET, "/api/v1/health", None, None)
        .await
        .json();
    assert_eq!(health["blob_store"], "s3");

    // Upload: the object appears at its content address in the bucket, nothing local remains.
    let bytes = std::fs::read(H5AD).unwrap();
    let sha = hex_sha(&bytes);
    let res = app.upload(&t, "wu", None, bytes.clone()).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let d = res.json();
    assert_eq!(d["sha256"], sha.as_str());
    let key = format!("gc-test/registry/sha256/{}/{}", &sha[..2], &sha[2..]);
    assert_eq!(s3.object(&key).as_deref(), Some(&bytes[..]));
    assert_eq!(local_blobs(&app), 0);
    assert_eq!(app.state.blobs.temp_files(), 0);

    // Downloads stream from the bucket: whole, one range, a suffix, past the end, conditional.
    let url = format!("/api/v1/datasets/{}/download", d["id"].as_str().unwrap());
    let res = app.get(&url, &t).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.bytes, bytes);
    assert_eq!(res.headers["etag"], format!("\"{sha}\"").as_str());
    let ranged = |range: &str| {
        Request::get(&url)
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header(header::RANGE, range)
            .body(Body::empty())
            .unwrap()
    };
    let res = app.send(ranged("bytes=100-1123")).await;
    assert_eq!(res.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes, bytes[100..1124]);
    let total = bytes.len();
    assert_eq!(
        res.headers["content-range"],
        format!("bytes 100-1123/{total}").as_str()
    );
    let res = app.send(ranged("bytes=-10")).await;
    assert_eq!(res.bytes, bytes[total - 10..]);
    let res = app.send(ranged(&format!("bytes={total}-"))).await;
    assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let res = app
        .send(
            Request::get(&url)
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .header(header::IF_NONE_MATCH, format!("\"{sha}\""))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);

    // The same content under a second name is stored once.
    let res = app.upload(&t, "wu-again", None, bytes.clone()).await;
    assert_eq!(res.status, StatusCode::CREATED);

    // Jobs read a verified local copy, fetched once into the cache.
    let cached = app.state.blobs.local_path(&sha).await.unwrap();
    assert!(cached.starts_with(app.dir.path().join("data/blob-cache")));
    assert_eq!(std::fs::read(&cached).unwrap(), bytes);

    // Checkpoint import puts every file in the bucket; files download by alias.
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&t),
            Some(json!({ "path": CHECKPOINT, "name": "tiny" })),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let v = res.json();
    for f in v["files"].as_array().unwrap() {
        let sha = f["sha256"].as_str().unwrap();
        let key = format!("gc-test/registry/sha256/{}/{}", &sha[..2], &sha[2..]);
        let obj = s3.object(&key).expect("checkpoint file in the bucket");
        assert_eq!(obj.len() as i64, f["size_bytes"].as_i64().unwrap());
    }
    let cfg = app
        .get(
            &format!(
                "/api/v1/models/{}/versions/latest/files/config.json",
                v["model_id"].as_str().unwrap()
            ),
            &t,
        )
        .await;
    assert_eq!(cfg.status, StatusCode::OK);
    assert_eq!(
        cfg.bytes,
        std::fs::read(format!("{CHECKPOINT}/config.json")).unwrap()
    );
    assert_eq!(local_blobs(&app), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_go_up_in_parts_and_corrupt_objects_are_refused() {
    let s3 = S3Server::start();
    s3.bucket("gc-parts");
    let app = TestApp::new(Backend::Sqlite, |c| {
        c.blob_store = Some(s3.config("s3://gc-parts"))
    })
    .await
    .expect("sqlite app");

    // 20 MiB + 7 bytes: three parts of the multipart upload, the last one short.
    let big: Vec<u8> = (0..(20usize << 20) + 7)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = app.dir.path().join("big.bin");
    std::fs::write(&src, &big).unwrap();
    let (sha, size) = app.state.blobs.put_file(&src).await.unwrap();
    assert_eq!(
        (sha.as_str(), size),
        (hex_sha(&big).as_str(), big.len() as u64)
    );
    let key = format!("gc-parts/sha256/{}/{}", &sha[..2], &sha[2..]);
    assert_eq!(s3.object(&key).map(|o| o.len()), Some(big.len()));
    let local = app.state.blobs.local_path(&sha).await.unwrap();
    assert!(std::fs::read(&local).unwrap() == big);

    // An object whose bytes do not hash to its address is never handed to a job.
    let fake = hex_sha(b"what the registry expects");
    ureq::put(&format!(
        "{}/gc-parts/sha256/{}/{}",
        s3.endpoint,
        &fake[..2],
        &fake[2..]
    ))
    .send(&b"something else"[..])
    .unwrap();
    let err = app.state.blobs.local_path(&fake).await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(
        !app.dir
            .path()
            .join(format!(
                "data/blob-cache/sha256/{}/{}",
                &fake[..2],
                &fake[2..]
            ))
            .exists()
    );
    assert_eq!(app.state.blobs.temp_files(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_fails_the_upload_and_registers_nothing() {
    let s3 = S3Server::start();
    s3.bucket("gc-down");
    let app = TestApp::new(Backend::Sqlite, |c| {
        c.blob_store = Some(s3.config("s3://gc-down"))
    })
    .await
    .expect("sqlite app");
    let t = app.user("alice", "lab-a", Role::Editor).await.token;
    drop(s3); // the storage goes away

    let res = app
        .upload(&t, "wu", None, std::fs::read(H5AD).unwrap())
        .await;
    assert_eq!(
        res.error_code(StatusCode::SERVICE_UNAVAILABLE),
        "unavailable"
    );
    let message = res.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("s3://gc-down"), "{message}");
    assert_eq!(app.get("/api/v1/datasets", &t).await.json(), json!([]));
    assert_eq!(app.state.blobs.temp_files(), 0);
}

#[tokio::test]
async fn a_bad_bucket_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = genecompass_server::ServerConfig::new(dir.path());
    config.blob_store = Some(RemoteConfig {
        url: "gs://somewhere".into(),
        options: vec![],
    });
    let err = genecompass_server::AppState::open(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only s3:// URLs"), "{err}");
}
