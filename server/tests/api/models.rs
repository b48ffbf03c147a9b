//! Checkpoint import, versions, aliases and results.

use axum::http::{Method, StatusCode};
use genecompass_server::db::Role;
use serde_json::json;

use crate::common::{Backend, CHECKPOINT, H5AD, TestApp};

async fn import_checkpoint_versions_aliases_results(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let admin = app.user("ada", "lab-a", Role::Admin).await.token;
    let editor = app.user("ed", "lab-a", Role::Editor).await.token;
    let outsider = app.user("bob", "lab-b", Role::Admin).await.token;
    let body = json!({ "path": CHECKPOINT, "name": "tiny" });

    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&editor),
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");

    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let v1 = res.json();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["aliases"], json!(["latest"]));
    assert_eq!(v1["config"]["hidden_size"], 32);
    assert!(["masked_lm", "classifier"].contains(&v1["kind"].as_str().unwrap()));
    assert!(v1["tensor_count"].as_i64().unwrap() > 0);
    let files = v1["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["path"] == "config.json"));
    assert!(files.iter().any(|f| f["path"] == "classifier/config.json"));
    for f in files {
        let p = app
            .state
            .blobs
            .local_path(f["sha256"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(p).unwrap().len() as i64,
            f["size_bytes"].as_i64().unwrap()
        );
    }
    let model_id = v1["model_id"].as_str().unwrap().to_string();
    // An imported folder's card is its model_card.md or (Hugging Face style) README.md.
    let readme = std::fs::read_to_string(format!("{CHECKPOINT}/README.md")).unwrap();
    assert_eq!(v1["model_card"], readme.as_str());
    assert!(v1["lineage"]["job_id"].is_null() && v1["lineage"]["parent"].is_null());

    // Files download by version number or alias, with the hash as ETag (what the browser caches).
    let cfg = std::fs::read(format!("{CHECKPOINT}/config.json")).unwrap();
    let cfg_sha = files.iter().find(|f| f["path"] == "config.json").unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("/api/v1/models/{model_id}/versions/latest/files/config.json");
    let res = app.get(&url, &editor).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.bytes, cfg);
    assert_eq!(res.headers["etag"], format!("\"{cfg_sha}\"").as_str());
    let nested = format!("/api/v1/models/{model_id}/versions/1/files/classifier/config.json");
    let res = app.get(&nested, &editor).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.bytes,
        std::fs::read(format!("{CHECKPOINT}/classifier/config.json")).unwrap()
    );
    let req = |extra: (&str, String)| {
        axum::http::Request::get(&url)
            .header("authorization", format!("Bearer {editor}"))
            .header(extra.0, extra.1)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let res = app
        .send(req(("if-none-match", format!("\"{cfg_sha}\""))))
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    let res = app.send(req(("range", "bytes=2-9".into()))).await;
    assert_eq!(res.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes, cfg[2..10]);
    let missing = format!("/api/v1/models/{model_id}/versions/1/files/nope.bin");
    assert_eq!(
        app.get(&missing, &editor)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        app.get(&url, &outsider)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );

    // A second import is a new immutable version; `latest` moves, `production` is set on request.
    let body2 = json!({ "path": CHECKPOINT, "name": "tiny", "aliases": ["production"] });
    let v2 = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(body2),
        )
        .await
        .json();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["aliases"], json!(["latest", "production"]));
    let m = app
        .get(&format!("/api/v1/models/{model_id}"), &editor)
        .await
        .json();
    assert_eq!(m["versions"], json!([1, 2]));
    assert_eq!(m["aliases"], json!({"latest": 2, "production": 2}));

    let put = |token: String, alias: &str, version: i64| {
        let uri = format!("/api/v1/models/{model_id}/aliases/{alias}");
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                &uri,
                Some(&token),
                Some(json!({ "version": version })),
            )
            .await
        }
    };
    assert_eq!(
        put(editor.clone(), "production", 1)
            .await
            .error_code(StatusCode::FORBIDDEN),
        "forbidden"
    );
    assert_eq!(
        put(admin.clone(), "production", 9)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        put(admin.clone(), "..", 1)
            .await
            .error_code(StatusCode::BAD_REQUEST),
        "invalid_name"
    );
    assert_eq!(
        put(admin.clone(), "production", 1).await.status,
        StatusCode::OK
    );
    let prod = app
        .get(
            &format!("/api/v1/models/{model_id}/versions/production"),
            &editor,
        )
        .await
        .json();
    assert_eq!(prod["version"], 1);
    let latest = app
        .get(
            &format!("/api/v1/models/{model_id}/versions/latest"),
            &editor,
        )
        .await
        .json();
    assert_eq!(latest["version"], 2);

    // Bad imports.
    let bad = json!({ "path": concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/h5ad"), "name": "nope" });
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(bad),
        )
        .await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_checkpoint"
    );
    let missing = json!({ "path": "/does/not/exist", "name": "nope" });
    let res = app
        .call(
            Method::POST,
            "/api/v1/checkpoints/import",
            Some(&admin),
            Some(missing),
        )
        .await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_checkpoint"
    );

    // Results tie a version to a dataset.
    let ds = app
        .upload(&editor, "wu2020", None, std::fs::read(H5AD).unwrap())
        .await
        .json();
    let row = json!({ "model_version_id": v1["id"], "dataset_id": ds["id"], "task": "cell_type_annotation",
                      "metric": "macro_f1", "value": 0.75 });
    let res = app
        .call(Method::POST, "/api/v1/results", Some(&editor), Some(row))
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let rows = app.get("/api/v1/results", &editor).await.json();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["model"], "tiny");
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(rows[0]["dataset"], "wu2020");
    assert_eq!(rows[0]["value"], 0.75);
    let none = app.get("/api/v1/results?task=other", &editor).await.json();
    assert_eq!(none, json!([]));

    // The other team sees none of it and cannot reference it.
    assert_eq!(app.get("/api/v1/models", &outsider).await.json(), json!([]));
    assert_eq!(
        app.get("/api/v1/results", &outsider).await.json(),
        json!([])
    );
    let res = app
        .get(&format!("/api/v1/models/{model_id}/versions/1"), &outsider)
        .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");
    let steal = json!({ "model_version_id": v1["id"], "task": "t", "metric": "m", "value": 1.0 });
    let res = app
        .call(
            Method::POST,
            "/api/v1/results",
            Some(&outsider),
            Some(steal),
        )
        .await;
    assert_eq!(res.error_code(StatusCode::NOT_FOUND), "not_found");
}

crate::on_both_databases!(import_checkpoint_versions_aliases_results);
