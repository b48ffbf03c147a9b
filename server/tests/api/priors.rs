//! Prior-knowledge stores as registry artifacts: import (from the official fixture pickles via
//! `genecompass-train priors load-official`, and from `priors build-grn`), immutable versions,
//! downloads, errors that leave nothing behind, the link to the checkpoints built from a store,
//! and a real pretraining job that takes a registered store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use genecompass_server::db::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{BARON, Backend, CHECKPOINT, TF_TARGETS, TestApp, trainer_bin};

/// Runs `genecompass-train` with `args`, panicking with its stderr on failure.
fn train(args: &[&str]) {
    let out = Command::new(trainer_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "genecompass-train {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture's official pickles as a compact store under `dir`.
fn official_store(dir: &Path) -> PathBuf {
    let store = dir.join("official-store");
    let pk = format!("{CHECKPOINT}/prior_knowledge");
    train(&[
        "priors",
        "load-official",
        "--prior-dir",
        &pk,
        "--vocab",
        &format!("{CHECKPOINT}/token_dict.json"),
        "--output",
        store.to_str().unwrap(),
    ]);
    store
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

async fn prior_versions(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM prior_versions")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    n
}

async fn import(app: &TestApp, token: &str, path: &Path, name: &str) -> crate::common::Res {
    app.call(
        Method::POST,
        "/api/v1/priors/import",
        Some(token),
        Some(json!({ "path": path, "name": name })),
    )
    .await
}

async fn priors_import_versions_downloads_and_links(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let admin = app.user("ada", "lab-a", Role::Admin).await.token;
    let editor = app.user("ed", "lab-a", Role::Editor).await.token;
    let outsider = app.user("bob", "lab-b", Role::Admin).await.token;
    let store = official_store(app.dir.path());

    let res = import(&app, &editor, &store, "official").await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");
    let res = import(&app, &admin, &store, "official").await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let v = res.json();
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["kinds"],
        json!(["promoter", "co_exp", "gene_family", "peca_grn"])
    );
    let dict: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CHECKPOINT}/token_dict.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["genes"], dict.as_object().unwrap().len());
    let manifest = std::fs::read(store.join("priors.json")).unwrap();
    let manifest_sha = hex::encode(Sha256::digest(&manifest));
    assert_eq!(v["manifest_sha256"], manifest_sha.as_str());
    assert_eq!(v["manifest"]["format"], "genecompass-priors/1");
    let set_id = v["prior_set_id"].as_str().unwrap().to_string();

    // The same store again is the same version (200), not a copy.
    let res = import(&app, &admin, &store, "official").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["id"], v["id"]);
    assert_eq!(prior_versions(&app).await, 1);

    // Files download with their hash as ETag; `latest` names the newest version.
    let url = format!("/api/v1/priors/{set_id}/versions/latest/files/gene_family.safetensors");
    let res = app.get(&url, &editor).await;
    assert_eq!(res.status, StatusCode::OK);
    let table = std::fs::read(store.join("gene_family.safetensors")).unwrap();
    assert_eq!(res.bytes, table);
    let sha = hex::encode(Sha256::digest(&table));
    assert_eq!(res.headers["etag"], format!("\"{sha}\"").as_str());

    // Other teams see nothing.
    assert_eq!(app.get("/api/v1/priors", &outsider).await.json(), json!([]));
    let res = app
        .get(&format!("/api/v1/priors/{set_id}/versions/1"), &outsider)
        .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");

    // A changed table, a folder that is no store: refused, nothing registered.
    let bad = app.dir.path().join("bad-store");
    copy_dir(&store, &bad);
    let mut t = table.clone();
    let n = t.len();
    t[n - 1] ^= 0x55;
    std::fs::write(bad.join("gene_family.safetensors"), t).unwrap();
    let res = import(&app, &admin, &bad, "official").await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_priors"
    );
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rebuild the store")
    );
    let res = import(&app, &admin, Path::new(CHECKPOINT), "official").await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_priors"
    );
    assert_eq!(prior_versions(&app).await, 1);

    // A checkpoint that records this store's manifest is linked to the version, both ways.
    let ck = app.dir.path().join("ck");
    copy_dir(Path::new(CHECKPOINT), &ck);
    std::fs::write(
        ck.join("priors_source.json"),
        json!({ "manifest_sha256": manifest_sha }).to_string(),
    )
    .unwrap();
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(json!({ "path": ck, "name": "tiny-with-priors" })),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let mv = res.json();
    assert_eq!(mv["priors"]["prior_set_id"], set_id.as_str());
    assert_eq!(mv["priors"]["name"], "official");
    assert_eq!(mv["priors"]["version"], 1);
    let pv = app
        .get(&format!("/api/v1/priors/{set_id}/versions/1"), &editor)
        .await
        .json();
    assert_eq!(pv["used_by"][0]["version_id"], mv["id"]);
    assert_eq!(pv["used_by"][0]["model"], "tiny-with-priors");
    // A checkpoint without the record has no link.
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(json!({ "path": CHECKPOINT, "name": "tiny" })),
        )
        .await;
    assert!(res.json()["priors"].is_null());

    // Pretrain jobs name prior sets that exist, for fresh models only.
    let job = |params: Value| json!({ "kind": "pretrain", "params": params });
    let res = app
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&editor),
            Some(job(
                json!({ "dataset": "none", "config": "tiny", "priors": "official" }),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "dataset checked");
    let up = app
        .upload(&editor, "baron", None, std::fs::read(BARON).unwrap())
        .await;
    assert_eq!(up.status, StatusCode::CREATED);
    let res = app
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&editor),
            Some(job(
                json!({ "dataset": "baron", "config": "tiny", "priors": "nope" }),
            )),
        )
        .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");
    let res = app
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&editor),
            Some(job(
                json!({ "dataset": "baron", "base_model": "tiny", "priors": "official" }),
            )),
        )
        .await;
    assert_eq!(res.status.as_u16() / 100, 4);
    assert_eq!(app.job_count().await, 0);
}

