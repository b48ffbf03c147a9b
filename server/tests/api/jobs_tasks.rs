//! Downstream-task jobs (`grn`, `fate`, `perturb`) from the API to the registered outputs,
//! with the real `genecompass-train` (see `common::trainer_bin`), the tiny official checkpoint
//! and the Wu 2020 T cells (whose genes partly match its 20-gene human dictionary); and their
//! parameter validation.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use genecompass_server::db::Role;
use serde_json::{Value, json};

use crate::common::{Backend, CHECKPOINT, Res, TF_TARGETS, TestApp, WU2020, trainer_bin};

/// A registry holding the tiny checkpoint as model `tiny` and the T cells as dataset `wu`,
/// both in team `lab-a`: returns the app, an editor's token, the dataset id and the model
/// version id. `priors`: the server has a TF → target table. `run`: jobs start (otherwise
/// every job stays queued).
async fn setup(
    backend: Backend,
    priors: bool,
    run: bool,
) -> Option<(TestApp, String, String, String)> {
    let bin = trainer_bin();
    assert!(
        std::path::Path::new(TF_TARGETS).is_file(),
        "{TF_TARGETS} is missing"
    );
    let app = TestApp::new(backend, |c| {
        c.jobs.trainer_bin = Some(bin.clone());
        c.jobs.poll_interval = Duration::from_millis(100);
        c.jobs.max_concurrent = usize::from(run);
        c.jobs.tf_targets = priors.then(|| TF_TARGETS.into());
    })
    .await?;
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let admin = app.user("ada", "lab-a", Role::Admin).await.token;
    let ed = app.user("ed", "lab-a", Role::Editor).await.token;
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(json!({ "path": CHECKPOINT, "name": "tiny" })),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let version_id = res.json()["id"].as_str().unwrap().to_string();
    let res = app
        .upload(&ed, "wu", None, std::fs::read(WU2020).unwrap())
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let ds = res.json();
    assert!(
        ds["obs_columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "source" && c["kind"] == "text"),
        "{ds:#}"
    );
    let dataset_id = ds["id"].as_str().unwrap().to_string();
    Some((app, ed, dataset_id, version_id))
}

async fn post_job(app: &TestApp, token: &str, body: Value) -> Res {
    app.call(Method::POST, "/api/v1/jobs", Some(token), Some(body))
        .await
}

/// Queues `body`, checks it was accepted for the model version and dataset, waits for the
/// end and checks it succeeded without a model version; returns the job and its trainer log.
async fn run_to_success(
    app: &TestApp,
    ed: &str,
    body: Value,
    dataset_id: &str,
    version_id: &str,
) -> (Value, String) {
    let res = post_job(app, ed, body).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let job = res.json();
    assert_eq!(job["base_version_id"], version_id);
    assert_eq!(job["dataset_id"], dataset_id);
    assert_eq!(job["params"]["dataset"], dataset_id);
    let id = job["id"].as_str().unwrap().to_string();
    let job = app
        .wait_job(ed, &id, Duration::from_secs(300), |j| {
            !matches!(j["state"].as_str(), Some("queued" | "running"))
        })
        .await;
    let logs = app.get(&format!("/api/v1/jobs/{id}/logs"), ed).await;
    let logs = String::from_utf8_lossy(&logs.bytes).into_owned();
    assert_eq!(job["state"], "succeeded", "{job:#}\n{logs}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["progress"], 1.0);
    assert!(job["error"].is_null(), "{job:#}");
    assert!(job["model_version_id"].is_null(), "{job:#}");
    // Tokenized for the model first, like an annotation.
    assert!(logs.contains(" tokenize "), "{logs}");
    assert!(logs.contains("base/token_dict.json --max-genes "), "{logs}");
    (job, logs)
}

/// The job's file at `result_path`, checked to end with `suffix` and to be a non-empty table.
fn result_table(job: &Value, suffix: &str) -> String {
    let path = job["result_path"].as_str().unwrap();
    assert!(path.ends_with(suffix), "{path}");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.lines().count() >= 2, "{path}: {text}");
    text
}

/// The results rows of `task` recorded by job `id`, checked to be linked to the version and
/// dataset: `metric -> value`.
async fn job_results(
    app: &TestApp,
    ed: &str,
    task: &str,
    id: &str,
    dataset_id: &str,
    version_id: &str,
) -> std::collections::BTreeMap<String, f64> {
    let all = app
        .get(&format!("/api/v1/results?task={task}"), ed)
        .await
        .json();
    let mut out = std::collections::BTreeMap::new();
    for r in all.as_array().unwrap().iter().filter(|r| r["job_id"] == id) {
        assert_eq!(r["model_version_id"], version_id, "{r}");
        assert_eq!(r["dataset_id"], dataset_id, "{r}");
        assert_eq!(r["model"], "tiny", "{r}");
        assert_eq!(r["dataset"], "wu", "{r}");
        let v = r["value"].as_f64().unwrap();
        assert!(v.is_finite(), "{r}");
        out.insert(r["metric"].as_str().unwrap().to_string(), v);
    }
    out
}

async fn grn_job_end_to_end(backend: Backend) {
    let Some((app, ed, dataset_id, version_id)) = setup(backend, true, true).await else {
        return;
    };
    // No TFs named: the 20 of the prior expressed in the most cells, scored against it.
    let body = json!({ "kind": "grn", "params": { "model": "tiny", "dataset": "wu" } });
    let (job, logs) = run_to_success(&app, &ed, body, &dataset_id, &version_id).await;
    assert_eq!(job["kind"], "grn");
    let p = &job["params"];
    assert_eq!(
        (
            p["top_tfs"].clone(),
            p["use_priors"].clone(),
            p["min_cells"].clone()
        ),
        (json!(20), json!(true), json!(3))
    );
    assert_eq!(
        (p["max_genes"].clone(), p["batch_size"].clone()),
        (json!(2048), json!(16))
    );
    assert_eq!(p["version"], "latest");
    assert!(logs.contains(" grn --model "), "{logs}");
    assert!(logs.contains("--top-tfs 20 --priors "), "{logs}");
    assert!(
        logs.contains("omnipath_transcriptional_tf_target.tsv.gz"),
        "{logs}"
    );

    let table = result_table(&job, "/grn.tsv");
    assert!(table.starts_with("tf\tsymbol\t"), "{table}");
    let id = job["id"].as_str().unwrap();
    let dir = std::path::Path::new(job["result_path"].as_str().unwrap())
        .parent()
        .unwrap();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grn.json")).unwrap()).unwrap();
    let metrics = job_results(&app, &ed, "grn", id, &dataset_id, &version_id).await;
    assert_eq!(
        metrics.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "mean_auroc",
            "mean_average_precision",
            "mean_random_average_precision",
            "scored_tfs"
        ],
        "{summary:#}"
    );
    let map = metrics["mean_average_precision"];
    assert!((0.0..=1.0).contains(&map), "{map}");
    assert_eq!(Some(map), summary["mean_average_precision"].as_f64());
    assert!(metrics["scored_tfs"] >= 1.0, "{metrics:?}");
    assert_eq!(Some(metrics["scored_tfs"]), summary["scored_tfs"].as_f64());
}

