//! `genecompass upload` against a real `genecompass serve` process: chunked upload, the server
//! killed (SIGKILL) mid-upload and restarted, the client resuming from the byte the server
//! holds, and no dataset registered until the last byte is in.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const SPECTRA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/spectra_immune_1000.h5ad"
);
const BIN: &str = env!("CARGO_BIN_EXE_genecompass");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &Path, port: u16) -> Child {
    let child = Command::new(BIN)
        .args(["--data-dir", data.to_str().unwrap(), "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn upload(port: u16, token: &str, state: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["upload", SPECTRA, "--server"])
        .arg(format!("http://127.0.0.1:{port}"))
        .args([
            "--token",
            token,
            "--name",
            "spectra",
            "--chunk-mib",
            "1",
            "--retries",
            "1",
        ])
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .output()
        .expect("client runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn part_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("uploads"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "part"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn upload_survives_a_killed_server_and_resumes() {
    assert!(
        Path::new(SPECTRA).exists(),
        "{SPECTRA} missing: tests need ../shared"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("state");
    let add = Command::new(BIN)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "user",
            "add",
            "ana",
            "--team",
            "lab",
        ])
        .args(["--role", "editor"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    let out = String::from_utf8_lossy(&add.stdout).into_owned();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("API token for `ana` (shown once): "))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .trim()
        .to_string();
    let port = free_port();
    let size = std::fs::metadata(SPECTRA).unwrap().len();
    assert!(size > 3 << 20, "the file spans several 1 MiB chunks");

    // Two chunks, then the server dies without warning.
    let mut server = serve(&data, port);
    let first = upload(port, &token, &state, &["--max-chunks", "2"]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("stopped after 2 chunk(s) at byte 2097152"),
        "{}",
        text(&first)
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let parts = part_files(&data);
    assert_eq!(parts.len(), 1);
    assert_eq!(std::fs::metadata(&parts[0]).unwrap().len(), 2 << 20);

    // With the server down the client fails clearly and keeps its place.
    let down = upload(port, &token, &state, &[]);
    assert!(!down.status.success());
    assert!(text(&down).contains("127.0.0.1"), "{}", text(&down));

    // Restarted, nothing registered yet; the client resumes at byte 2 MiB and completes.
    let mut server = serve(&data, port);
    let datasets = || -> serde_json::Value {
        let mut res = ureq::get(format!("http://127.0.0.1:{port}/api/v1/datasets"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap()
    };
    assert_eq!(
        datasets(),
        serde_json::json!([]),
        "a partial upload registers nothing"
    );
    let done = upload(port, &token, &state, &[]);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("resuming upload up_"),
        "{}",
        text(&done)
    );
    assert!(text(&done).contains("at byte 2097152"), "{}", text(&done));
    let d: serde_json::Value =
        serde_json::from_slice(&done.stdout).unwrap_or_else(|_| panic!("{}", text(&done)));
    let want = hex::encode(Sha256::digest(std::fs::read(SPECTRA).unwrap()));
    assert_eq!(
        d["sha256"],
        want.as_str(),
        "the registered bytes are the file's"
    );
    assert_eq!(d["n_cells"], 1000);
    assert_eq!(d["size_bytes"], size);
    assert!(
        part_files(&data).is_empty(),
        "the partial upload is cleaned up"
    );
    assert_eq!(datasets().as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "client state removed"
    );

    // The same name again is refused before any byte is sent.
    let again = upload(port, &token, &state, &[]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already has a dataset `spectra`"),
        "{}",
        text(&again)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
