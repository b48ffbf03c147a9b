//! Authentication, roles and team isolation.

use axum::http::{Method, StatusCode};
use genecompass_server::db::Role;
use serde_json::json;

use crate::common::{Backend, H5AD, TestApp};

async fn team_isolation(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let alice = app.user("alice", "lab-a", Role::Editor).await.token;
    let bob = app.user("bob", "lab-b", Role::Admin).await.token;
    let res = app
        .upload(&alice, "wu2020", None, std::fs::read(H5AD).unwrap())
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let id = res.json()["id"].as_str().unwrap().to_string();

    let list = app.get("/api/v1/datasets", &bob).await;
    assert_eq!(list.json(), json!([]));
    let show = app.get(&format!("/api/v1/datasets/{id}"), &bob).await;
    assert_eq!(show.error_code(StatusCode::NOT_FOUND), "not_found");
    let dl = app
        .get(&format!("/api/v1/datasets/{id}/download"), &bob)
        .await;
    assert_eq!(dl.error_code(StatusCode::NOT_FOUND), "not_found");
    // Naming another team explicitly does not help either.
    let other = app.get("/api/v1/datasets?team=lab-a", &bob).await;
    assert_eq!(other.error_code(StatusCode::NOT_FOUND), "not_found");
    let up = app
        .upload(&bob, "sneaky", Some("lab-a"), b"x".to_vec())
        .await;
    assert_eq!(up.error_code(StatusCode::NOT_FOUND), "not_found");

    // A member of both teams sees both, and must say where to upload.
    let carol = app.user("carol", "lab-a", Role::Viewer).await.token;
    app.user("carol", "lab-b", Role::Editor).await;
    assert_eq!(
        app.get("/api/v1/datasets", &carol)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let up = app.upload(&carol, "x", None, b"x".to_vec()).await;
    assert_eq!(up.error_code(StatusCode::BAD_REQUEST), "team_required");
    let me = app.get("/api/v1/me", &carol).await.json();
    assert_eq!(me["teams"].as_array().unwrap().len(), 2);
}

async fn viewer_cannot_upload(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let v = app.user("victor", "lab-a", Role::Viewer).await.token;
    let res = app
        .upload(&v, "wu2020", None, std::fs::read(H5AD).unwrap())
        .await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");
    assert_eq!(app.dataset_count().await, 0);
    assert_eq!(app.state.blobs.temp_files(), 0);
    let res = app
        .call(
            Method::POST,
            "/api/v1/results",
            Some(&v),
            Some(json!({"task": "t", "metric": "m", "value": 1.0})),
        )
        .await;
    assert_eq!(res.error_code(StatusCode::FORBIDDEN), "forbidden");
}

async fn invalid_and_revoked_tokens(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let u = app.user("alice", "lab-a", Role::Editor).await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/datasets", None, None)
            .await
            .error_code(StatusCode::UNAUTHORIZED),
        "unauthorized"
    );
    assert_eq!(
        app.get("/api/v1/datasets", "gct_bogus")
            .await
            .error_code(StatusCode::UNAUTHORIZED),
        "unauthorized"
    );
    assert_eq!(
        app.get("/api/v1/datasets", "")
            .await
            .error_code(StatusCode::UNAUTHORIZED),
        "unauthorized"
    );

    // Password login issues a working token; a wrong password does not.
    let password = u.password.clone().expect("new user gets a password");
    let bad = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"name": "alice", "password": "nope"})),
        )
        .await;
    assert_eq!(bad.error_code(StatusCode::UNAUTHORIZED), "unauthorized");
    let ok = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"name": "alice", "password": password})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let second = ok.json()["token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/v1/me", &second).await.json()["name"], "alice");

    // Revoke the CLI token; the other one keeps working.
    let tokens = app.get("/api/v1/tokens", &second).await.json();
    let cli_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "cli")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rev = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{cli_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(rev.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/datasets", &u.token)
            .await
            .error_code(StatusCode::UNAUTHORIZED),
        "unauthorized"
    );
    assert_eq!(
        app.get("/api/v1/datasets", &second).await.status,
        StatusCode::OK
    );
    // Tokens are stored hashed only.
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1")
        .bind(&second)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

async fn bootstrap_admin_once(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let first = genecompass_server::auth::bootstrap_admin(&app.state.db)
        .await
        .unwrap()
        .expect("created");
    assert!(first.password.as_ref().is_some_and(|p| p.len() >= 16));
    assert!(
        genecompass_server::auth::bootstrap_admin(&app.state.db)
            .await
            .unwrap()
            .is_none()
    );
    let me = app.get("/api/v1/me", &first.token).await.json();
    assert_eq!(me["teams"][0]["role"], "admin");
}

crate::on_both_databases!(
    team_isolation,
    viewer_cannot_upload,
    invalid_and_revoked_tokens,
    bootstrap_admin_once
);