async fn fate_job_end_to_end(backend: Backend) {
    let Some((app, ed, dataset_id, version_id)) = setup(backend, true, true).await else {
        return;
    };
    // The version as a number; label values with the column the cells are tokenized with.
    let body = json!({ "kind": "fate", "params": {
        "model": "tiny", "version": 1, "dataset": "wu", "label_column": "source",
        "source": ["Tumor"], "target": ["NAT", "Blood"], "max_genes": 64 } });
    let (job, logs) = run_to_success(&app, &ed, body, &dataset_id, &version_id).await;
    let p = &job["params"];
    assert_eq!(p["version"], "1");
    assert_eq!(p["mode"], "overexpress");
    assert_eq!(p["candidates"], 50);
    assert!(
        logs.contains("--max-genes 64 --label-column=source"),
        "{logs}"
    );
    assert!(logs.contains(" fate --model "), "{logs}");
    assert!(logs.contains("--source=Tumor --target=NAT,Blood"), "{logs}");
    assert!(logs.contains("--mode overexpress --priors "), "{logs}");

    let table = result_table(&job, "/fate.tsv");
    assert!(table.starts_with("rank\tgene\t"), "{table}");
    let id = job["id"].as_str().unwrap();
    let metrics = job_results(&app, &ed, "fate_factors", id, &dataset_id, &version_id).await;
    assert_eq!(
        metrics.keys().map(String::as_str).collect::<Vec<_>>(),
        ["source_cos", "top_mean_gain"]
    );
    assert!(metrics["source_cos"].abs() <= 1.0 + 1e-9, "{metrics:?}");
    assert!(metrics["top_mean_gain"].abs() <= 2.0, "{metrics:?}");
}

