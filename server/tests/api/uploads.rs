//! Resumable uploads: chunks appended at the offset the server holds, a wrong offset refused
//! without changing anything, a chunk cut short kept up to where it broke, completion only with
//! every byte in, and nothing registered before that.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use genecompass_server::db::Role;
use sha2::{Digest, Sha256};

use crate::common::{Backend, H5AD, TestApp};

async fn patch(
    app: &TestApp,
    token: &str,
    id: &str,
    offset: u64,
    body: Body,
) -> crate::common::Res {
    let req = Request::patch(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("upload-offset", offset.to_string())
        .body(body)
        .unwrap();
    app.send(req).await
}

async fn offset_of(app: &TestApp, token: &str, id: &str) -> u64 {
    let r = app.get(&format!("/api/v1/uploads/{id}"), token).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.bytes)
    );
    let o = r.json()["offset"].as_u64().unwrap();
    assert_eq!(r.headers["upload-offset"], o.to_string().as_str());
    o
}

async fn chunked_upload_resumes_and_registers(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let ana = app.user("ana", "lab", Role::Editor).await.token;
    let bytes = std::fs::read(H5AD).unwrap();
    let n = bytes.len() as u64;
    let created = app
        .call(
            Method::POST,
            &format!("/api/v1/uploads?name=wu&size={n}"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.bytes)
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.headers[header::LOCATION],
        format!("/api/v1/uploads/{id}").as_str()
    );
    assert_eq!(offset_of(&app, &ana, &id).await, 0);

    let a = 100_000usize;
    let r = patch(&app, &ana, &id, 0, Body::from(bytes[..a].to_vec())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["offset"], a as u64);

    // A chunk that does not start where the upload stands changes nothing.
    let r = patch(&app, &ana, &id, 0, Body::from(bytes[..a].to_vec())).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("holds {a} bytes"))
    );
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/uploads/{id}/complete"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "incomplete uploads are not registered"
    );
    assert_eq!(offset_of(&app, &ana, &id).await, a as u64);

    // A chunk cut short keeps what arrived; the client resumes from the reported offset.
    let cut = 30_000usize;
    let stream: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(bytes[a..a + cut].to_vec()),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "network down",
        )),
    ];
    let r = patch(
        &app,
        &ana,
        &id,
        a as u64,
        Body::from_stream(futures_util::stream::iter(stream)),
    )
    .await;
    assert_eq!(r.error_code(StatusCode::BAD_REQUEST), "upload_interrupted");
    let at = offset_of(&app, &ana, &id).await;
    assert_eq!(at, (a + cut) as u64);
    assert_eq!(
        app.dataset_count().await,
        0,
        "nothing registered mid-upload"
    );

    // Another team's member cannot see or touch it; a viewer of the team cannot either.
    let eve = app.user("eve", "other", Role::Editor).await.token;
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), &eve).await.status,
        StatusCode::NOT_FOUND
    );
    let vic = app.user("vic", "lab", Role::Viewer).await.token;
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), &vic).await.status,
        StatusCode::NOT_FOUND
    );

    // Past the declared size: refused, and the bytes held stay.
    let mut too_much = bytes[at as usize..].to_vec();
    too_much.extend_from_slice(b"extra");
    let r = patch(&app, &ana, &id, at, Body::from(too_much)).await;
    assert_eq!(r.error_code(StatusCode::BAD_REQUEST), "upload_interrupted");
    assert!(String::from_utf8_lossy(&r.bytes).contains("larger than announced"));
    let at = offset_of(&app, &ana, &id).await;

    let r = patch(
        &app,
        &ana,
        &id,
        at,
        Body::from(bytes[at as usize..].to_vec()),
    )
    .await;
    assert_eq!(r.json()["offset"], n);
    let done = app
        .call(
            Method::POST,
            &format!("/api/v1/uploads/{id}/complete"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(
        done.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&done.bytes)
    );
    let d = done.json();
    assert_eq!(d["sha256"], hex::encode(Sha256::digest(&bytes)).as_str());
    assert_eq!(d["n_cells"], 200);
    assert_eq!(d["name"], "wu");
    assert_eq!(app.dataset_count().await, 1);
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), &ana).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.state.blobs.temp_files(), 0);
    let leftovers = std::fs::read_dir(app.state.config.data_dir.join("uploads"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

async fn bad_uploads_are_refused_cleanly(backend: Backend) {
    let Some(app) = TestApp::new(backend, |c| c.max_upload_bytes = 1 << 20).await else {
        return;
    };
    let ana = app.user("ana", "lab", Role::Editor).await.token;
    let vic = app.user("vic", "lab", Role::Viewer).await.token;
    let post = |q: String, t: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/uploads?{q}"),
                Some(&t),
                None,
            )
            .await
        }
    };
    let r = post("name=big&size=2000000".into(), ana.clone()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&r.bytes).contains("--max-upload-bytes"));
    assert_eq!(
        post("name=x&size=10".into(), vic.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post("name=bad%20name&size=10".into(), ana.clone())
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post("name=z&size=0".into(), ana.clone()).await.status,
        StatusCode::BAD_REQUEST
    );

    // Bytes that are no dataset: refused at completion (422) and the upload discarded.
    let junk = b"this is not a single-cell file\n".repeat(10);
    let r = post(format!("name=junk&size={}", junk.len()), ana.clone()).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = patch(&app, &ana, &id, 0, Body::from(junk.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/uploads/{id}/complete"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(
        r.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "unreadable_dataset"
    );
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), &ana).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.dataset_count().await, 0);

    // Missing offset header; unknown and malformed ids; abort frees the upload.
    let r = post("name=y&size=10".into(), ana.clone()).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let req = Request::patch(format!("/api/v1/uploads/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {ana}"))
        .body(Body::from(vec![0u8; 10]))
        .unwrap();
    assert_eq!(
        app.send(req).await.error_code(StatusCode::BAD_REQUEST),
        "missing_offset"
    );
    for bad in ["up_0000", "../../etc", "up_zz"] {
        assert_eq!(
            app.get(&format!("/api/v1/uploads/{bad}"), &ana)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/uploads/{id}"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), &ana).await.status,
        StatusCode::NOT_FOUND
    );
}

crate::on_both_databases!(
    chunked_upload_resumes_and_registers,
    bad_uploads_are_refused_cleanly,
);
