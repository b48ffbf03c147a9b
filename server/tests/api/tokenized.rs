//! Tokenized datasets in the registry: `genecompass-train tokenize --label-column` output
//! uploads as a dataset (cells, padded length, species, label column), a fine-tune job trains on
//! it from a base model, an annotate job classifies it without a tokenize step, and a
//! safetensors file that is not cells is refused.

use std::process::Command;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use genecompass_server::db::Role;
use serde_json::json;

use crate::common::{BARON, Backend, CHECKPOINT, TestApp, trainer_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenized_cells_register_train_and_annotate() {
    let bin = trainer_bin();
    let app = TestApp::new(Backend::Sqlite, |c| {
        c.jobs.trainer_bin = Some(bin.clone());
        c.jobs.poll_interval = Duration::from_millis(100);
    })
    .await
    .unwrap();
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let ada = app.user("ada", "lab-a", Role::Admin).await.token;

    // Baron tokenized with the tiny model's dictionary, cell types as labels.
    let cells = app.dir.path().join("baron.safetensors");
    let out = Command::new(&bin)
        .args([
            "tokenize",
            BARON,
            "--label-column",
            "cell_type",
            "--token-dict",
        ])
        .arg(format!("{CHECKPOINT}/token_dict.json"))
        .arg("--output")
        .arg(&cells)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = app
        .upload(&ada, "baron-cells", None, std::fs::read(&cells).unwrap())
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let d = res.json();
    assert_eq!(d["value_kind"], "tokenized");
    assert_eq!(d["n_cells"], 809);
    assert_eq!(d["obs_columns"][0]["name"], "cell_type");
    assert!(d["obs_columns"][0]["distinct"].as_u64().unwrap() > 5, "{d}");
    let format = d["format"].as_str().unwrap();
    assert!(format.contains("species mouse 809"), "{format}");
    assert!(d["genes"].is_null());

    // A safetensors file of something else is refused, naming what to upload.
    let weights = std::fs::read(format!("{CHECKPOINT}/model.safetensors")).unwrap();
    let res = app.upload(&ada, "weights", None, weights).await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "unreadable_dataset"
    );
    let msg = res.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("not tokenized cells"), "{msg}");

    // Fine-tune the tiny MLM on the tokenized cells; the result names the dataset.
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&ada),
            Some(json!({ "path": CHECKPOINT, "name": "tiny" })),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let job = app
        .run_job(
            &ada,
            json!({ "kind": "finetune", "params": {
            "dataset": "baron-cells", "label_column": "cell_type", "base_model": "tiny",
            "epochs": 1, "max_cells": 120, "batch_size": 16, "max_genes": 64, "seed": 5,
            "model_name": "tiny-baron"
        } }),
        )
        .await;
    let version_id = job["model_version_id"].as_str().unwrap().to_string();
    let model_id = app.model_of_version(&version_id).await;
    let v = app
        .get(&format!("/api/v1/models/{model_id}/versions/1"), &ada)
        .await
        .json();
    assert_eq!(v["lineage"]["dataset"]["name"], "baron-cells");
    assert_eq!(v["lineage"]["parent"]["model"], "tiny");
    // Importing a run's model folder by hand picks up the run's card beside it.
    let run_model = app.dir.path().join(format!(
        "data/jobs/{}/run/model",
        job["id"].as_str().unwrap()
    ));
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&ada),
            Some(json!({ "path": run_model, "name": "by-hand" })),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let card = res.json()["model_card"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(card.contains("baseline"), "{card}");

    // Annotate the same cells with it: no tokenize step, one prediction per cell.
    let job = app
        .run_job(
            &ada,
            json!({ "kind": "annotate", "params": {
            "dataset": "baron-cells", "model": "tiny-baron"
        } }),
        )
        .await;
    let logs = app
        .get(
            &format!("/api/v1/jobs/{}/logs", job["id"].as_str().unwrap()),
            &ada,
        )
        .await;
    let log = String::from_utf8_lossy(&logs.bytes);
    assert!(
        !log.contains("genecompass-train tokenize") && !log.contains(" tokenize "),
        "{log}"
    );
    let result = job["result_path"].as_str().expect("predictions file");
    let m = genecompass_core::checkpoint::TensorMap::read_safetensors(std::path::Path::new(result))
        .unwrap();
    assert_eq!(m.tensors["probabilities"].shape[0], 809);
}