async fn perturb_job_end_to_end(backend: Backend) {
    // Perturbation needs no prior: the server has none here.
    let Some((app, ed, dataset_id, version_id)) = setup(backend, false, true).await else {
        return;
    };
    let body = json!({ "kind": "perturb", "params": {
        "model": "tiny", "dataset": "wu", "genes": ["MYC", " ENSG00000141510 "],
        "mode": "overexpress", "factor": 100, "max_genes": 64 } });
    let (job, logs) = run_to_success(&app, &ed, body, &dataset_id, &version_id).await;
    let p = &job["params"];
    assert_eq!(p["genes"], json!(["MYC", "ENSG00000141510"]));
    assert_eq!(p["joint"], false);
    assert!(logs.contains(" perturb --model "), "{logs}");
    assert!(
        logs.contains(
            "--genes=MYC,ENSG00000141510 --mode overexpress --factor 100 --batch-size 16"
        ),
        "{logs}"
    );
    let table = result_table(&job, "/perturb.tsv");
    assert!(table.starts_with("gene\tsymbol\t"), "{table}");
    assert_eq!(table.lines().count(), 3, "one row per gene: {table}");
    let all = app.get("/api/v1/results", &ed).await.json();
    assert_eq!(all, json!([]), "perturb records no results");
}

