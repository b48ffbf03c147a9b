//! Jobs: authorisation, parameter validation, cancelling a running job (with a stand-in
//! trainer script) and reconciling jobs left running by a previous server.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use genecompass_server::AppState;
use genecompass_server::db::Role;
use serde_json::{Value, json};

use crate::common::{Backend, H5AD, TestApp};

/// Uploads the small h5ad as `tcells`; returns the name of its first text obs column.
async fn upload_tcells(app: &TestApp, token: &str) -> String {
    let res = app
        .upload(token, "tcells", None, std::fs::read(H5AD).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    res.json()["obs_columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "text")
        .expect("a text obs column")["name"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn post_job(app: &TestApp, token: &str, body: Value) -> crate::common::Res {
    app.call(Method::POST, "/api/v1/jobs", Some(token), Some(body))
        .await
}

async fn jobs_authorisation_and_validation(backend: Backend) {
    // No slot: every job stays queued, nothing is spawned.
    let Some(app) = TestApp::new(backend, |c| c.jobs.max_concurrent = 0).await else {
        return;
    };
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let ed = app.user("ed", "lab-a", Role::Editor).await.token;
    let vic = app.user("vic", "lab-a", Role::Viewer).await.token;
    let bob = app.user("bob", "lab-b", Role::Admin).await.token;
    let label = upload_tcells(&app, &ed).await;
    let ds_id = app.get("/api/v1/datasets", &ed).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let good = json!({ "kind": "finetune", "params": { "dataset": "tcells", "label_column": label, "epochs": 1 } });

    // Viewers cannot create; no token is 401.
    let res = post_job(&app, &vic, good.clone()).await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");
    let res = app
        .call(Method::POST, "/api/v1/jobs", None, Some(good.clone()))
        .await;
    assert_eq!(res.error_code(StatusCode::UNAUTHORIZED), "unauthorized");

    // Bad parameters are refused with 4xx and leave no row.
    let p = |extra: Value| {
        let mut params = json!({ "dataset": "tcells", "label_column": label });
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        json!({ "kind": "finetune", "params": params })
    };
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({ "kind": "train", "params": {} }),
            StatusCode::BAD_REQUEST,
            "invalid_kind",
        ),
        (
            json!({ "kind": "finetune", "params": [1] }),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            json!({ "kind": "finetune", "params": {} }),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            json!({ "kind": "finetune", "params": {}, "extra": 1 }),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            p(json!({ "epochs": 0 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "epochs": "ten" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "lr": -1.0 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "batch_size": 0 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "test_fraction": 0.95 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "bogus": 1 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "config": "huge" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "label_column": "no_such_column" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            p(json!({ "model_name": "../escape" })),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            p(json!({ "dataset": "nope" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            p(json!({ "base_model": "nope" })),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({ "kind": "annotate", "params": { "dataset": "tcells" } }),
            StatusCode::BAD_REQUEST,
            "invalid_params",
        ),
        (
            json!({ "kind": "annotate", "params": { "dataset": "tcells", "model": "nope" } }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let res = post_job(&app, &ed, body.clone()).await;
        assert_eq!(res.error_code(status), code, "{body}");
    }
    // Another team's dataset, even by id, does not exist for bob.
    let res = post_job(
        &app,
        &bob,
        json!({ "kind": "finetune", "params": { "dataset": ds_id } }),
    )
    .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");
    assert_eq!(app.job_count().await, 0);

    // A good request: queued, defaults filled in, names resolved.
    let res = post_job(&app, &ed, good).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let job = res.json();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["state"], "queued");
    assert_eq!(job["kind"], "finetune");
    assert_eq!(job["team"], "lab-a");
    assert_eq!(job["runner"], "local");
    assert_eq!(job["created_by"], "ed");
    assert_eq!(job["dataset_id"], ds_id.as_str());
    assert_eq!(job["params"]["dataset"], ds_id.as_str());
    assert_eq!(job["params"]["epochs"], 1);
    assert_eq!(job["params"]["batch_size"], 8);
    assert_eq!(job["params"]["model_name"], "tcells-finetune");
    assert_eq!(job["progress"], 0.0);
    assert_eq!(app.job_count().await, 1);

    // Visibility: the team sees it, the other team does not.
    for t in [&ed, &vic] {
        let list = app.get("/api/v1/jobs", t).await.json();
        assert_eq!(list.as_array().unwrap().len(), 1);
        let one = app.get(&format!("/api/v1/jobs/{id}"), t).await;
        assert_eq!(one.status, StatusCode::OK);
    }
    assert_eq!(app.get("/api/v1/jobs", &bob).await.json(), json!([]));
    for path in ["", "/logs", "/events"] {
        let res = app.get(&format!("/api/v1/jobs/{id}{path}"), &bob).await;
        assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found", "{path}");
    }
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&vic),
            None,
        )
        .await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");
    let list = app
        .get("/api/v1/jobs?state=queued&kind=finetune", &vic)
        .await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let list = app.get("/api/v1/jobs?state=done", &vic).await;
    assert_eq!(list.error_code(StatusCode::BAD_REQUEST), "invalid_query");
    let logs = app.get(&format!("/api/v1/jobs/{id}/logs"), &vic).await;
    assert_eq!(logs.status, StatusCode::OK);
    assert!(
        logs.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    // The editor cancels the queued job at once; a second cancel is a conflict.
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let job = res.json();
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["cancel_requested"], true);
    assert!(job["finished_at"].is_i64());
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(res.error_code(StatusCode::CONFLICT), "conflict");

    // The event stream of an ended job: its state, then the end of the stream.
    let res = app.get(&format!("/api/v1/jobs/{id}/events"), &vic).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers["content-type"], "text/event-stream");
    let body = String::from_utf8(res.bytes).unwrap();
    assert!(body.starts_with("event: state\ndata: {"), "{body}");
    assert!(body.contains("\"state\":\"cancelled\""), "{body}");
}

/// A stand-in trainer: records its arguments, prints a step event, logs to stderr and runs
/// until SIGTERM, on which it prints the trainer's `stopped` event and exits 0.
const FAKE_TRAINER: &str = r#"#!/bin/sh
echo "$@" > args.txt
trap 'echo "{\"event\":\"stopped\",\"step\":1}"; exit 0' TERM
echo '{"event":"step","step":1,"total_steps":4,"loss":2.5,"cells_per_s":10.0,"eta_s":30.0}'
echo 'fake trainer started' >&2
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
"#;

fn fake_trainer(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-train.sh");
    std::fs::write(&p, FAKE_TRAINER).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

async fn cancel_a_running_job(backend: Backend) {
    let scratch = tempfile::tempdir().unwrap();
    let bin = fake_trainer(scratch.path());
    let Some(app) = TestApp::new(backend, |c| {
        c.jobs.trainer_bin = Some(bin.clone());
        c.jobs.cancel_grace = Duration::from_secs(10);
        c.jobs.poll_interval = Duration::from_millis(100);
        c.jobs.gpus = vec!["3".into()];
    })
    .await
    else {
        return;
    };
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let ed = app.user("ed", "lab-a", Role::Editor).await.token;
    let label = upload_tcells(&app, &ed).await;
    let body = json!({ "kind": "finetune", "params": { "dataset": "tcells", "label_column": label, "config": "tiny" } });
    let id = post_job(&app, &ed, body).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = app
        .wait_job(&ed, &id, Duration::from_secs(60), |j| {
            j["state"] == "running" && j["progress"].as_f64() == Some(0.25)
        })
        .await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["gpu"], "3");
    assert_eq!(job["last_event"]["loss"], 2.5);
    let pid: i32 = job["external_id"].as_str().unwrap().parse().unwrap();
    assert!(pid > 0);
    let job_dir = app.dir.path().join("data").join("jobs").join(&id);
    let args = std::fs::read_to_string(job_dir.join("args.txt")).unwrap();
    for want in [
        "finetune",
        "--label-column",
        "--config tiny",
        "--backend cuda --gpu 0",
    ] {
        assert!(args.contains(want), "{want} not in {args}");
    }
    let logs = app.get(&format!("/api/v1/jobs/{id}/logs"), &ed).await;
    let text = String::from_utf8(logs.bytes).unwrap();
    assert!(text.contains("fake trainer started"), "{text}");
    assert!(text.contains("attempt 1 on local runner (GPU 3)"), "{text}");

    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.json()["cancel_requested"], true);
    let job = app
        .wait_job(&ed, &id, Duration::from_secs(30), |j| {
            j["state"] != "running"
        })
        .await;
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert!(job["error"].is_null());
    let events = app
        .get(&format!("/api/v1/jobs/{id}/logs?stream=stdout"), &ed)
        .await;
    assert!(
        String::from_utf8(events.bytes)
            .unwrap()
            .contains("\"stopped\"")
    );
}

async fn restart_reconciles_running_jobs(backend: Backend) {
    let Some(app) = TestApp::new(backend, |c| c.jobs.max_concurrent = 0).await else {
        return;
    };
    let ed = app.user("ed", "lab-a", Role::Editor).await.token;
    let label = upload_tcells(&app, &ed).await;
    let body =
        json!({ "kind": "finetune", "params": { "dataset": "tcells", "label_column": label } });
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = post_job(&app, &ed, body.clone()).await;
        ids.push(res.json()["id"].as_str().unwrap().to_string());
    }
    let jobs_dir = app.dir.path().join("data").join("jobs");
    // Job 0 has a resumable run folder, job 1 none; both trainers are gone (a pid that cannot
    // exist). Job 2's trainer is still alive (a process naming the job, as the trainer does).
    let run = jobs_dir.join(&ids[0]).join("run");
    std::fs::create_dir_all(run.join("checkpoint")).unwrap();
    std::fs::write(run.join("job.json"), "{}").unwrap();
    std::fs::write(run.join("checkpoint").join("state.json"), "{}").unwrap();
    let mut alive = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 60; exit 0", &ids[2]])
        .spawn()
        .unwrap();
    let pids = [
        "2147483646".to_string(),
        "2147483646".into(),
        alive.id().to_string(),
    ];
    for (id, pid) in ids.iter().zip(&pids) {
        sqlx::query(
            "UPDATE jobs SET state = 'running', external_id = $2, attempts = 1 WHERE id = $1",
        )
        .bind(id)
        .bind(pid)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }

    // "Restart": a new server on the same data directory and database, now with free slots.
    let scratch = tempfile::tempdir().unwrap();
    let mut config = (*app.state.config).clone();
    config.jobs.poll_interval = Duration::from_millis(100);
    config.jobs.max_concurrent = 2;
    config.jobs.trainer_bin = Some(fake_trainer(scratch.path()));
    let restarted = AppState::open(config).await.unwrap();
    genecompass_server::jobs::start(&restarted).await.unwrap();

    // Job 0 is resumed from its run folder: a second attempt with `--resume`.
    let j0 = app
        .wait_job(&ed, &ids[0], Duration::from_secs(30), |j| {
            j["state"] == "running" && j["attempts"] == 2 && j["progress"].as_f64() == Some(0.25)
        })
        .await;
    let note = j0["error"].as_str().unwrap();
    assert!(
        note.contains("server restarted") && note.contains("resuming"),
        "{note}"
    );
    let args = std::fs::read_to_string(jobs_dir.join(&ids[0]).join("args.txt")).unwrap();
    assert_eq!(args.trim(), format!("finetune --resume {}", run.display()));
    let j1 = app
        .get(&format!("/api/v1/jobs/{}", ids[1]), &ed)
        .await
        .json();
    assert_eq!(j1["state"], "failed", "{j1:#}");
    let err = j1["error"].as_str().unwrap();
    assert!(
        err.contains("server restarted") && err.contains("no checkpoint"),
        "{err}"
    );
    assert!(j1["finished_at"].is_i64());
    let j2 = app
        .get(&format!("/api/v1/jobs/{}", ids[2]), &ed)
        .await
        .json();
    assert_eq!(j2["state"], "running", "{j2:#}");

    // The live one is watched again: when it dies without a checkpoint, it fails.
    alive.kill().unwrap();
    alive.wait().unwrap();
    let j2 = app
        .wait_job(&ed, &ids[2], Duration::from_secs(30), |j| {
            j["state"] != "running"
        })
        .await;
    assert_eq!(j2["state"], "failed", "{j2:#}");
    assert!(
        j2["error"]
            .as_str()
            .unwrap()
            .contains("ended without finishing"),
        "{j2:#}"
    );
    let res = app
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{}/cancel", ids[0]),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let j0 = app
        .wait_job(&ed, &ids[0], Duration::from_secs(30), |j| {
            j["state"] != "running"
        })
        .await;
    assert_eq!(j0["state"], "cancelled", "{j0:#}");
}

crate::on_both_databases!(
    jobs_authorisation_and_validation,
    cancel_a_running_job,
    restart_reconciles_running_jobs
);
