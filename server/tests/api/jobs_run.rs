//! A real fine-tuning job from the API to the results table: the registry's copy of the Baron
//! mouse pancreas file, 200 of its cells, a tiny model, one epoch, with the real
//! `genecompass-train` (see `common::trainer_bin`). And the same through Slurm when installed.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use genecompass_server::db::Role;
use genecompass_server::jobs::RunnerKind;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{BARON, Backend, TestApp, trainer_bin};

fn tiny_finetune() -> Value {
    json!({ "kind": "finetune", "params": {
        "dataset": "baron", "label_column": "cell_type", "config": "tiny", "epochs": 1,
        "max_cells": 200, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "max_genes": 128,
        "seed": 7, "model_name": "baron-annotator"
    } })
}

/// Runs the tiny fine-tune on `runner`; checks the job, the SSE stream, the new model version
/// and the results.
async fn run_finetune_job(backend: Backend, runner: RunnerKind) {
    let bin = trainer_bin();
    let Some(app) = TestApp::new(backend, |c| {
        c.jobs.runner = runner;
        c.jobs.trainer_bin = Some(bin.clone());
        c.jobs.poll_interval = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let ed = app.user("ed", "lab-a", Role::Editor).await.token;
    let res = app
        .upload(&ed, "baron", None, std::fs::read(BARON).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let dataset_id = res.json()["id"].as_str().unwrap().to_string();

    let res = app
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&ed),
            Some(tiny_finetune()),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let id = res.json()["id"].as_str().unwrap().to_string();

    // Follow the job's event stream while it runs (it ends with the final state).
    let req = Request::get(format!("/api/v1/jobs/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {ed}"))
        .body(Body::empty())
        .unwrap();
    let router = app.router.clone();
    let sse = tokio::spawn(async move {
        let res = router.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    });

    let job = app
        .wait_job(&ed, &id, Duration::from_secs(900), |j| {
            !matches!(j["state"].as_str(), Some("queued" | "running"))
        })
        .await;
    let logs = app.get(&format!("/api/v1/jobs/{id}/logs"), &ed).await;
    assert_eq!(
        job["state"],
        "succeeded",
        "{job:#}\n{}",
        String::from_utf8_lossy(&logs.bytes)
    );
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].is_null());
    assert!(job["finished_at"].as_i64().unwrap() >= job["started_at"].as_i64().unwrap());
    assert!(
        job["last_event"]["total_steps"].as_u64().unwrap() > 0,
        "{job:#}"
    );
    let version_id = job["model_version_id"].as_str().unwrap().to_string();

    let stream = tokio::time::timeout(Duration::from_secs(30), sse)
        .await
        .expect("the event stream ends with the job")
        .unwrap();
    assert!(stream.starts_with("event: state\n"), "{stream}");
    assert!(stream.contains("event: progress\n"), "{stream}");
    assert!(stream.contains("\"total_steps\""), "{stream}");
    let last = stream
        .split("\n\n")
        .filter(|e| e.starts_with("event: state"))
        .last()
        .unwrap();
    assert!(last.contains("\"state\":\"succeeded\""), "{last}");

    // The output is a new classifier version of `baron-annotator`.
    let models = app.get("/api/v1/models", &ed).await.json();
    let model = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "baron-annotator")
        .unwrap_or_else(|| panic!("model not registered: {models:#}"));
    assert_eq!(model["versions"], json!([1]));
    let v = app
        .get(
            &format!(
                "/api/v1/models/{}/versions/1",
                model["id"].as_str().unwrap()
            ),
            &ed,
        )
        .await
        .json();
    assert_eq!(v["id"], version_id.as_str());
    // Lineage: the job and the dataset it trained on (a fresh model: no parent); the card.
    assert_eq!(v["lineage"]["job_id"], id.as_str());
    assert_eq!(v["lineage"]["dataset"]["id"], dataset_id.as_str());
    assert_eq!(v["lineage"]["dataset"]["name"], "baron");
    assert!(v["lineage"]["parent"].is_null());
    let card = v["model_card"].as_str().expect("model card");
    assert!(card.contains("baseline"), "{card}");
    assert_eq!(v["kind"], "classifier");

    // Its test metrics and the baseline's are results linked to the job.
    let results = app
        .get("/api/v1/results?task=cell_type_annotation", &ed)
        .await
        .json();
    let rows: Vec<&Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["job_id"] == id.as_str())
        .collect();
    let mut metrics: Vec<&str> = rows.iter().map(|r| r["metric"].as_str().unwrap()).collect();
    metrics.sort();
    assert_eq!(
        metrics,
        [
            "accuracy",
            "baseline_accuracy",
            "baseline_macro_f1",
            "macro_f1"
        ],
        "{results:#}"
    );
    for r in &rows {
        assert_eq!(r["model_version_id"], version_id.as_str());
        assert_eq!(r["dataset_id"], dataset_id.as_str());
        assert_eq!(r["model"], "baron-annotator");
        assert_eq!(r["dataset"], "baron");
        let x = r["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{r}");
    }
    let baseline = rows
        .iter()
        .find(|r| r["metric"] == "baseline_accuracy")
        .unwrap();
    assert!(baseline["value"].as_f64().unwrap() > 0.6, "{baseline}");

    // The new classifier annotates the dataset (tokenize + classify in one job).
    let body = json!({ "kind": "annotate", "params": {
        "dataset": "baron", "model": "baron-annotator", "max_genes": 128 } });
    let res = app
        .call(Method::POST, "/api/v1/jobs", Some(&ed), Some(body))
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let job = res.json();
    assert_eq!(job["base_version_id"], version_id.as_str());
    let id = job["id"].as_str().unwrap().to_string();
    let job = app
        .wait_job(&ed, &id, Duration::from_secs(300), |j| {
            !matches!(j["state"].as_str(), Some("queued" | "running"))
        })
        .await;
    let logs = app.get(&format!("/api/v1/jobs/{id}/logs"), &ed).await;
    assert_eq!(
        job["state"],
        "succeeded",
        "{job:#}\n{}",
        String::from_utf8_lossy(&logs.bytes)
    );
    let out = job["result_path"].as_str().unwrap();
    assert!(out.ends_with("predictions.safetensors"), "{out}");
    assert!(std::fs::metadata(out).unwrap().len() > 0);
}

async fn finetune_job_end_to_end(backend: Backend) {
    run_finetune_job(backend, RunnerKind::Local).await;
}

async fn finetune_job_through_slurm(backend: Backend) {
    if !genecompass_server::jobs::slurm::available() {
        // CI starts a real single-node Slurm (.ci/slurm.sh): there, a missing one is a failure.
        assert!(
            std::env::var_os("GENECOMPASS_REQUIRE_SLURM").is_none(),
            "GENECOMPASS_REQUIRE_SLURM is set but sbatch is not on PATH: run `bash .ci/slurm.sh`"
        );
        eprintln!("skipping the Slurm job test: sbatch is not on PATH (Slurm is not installed)");
        return;
    }
    run_finetune_job(backend, RunnerKind::Slurm).await;
}

crate::on_both_databases!(finetune_job_end_to_end, finetune_job_through_slurm);
