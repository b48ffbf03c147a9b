//! Resumable uploads for multi-GB datasets: create an upload with its total size, append chunks
//! at the offset the server reports (`Upload-Offset`), resume from that offset after any
//! interruption, and complete it, which registers the dataset exactly as a one-shot upload does.
//!
//! State lives beside the blob store, in `DATA_DIR/uploads/ID.part` (the bytes so far) and
//! `ID.json` (team, user, name, size). Nothing reaches the datasets table before `complete`, so
//! an abandoned or interrupted upload never leaves a half-registered dataset; a server restart
//! keeps partial uploads resumable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::datasets::{check_free_name, register_dataset};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{Role, new_id, now};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError};
use crate::names::check_name;

/// The header carrying the byte offset a chunk starts at (and, in answers, the bytes held).
pub const UPLOAD_OFFSET: &str = "upload-offset";

/// `POST /api/v1/uploads` query.
#[derive(Debug, Deserialize)]
pub struct CreateQuery {
    /// Dataset name, unique in the team.
    pub name: String,
    /// Team (name or id); optional for members of a single team.
    pub team: Option<String>,
    /// Total size of the file in bytes.
    pub size: u64,
}

/// What the server keeps about an upload (`ID.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadMeta {
    id: String,
    team_id: String,
    user_id: String,
    name: String,
    size: u64,
    created_at: i64,
}

/// An upload as the API shows it.
#[derive(Debug, Serialize)]
pub struct UploadStatus {
    /// Id (`up_...`).
    pub id: String,
    /// Dataset name it will register.
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Bytes received so far: where the next chunk starts.
    pub offset: u64,
}

fn dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("uploads")
}

/// One lock per upload, so that two chunks for the same upload never interleave.
type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

fn locks() -> &'static Locks {
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    LOCKS.get_or_init(Default::default)
}

fn lock_for(id: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut m = locks().lock().expect("upload locks");
    m.entry(id.to_string()).or_default().clone()
}

/// Loads an upload the caller may write to (its creator, or an editor of its team).
async fn load(state: &AppState, user: &AuthUser, id: &str) -> Result<(UploadMeta, u64), AppError> {
    let not_found = || {
        AppError::NotFound(format!(
            "no upload `{id}` (completed, aborted or never started)"
        ))
    };
    if !id.starts_with("up_") || !id[3..].chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let d = dir(state);
    let text = match tokio::fs::read_to_string(d.join(format!("{id}.json"))).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let meta: UploadMeta = serde_json::from_str(&text).map_err(AppError::internal)?;
    let allowed = meta.user_id == user.id
        || user
            .teams
            .iter()
            .any(|m| m.team_id == meta.team_id && m.role() >= Role::Editor);
    if !allowed {
        return Err(not_found());
    }
    let offset = match tokio::fs::metadata(d.join(format!("{id}.part"))).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    Ok((meta, offset))
}

fn status(meta: &UploadMeta, offset: u64) -> UploadStatus {
    UploadStatus {
        id: meta.id.clone(),
        name: meta.name.clone(),
        size: meta.size,
        offset,
    }
}

fn with_offset(code: StatusCode, s: UploadStatus) -> ApiResult<Response> {
    let h = HeaderValue::from_str(&s.offset.to_string()).map_err(AppError::internal)?;
    Ok((code, [(UPLOAD_OFFSET, h)], ApiJson(s)).into_response())
}

/// `POST /api/v1/uploads?name=N&size=BYTES[&team=T]` (editor): starts a resumable upload.
pub async fn uploads_create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<CreateQuery>,
) -> ApiResult<Response> {
    check_name("dataset name", &q.name)?;
    let team = user.require(q.team.as_deref(), Role::Editor)?.clone();
    let limit = state.config.max_upload_bytes;
    if q.size > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "the file has {} bytes; uploads are limited to {limit} bytes (server flag \
             --max-upload-bytes)",
            q.size
        )));
    }
    if q.size == 0 {
        return Err(AppError::bad_request("empty_body", "the file is empty"));
    }
    check_free_name(&state, &team, &q.name).await?;
    let meta = UploadMeta {
        id: new_id("up"),
        team_id: team.team_id.clone(),
        user_id: user.id.clone(),
        name: q.name,
        size: q.size,
        created_at: now(),
    };
    let d = dir(&state);
    tokio::fs::create_dir_all(&d).await?;
    tokio::fs::File::create(d.join(format!("{}.part", meta.id))).await?;
    let json = serde_json::to_vec(&meta).map_err(AppError::internal)?;
    tokio::fs::write(d.join(format!("{}.json", meta.id)), json).await?;
    tracing::info!(id = %meta.id, name = %meta.name, size = meta.size, "upload started");
    let location = HeaderValue::from_str(&format!("/api/v1/uploads/{}", meta.id))
        .map_err(AppError::internal)?;
    let mut res = with_offset(StatusCode::CREATED, status(&meta, 0))?;
    res.headers_mut().insert(LOCATION, location);
    Ok(res)
}

