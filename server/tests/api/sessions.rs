//! Cookie sessions for the web app: HttpOnly session cookie, CSRF token required on unsafe
//! requests made with the cookie (and not with a bearer token), logout ends the session.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use genecompass_server::db::Role;
use serde_json::json;

use crate::common::{Backend, TestApp};

fn cookies(res: &crate::common::Res) -> Vec<String> {
    res.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn value(set_cookie: &[String], name: &str) -> String {
    set_cookie
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookie:?}"))
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    uri: &str,
    session: &str,
    csrf: Option<&str>,
) -> crate::common::Res {
    let mut b = Request::builder().method(method).uri(uri).header(
        header::COOKIE,
        format!("gc_session={session}; gc_csrf=ignored"),
    );
    if let Some(c) = csrf {
        b = b.header("x-csrf-token", c);
    }
    app.send(b.body(Body::empty()).unwrap()).await
}

async fn sessions_and_csrf(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let ana = app.user("ana", "lab", Role::Editor).await;
    let password = ana.password.clone().expect("a new user has a password");
    let bad = app
        .call(
            Method::POST,
            "/api/v1/auth/session",
            None,
            Some(json!({"name": "ana", "password": "wrong"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(
        cookies(&bad).is_empty(),
        "no cookie without the right password"
    );

    let res = app
        .call(
            Method::POST,
            "/api/v1/auth/session",
            None,
            Some(json!({"name": "ana", "password": password})),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let set = cookies(&res);
    let session_cookie = set.iter().find(|c| c.starts_with("gc_session=")).unwrap();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"));
    let session = value(&set, "gc_session");
    let csrf = value(&set, "gc_csrf");
    assert_eq!(res.json()["csrf_token"], csrf.as_str());
    assert_eq!(res.json()["user"]["name"], "ana");
    assert!(
        !String::from_utf8_lossy(&res.bytes).contains(&session),
        "the body never shows the session token"
    );

    // Reads with the cookie alone.
    let me = with_cookie(&app, Method::GET, "/api/v1/me", &session, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["name"], "ana");

    // A change with the cookie needs the CSRF token: without or wrong → 403, nothing created.
    let uri = "/api/v1/uploads?name=x&size=10";
    let r = with_cookie(&app, Method::POST, uri, &session, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&r.bytes).contains("X-CSRF-Token"));
    let r = with_cookie(&app, Method::POST, uri, &session, Some(&"0".repeat(64))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let dir = app.state.config.data_dir.join("uploads");
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().count() == 0);
    let r = with_cookie(&app, Method::POST, uri, &session, Some(&csrf)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.bytes)
    );

    // A bearer token needs no CSRF token (it is not sent by the browser on its own).
    let r = app
        .call(
            Method::POST,
            "/api/v1/uploads?name=y&size=10",
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Logout needs the CSRF token too, then ends the session and clears the cookies.
    let r = with_cookie(&app, Method::POST, "/api/v1/auth/logout", &session, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = with_cookie(
        &app,
        Method::POST,
        "/api/v1/auth/logout",
        &session,
        Some(&csrf),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(cookies(&r).iter().all(|c| c.contains("Max-Age=0")));
    let me = with_cookie(&app, Method::GET, "/api/v1/me", &session, None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // The user's other tokens are untouched.
    assert_eq!(
        app.get("/api/v1/me", &ana.token).await.status,
        StatusCode::OK
    );
    // No cookie and no header: a message that names both ways in.
    let r = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&r.bytes).contains("/api/v1/auth/session"));
}

crate::on_both_databases!(sessions_and_csrf);
