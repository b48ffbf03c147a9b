//! Health, OpenAPI, the error shape, limits, names and request ids.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use genecompass_server::db::Role;
use serde_json::json;

use crate::common::{Backend, TestApp};

async fn health_and_openapi(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let res = app.call(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(res.status, StatusCode::OK);
    let h = res.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(
        h["database"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(res.headers.contains_key("x-request-id"));

    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in [
        "/health",
        "/datasets",
        "/datasets/{id}/download",
        "/checkpoints/import",
        "/results",
        "/models/{id}/aliases/{alias}",
        "/models/{id}/versions/{version}/files/{path}",
        "/jobs",
        "/jobs/{id}",
        "/jobs/{id}/cancel",
        "/jobs/{id}/logs",
        "/jobs/{id}/events",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
}

async fn error_shapes(backend: Backend) {
    let Some(app) = TestApp::new(backend, |c| c.max_json_bytes = 1024).await else {
        return;
    };
    let t = app.user("alice", "lab-a", Role::Editor).await.token;

    let req = |body: &str, ct: &str| {
        Request::post("/api/v1/results")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    assert_eq!(
        app.send(req("{not json", "application/json"))
            .await
            .error_code(StatusCode::BAD_REQUEST),
        "invalid_json"
    );
    assert_eq!(
        app.send(req("{\"task\": 3}", "application/json"))
            .await
            .error_code(StatusCode::BAD_REQUEST),
        "invalid_json"
    );
    let ok = app
        .send(req(
            r#"{"task":"annotation","metric":"f1","value":0.5}"#,
            "text/plain",
        ))
        .await;
    assert_eq!(
        ok.error_code(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        "unsupported_media_type"
    );
    let big = json!({"task": "x".repeat(4000), "metric": "m", "value": 1.0}).to_string();
    assert_eq!(
        app.send(req(&big, "application/json"))
            .await
            .error_code(StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM results")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    assert_eq!(
        app.get("/api/v1/datasets/ds_0000000000000000", &t)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        app.get("/api/v1/models/nope", &t)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        app.get("/api/v1/models/nope/versions/latest", &t)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    assert_eq!(
        app.get("/api/v1/no/such/route", &t)
            .await
            .error_code(StatusCode::NOT_FOUND),
        "not_found"
    );
    let q = app.get("/api/v1/datasets?team=", &t).await;
    assert_eq!(q.error_code(StatusCode::NOT_FOUND), "not_found");

    // Traversal and odd names are refused before anything is read.
    for name in [
        "..",
        "..%2Fetc%2Fpasswd",
        "a%2Fb",
        ".hidden",
        "a%5Cb",
        "a%00b",
    ] {
        let res = app.upload(&t, name, None, b"x".to_vec()).await;
        assert_eq!(
            res.error_code(StatusCode::BAD_REQUEST),
            "invalid_name",
            "{name}"
        );
    }
    let res = app
        .call(Method::POST, "/api/v1/datasets", Some(&t), None)
        .await;
    assert_eq!(res.error_code(StatusCode::BAD_REQUEST), "invalid_query");
    assert_eq!(app.dataset_count().await, 0);

    // Request ids: generated, or echoed when the client sends one.
    let res = app
        .send(
            Request::get("/api/v1/health")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.headers["x-request-id"], "abc-123");
}

crate::on_both_databases!(health_and_openapi, error_shapes);