/// `GET /api/v1/uploads/{id}`: where to resume (`offset`, also as `Upload-Offset`).
pub async fn uploads_show(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let (meta, offset) = load(&state, &user, &id).await?;
    with_offset(StatusCode::OK, status(&meta, offset))
}

/// `PATCH /api/v1/uploads/{id}` with `Upload-Offset: N` and the bytes from N on: appends them.
/// A chunk that does not start at the bytes held is refused (409) and changes nothing; a chunk
/// cut short keeps what arrived, so the client resumes from the offset `GET` reports.
pub async fn uploads_append(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (meta, _) = load(&state, &user, &id).await?;
    let lock = lock_for(&id);
    let _guard = lock.lock().await;
    let (_, offset) = load(&state, &user, &id).await?;
    let claimed = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            AppError::bad_request(
                "missing_offset",
                "send the chunk's start as the `Upload-Offset` header (GET the upload for it)",
            )
        })?;
    if claimed != offset {
        return Err(AppError::Conflict(format!(
            "the upload holds {offset} bytes, the chunk starts at {claimed}: resend from byte \
             {offset} (GET /api/v1/uploads/{id} reports it)"
        )));
    }
    let path = dir(&state).join(format!("{id}.part"));
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await?;
    let mut written = offset;
    let mut stream = body.into_data_stream();
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(format!(
                    "the chunk was cut short after {} bytes: {e}",
                    written - offset
                ));
                break;
            }
        };
        if written + chunk.len() as u64 > meta.size {
            failure = Some(format!(
                "the chunk runs past the declared size of {} bytes; the file is larger than \
                 announced: start a new upload with its real size",
                meta.size
            ));
            break;
        }
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    file.sync_data().await?;
    if let Some(message) = failure {
        return Err(AppError::bad_request(
            "upload_interrupted",
            format!("{message}; resume from byte {written}"),
        ));
    }
    with_offset(StatusCode::OK, status(&meta, written))
}

/// `POST /api/v1/uploads/{id}/complete`: hashes the bytes, reads them with core's readers and
/// registers the dataset (201, as `POST /datasets`). An unreadable file is refused (422) and the
/// upload is discarded; an incomplete one is refused (409) and kept.
pub async fn uploads_complete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let lock = lock_for(&id);
    let _guard = lock.lock().await;
    let (meta, offset) = load(&state, &user, &id).await?;
    if offset != meta.size {
        return Err(AppError::Conflict(format!(
            "the upload holds {offset} of {} bytes: send the rest from byte {offset} first",
            meta.size
        )));
    }
    let team = user
        .teams
        .iter()
        .find(|m| m.team_id == meta.team_id)
        .ok_or_else(|| {
            AppError::Forbidden("you are no longer a member of the upload's team".into())
        })?
        .clone();
    check_free_name(&state, &team, &meta.name).await?;
    let d = dir(&state);
    let part = d.join(format!("{id}.part"));
    let mut writer = state.blobs.writer().await?;
    let mut input = tokio::fs::File::open(&part).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n]).await?;
    }
    let blob = writer.finish().await?;
    let result = register_dataset(&state, &user, &team, &meta.name, blob).await;
    let keep = matches!(
        &result,
        Err(AppError::Conflict(_)) | Err(AppError::Internal(_))
    );
    if !keep {
        discard(&state, &id).await;
    }
    result
}

/// `DELETE /api/v1/uploads/{id}`: abandons the upload and frees its space.
pub async fn uploads_abort(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let lock = lock_for(&id);
    let _guard = lock.lock().await;
    load(&state, &user, &id).await?;
    discard(&state, &id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an upload's files and its lock (requests waiting on the lock then find no upload).
async fn discard(state: &AppState, id: &str) {
    locks().lock().expect("upload locks").remove(id);
    let d = dir(state);
    let _ = tokio::fs::remove_file(d.join(format!("{id}.part"))).await;
    let _ = tokio::fs::remove_file(d.join(format!("{id}.json"))).await;
}