async fn task_jobs_validation(backend: Backend) {
    // No TF → target table, nothing runs.
    let Some((app, ed, dataset_id, version_id)) = setup(backend, false, false).await else {
        return;
    };
    let with = |kind: &str, base: Value, extra: Value| {
        let mut params = base;
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        json!({ "kind": kind, "params": params })
    };
    let grn = |extra: Value| {
        with(
            "grn",
            json!({ "model": "tiny", "dataset": "wu", "tfs": ["MYC"] }),
            extra,
        )
    };
    let fate = |extra: Value| {
        with(
            "fate",
            json!({ "model": "tiny", "dataset": "wu", "label_column": "source",
                    "source": ["Tumor"], "target": ["Blood"] }),
            extra,
        )
    };
    let perturb = |extra: Value| {
        with(
            "perturb",
            json!({ "model": "tiny", "dataset": "wu", "genes": ["MYC"] }),
            extra,
        )
    };
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({ "kind": "grm", "params": {} }),
            StatusCode::BAD_REQUEST,
            "invalid_kind",
            "use finetune, pretrain, annotate, grn, fate or perturb",
        ),
        (
            grn(json!({ "model": "" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`model` is required",
        ),
        (
            grn(json!({ "tfs": [] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "GENECOMPASS_TF_TARGETS",
        ),
        (
            grn(json!({ "tfs": [], "use_priors": false })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "name the TFs in `tfs`",
        ),
        (
            grn(json!({ "top_tfs": 5 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "either `tfs` or `top_tfs`",
        ),
        (
            grn(json!({ "tfs": ["MYC", " "] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`tfs` has an empty entry",
        ),
        (
            grn(json!({ "min_cells": 0 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`min_cells` = 0 is out of range",
        ),
        (
            grn(json!({ "max_genes": 4 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`max_genes` = 4",
        ),
        (
            grn(json!({ "tfs": "MYC" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "grn params: invalid type",
        ),
        (
            grn(json!({ "model": "nope" })),
            StatusCode::NOT_FOUND,
            "not_found",
            "no version `latest` of model `nope`",
        ),
        (
            grn(json!({ "version": 7 })),
            StatusCode::NOT_FOUND,
            "not_found",
            "no version `7` of model `tiny`",
        ),
        (
            grn(json!({ "dataset": "nope" })),
            StatusCode::NOT_FOUND,
            "not_found",
            "no dataset `nope`",
        ),
        (
            fate(json!({ "label_column": "" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`label_column` is required",
        ),
        (
            fate(json!({ "label_column": "cell_type" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`label_column` `cell_type` is not a text column of dataset `wu`",
        ),
        (
            fate(json!({ "source": [] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`source` is required",
        ),
        (
            fate(json!({ "target": ["Blood", "Tumor"] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`Tumor` is in both `source` and `target`",
        ),
        (
            fate(json!({ "target": ["Blood,NAT"] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "contains a comma",
        ),
        (
            fate(json!({ "mode": "sideways" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`mode` `sideways`: use overexpress or delete",
        ),
        (
            fate(json!({ "candidates": 0 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`candidates` = 0",
        ),
        (
            perturb(json!({ "genes": [] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`genes` is required",
        ),
        (
            perturb(json!({ "factor": -1 })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "`factor` = -1",
        ),
        (
            perturb(json!({ "joint": "yes" })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "perturb params: invalid type",
        ),
        (
            perturb(json!({ "tfs": ["MYC"] })),
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "unknown field `tfs`",
        ),
    ];
    for (body, status, code, message) in cases {
        let res = post_job(&app, &ed, body.clone()).await;
        assert_eq!(res.error_code(status), code, "{body}");
        let text = res.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(text.contains(message), "{body}: {text}");
    }
    // The model must be the caller's team's: another team's editor, with a dataset of its own,
    // does not see `tiny`, not even by version id.
    let bob = app.user("bob", "lab-b", Role::Editor).await.token;
    let res = app
        .upload(&bob, "wu", None, std::fs::read(WU2020).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let model_id = app.get("/api/v1/models", &ed).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for model in ["tiny", model_id.as_str()] {
        let res = post_job(&app, &bob, perturb(json!({ "model": model }))).await;
        assert_eq!(
            res.error_code(StatusCode::NOT_FOUND),
            "not_found",
            "{model}"
        );
    }
    assert_eq!(app.job_count().await, 0, "refused requests leave no job");

    // Good requests: queued with every default filled in (no prior needed when TFs are named).
    let res = post_job(&app, &ed, grn(json!({}))).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let job = res.json();
    assert_eq!(job["state"], "queued");
    assert_eq!(job["base_version_id"], version_id.as_str());
    assert_eq!(
        job["params"],
        json!({ "model": "tiny", "version": "latest", "dataset": dataset_id, "tfs": ["MYC"],
                "top_tfs": null, "use_priors": true, "min_cells": 3, "max_genes": 2048,
                "batch_size": 16 })
    );
    let job = post_job(&app, &ed, fate(json!({ "version": "latest" })))
        .await
        .json();
    assert_eq!(
        job["params"],
        json!({ "model": "tiny", "version": "latest", "dataset": dataset_id,
                "label_column": "source", "source": ["Tumor"], "target": ["Blood"], "genes": [],
                "candidates": 50, "mode": "overexpress", "max_genes": 2048, "batch_size": 16 })
    );
    let job = post_job(&app, &ed, perturb(json!({ "model": model_id })))
        .await
        .json();
    assert_eq!(
        job["params"],
        json!({ "model": model_id, "version": "latest", "dataset": dataset_id,
                "genes": ["MYC"], "mode": "delete", "factor": 10000.0, "joint": false,
                "max_genes": 2048, "batch_size": 16 })
    );
    assert_eq!(app.job_count().await, 3);
    let list = app.get("/api/v1/jobs?kind=perturb", &ed).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

crate::on_both_databases!(
    grn_job_end_to_end,
    fate_job_end_to_end,
    perturb_job_end_to_end,
    task_jobs_validation
);
