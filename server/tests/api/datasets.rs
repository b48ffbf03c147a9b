//! Dataset upload, metadata, listing and ranged download.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use genecompass_server::db::Role;

use crate::common::{Backend, H5AD, TestApp};

async fn upload_list_get_download(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let alice = app.user("alice", "lab-a", Role::Editor).await.token;
    let bytes = std::fs::read(H5AD).unwrap();

    let res = app.upload(&alice, "wu2020", None, bytes.clone()).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.bytes)
    );
    let d = res.json();
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(
        res.headers[header::LOCATION],
        format!("/api/v1/datasets/{id}").as_str()
    );
    assert_eq!(d["n_cells"], 200);
    assert_eq!(d["n_genes"], 3000);
    assert_eq!(d["team"], "lab-a");
    assert_eq!(d["uploaded_by"], "alice");
    assert_eq!(d["size_bytes"], bytes.len() as i64);
    assert!(d["format"].as_str().unwrap().contains("h5ad"), "{d}");
    assert!(!d["matrix_path"].as_str().unwrap().is_empty());
    assert!(d["value_kind"].is_string());
    assert!(!d["obs_columns"].as_array().unwrap().is_empty(), "{d}");
    // What the genes are: the Wu 2020 T cells are human, named by HGNC symbols.
    assert_eq!(d["genes"]["species"], "human", "{d}");
    assert_eq!(d["genes"]["identifier"], "symbols");
    assert_eq!(d["genes"]["species_evidence"], "symbol_tables");
    let share = d["genes"]["recognised_share"].as_f64().unwrap();
    assert!(share > 0.9 && share <= 1.0, "{share}");
    assert_eq!(
        d["genes"]["recognised"].as_f64().unwrap(),
        (share * d["n_genes"].as_f64().unwrap()).round()
    );

    // Content-addressed, complete, no leftovers.
    let sha = d["sha256"].as_str().unwrap();
    let blob = app.state.blobs.local_path(sha).await.unwrap();
    assert!(blob.ends_with(format!("blobs/sha256/{}/{}", &sha[..2], &sha[2..])));
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    assert_eq!(app.state.blobs.temp_files(), 0);

    let list = app.get("/api/v1/datasets", &alice).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let got = app.get(&format!("/api/v1/datasets/{id}"), &alice).await;
    assert_eq!(got.json(), d);

    let full = app
        .get(&format!("/api/v1/datasets/{id}/download"), &alice)
        .await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.bytes, bytes);
    assert_eq!(full.headers[header::ETAG], format!("\"{sha}\"").as_str());
    assert!(
        full.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("wu2020")
    );

    for (range, lo, hi) in [("bytes=0-99", 0, 99), ("bytes=1000-1499", 1000, 1499)] {
        let req = Request::get(format!("/api/v1/datasets/{id}/download"))
            .header(header::AUTHORIZATION, format!("Bearer {alice}"))
            .header(header::RANGE, range)
            .body(Body::empty())
            .unwrap();
        let part = app.send(req).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(part.bytes, bytes[lo..=hi]);
        let expected = format!("bytes {lo}-{hi}/{}", bytes.len());
        assert_eq!(part.headers[header::CONTENT_RANGE], expected.as_str());
    }
    let req = Request::get(format!("/api/v1/datasets/{id}/download"))
        .header(header::AUTHORIZATION, format!("Bearer {alice}"))
        .header(header::RANGE, format!("bytes={}-", bytes.len() + 10))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.send(req).await.status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );

    // Same name again: conflict, nothing added.
    let again = app.upload(&alice, "wu2020", None, bytes.clone()).await;
    assert_eq!(again.error_code(StatusCode::CONFLICT), "conflict");
    // Same content under another name: one blob shared.
    let copy = app.upload(&alice, "wu2020-copy", None, bytes).await;
    assert_eq!(copy.status, StatusCode::CREATED);
    assert_eq!(app.dataset_count().await, 2);
    assert_eq!(app.blob_count(), 1);
}

async fn unreadable_upload_is_refused(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let t = app.user("alice", "lab-a", Role::Editor).await.token;
    let res = app
        .upload(&t, "junk", None, b"\x00\x01not a dataset at all".to_vec())
        .await;
    assert_eq!(
        res.error_code(StatusCode::UNPROCESSABLE_ENTITY),
        "unreadable_dataset"
    );
    let res = app.upload(&t, "empty", None, Vec::new()).await;
    assert_eq!(res.error_code(StatusCode::BAD_REQUEST), "empty_body");
    assert_eq!(app.dataset_count().await, 0);
    assert_eq!(app.state.blobs.temp_files(), 0);
    assert_eq!(app.blob_count(), 0);
}

async fn oversized_upload_413_and_db_unchanged(backend: Backend) {
    let Some(app) = TestApp::new(backend, |c| c.max_upload_bytes = 10_000).await else {
        return;
    };
    let t = app.user("alice", "lab-a", Role::Editor).await.token;
    let bytes = std::fs::read(H5AD).unwrap();
    // Declared length over the limit: refused before reading.
    let res = app.upload(&t, "big", None, bytes.clone()).await;
    assert_eq!(
        res.error_code(StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    // No Content-Length (chunked): refused while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let req = Request::post("/api/v1/datasets?name=big")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let res = app.send(req).await;
    assert_eq!(
        res.error_code(StatusCode::PAYLOAD_TOO_LARGE),
        "payload_too_large"
    );
    assert_eq!(app.dataset_count().await, 0);
    assert_eq!(app.state.blobs.temp_files(), 0);
    assert_eq!(app.blob_count(), 0);
}

async fn interrupted_upload_leaves_nothing(backend: Backend) {
    let Some(app) = TestApp::new(backend, |_| {}).await else {
        return;
    };
    let t = app.user("alice", "lab-a", Role::Editor).await.token;
    let bytes = std::fs::read(H5AD).unwrap();
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes[..50_000]
        .chunks(8192)
        .map(|c| Ok(c.to_vec()))
        .collect();
    chunks.push(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    let req = Request::post("/api/v1/datasets?name=cut")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let res = app.send(req).await;
    assert_eq!(
        res.error_code(StatusCode::BAD_REQUEST),
        "upload_interrupted"
    );
    assert_eq!(app.dataset_count().await, 0);
    assert_eq!(app.state.blobs.temp_files(), 0);
    assert_eq!(app.blob_count(), 0);
}

crate::on_both_databases!(
    upload_list_get_download,
    unreadable_upload_is_refused,
    oversized_upload_413_and_db_unchanged,
    interrupted_upload_leaves_nothing,
);