crate::on_both_databases!(priors_import_versions_downloads_and_links);

/// Pretrains once without priors to get the dataset's vocabulary, builds a GRN store for it,
/// registers the store, then pretrains from scratch with it through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretrain_job_with_a_registered_prior_store() {
    let bin = trainer_bin();
    let app = TestApp::new(Backend::Sqlite, |c| {
        c.jobs.trainer_bin = Some(bin.clone());
        c.jobs.poll_interval = Duration::from_millis(100);
    })
    .await
    .unwrap();
    genecompass_server::jobs::start(&app.state).await.unwrap();
    let admin = app.user("ada", "lab-a", Role::Admin).await.token;
    let up = app
        .upload(&admin, "baron", None, std::fs::read(BARON).unwrap())
        .await;
    assert_eq!(up.status, StatusCode::CREATED);
    let params = |name: &str| {
        json!({ "dataset": "baron", "config": "tiny", "epochs": 1, "max_cells": 40,
                "batch_size": 8, "max_genes": 64, "seed": 3, "model_name": name })
    };
    let pretrain = |params: Value| json!({ "kind": "pretrain", "params": params });
    let first = app.run_job(&admin, pretrain(params("plain"))).await;
    let plain = app
        .model_of_version(first["model_version_id"].as_str().unwrap())
        .await;
    let dict = app
        .get(
            &format!("/api/v1/models/{plain}/versions/1/files/token_dict.json"),
            &admin,
        )
        .await;
    assert_eq!(dict.status, StatusCode::OK);
    let dict_path = app.dir.path().join("token_dict.json");
    std::fs::write(&dict_path, &dict.bytes).unwrap();

    let store = app.dir.path().join("grn-store");
    train(&[
        "priors",
        "build-grn",
        "--edges",
        TF_TARGETS,
        "--dim",
        "8",
        "--epochs",
        "1",
        "--species",
        "human,mouse",
        "--vocab",
        dict_path.to_str().unwrap(),
        "--output",
        store.to_str().unwrap(),
    ]);
    let res = import(&app, &admin, &store, "omnipath-grn").await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let pv = res.json();
    assert_eq!(pv["kinds"], json!(["peca_grn"]));

    let mut p = params("with-grn");
    p["priors"] = json!("omnipath-grn");
    let job = app.run_job(&admin, pretrain(p)).await;
    let model_id = app
        .model_of_version(job["model_version_id"].as_str().unwrap())
        .await;
    let mv = app
        .get(&format!("/api/v1/models/{model_id}/versions/1"), &admin)
        .await
        .json();
    assert_eq!(mv["priors"]["name"], "omnipath-grn");
    assert_eq!(mv["priors"]["version_id"], pv["id"]);
    assert_eq!(mv["config"]["use_peca_grn"], true);
    assert_eq!(mv["config"]["use_gene_family"], false);
    let used = app
        .get(
            &format!(
                "/api/v1/priors/{}/versions/1",
                pv["prior_set_id"].as_str().unwrap()
            ),
            &admin,
        )
        .await
        .json();
    assert_eq!(used["used_by"][0]["model"], "with-grn");

    // Fine-tuning that model keeps its tables: the child names its parent and inherits the link.
    let ft = json!({ "kind": "finetune", "params": {
        "dataset": "baron", "label_column": "cell_type", "base_model": "with-grn", "epochs": 1,
        "max_cells": 60, "batch_size": 16, "max_genes": 64, "seed": 3, "model_name": "grn-annotator"
    } });
    let job = app.run_job(&admin, ft).await;
    let child_model = app
        .model_of_version(job["model_version_id"].as_str().unwrap())
        .await;
    let child = app
        .get(&format!("/api/v1/models/{child_model}/versions/1"), &admin)
        .await
        .json();
    assert_eq!(child["lineage"]["parent"]["model"], "with-grn");
    assert_eq!(child["lineage"]["parent"]["version_id"], mv["id"]);
    assert_eq!(child["lineage"]["job_id"], job["id"]);
    assert_eq!(child["priors"]["version_id"], pv["id"]);
}
