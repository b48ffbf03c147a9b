//! Login, the caller's identity and API token management.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthUser, issue_token, verify_password};
use crate::db::now;
use crate::error::{ApiJson, ApiResult, AppError};

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Label for the new token (default `login`).
    pub label: Option<String>,
}

/// A newly issued token (the only time it is shown).
#[derive(Debug, Serialize)]
pub struct TokenCreated {
    /// Token id (for revocation).
    pub id: String,
    /// The bearer token.
    pub token: String,
}

/// `POST /api/v1/auth/login`: exchanges a password for a new API token.
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(StatusCode, ApiJson<TokenCreated>)> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE name = $1")
            .bind(&req.name)
            .fetch_optional(&state.db.pool)
            .await?;
    let bad = || AppError::Unauthorized("wrong user name or password".into());
    let (user_id, phc) = row.ok_or_else(bad)?;
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(AppError::internal)?;
    if !ok {
        return Err(bad());
    }
    let label = req.label.unwrap_or_else(|| "login".into());
    let (id, token) = issue_token(&state.db, &user_id, &label).await?;
    Ok((StatusCode::CREATED, ApiJson(TokenCreated { id, token })))
}

/// `POST /api/v1/auth/session` (`{name, password}`): signs in the web app with cookies (see
/// [`crate::session`]); answers `{csrf_token, user}`.
pub async fn session_create(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (_, ApiJson(created)) = login(
        State(state.clone()),
        ApiJson(LoginRequest {
            label: Some("web session".into()),
            ..req
        }),
    )
    .await?;
    let user = crate::auth::user_for_token(&state.db, &created.token)
        .await?
        .ok_or_else(|| AppError::internal("a token just issued is unknown"))?;
    // Behind a TLS-terminating proxy the cookies get `Secure`.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let body = serde_json::json!({
        "csrf_token": crate::session::csrf_for(&created.token),
        "user": user,
    });
    let mut res = (StatusCode::CREATED, ApiJson(body)).into_response();
    crate::session::append(
        res.headers_mut(),
        crate::session::set_cookies(&created.token, secure),
    );
    Ok(res)
}

/// `POST /api/v1/auth/logout`: ends the session of the cookie (or revokes the bearer token)
/// and clears the cookies.
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(crate::db::now())
        .bind(&user.token_id)
        .execute(&state.db.pool)
        .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    crate::session::append(res.headers_mut(), crate::session::clear_cookies());
    Ok(res)
}

/// `GET /api/v1/me`: the caller and their teams.
pub async fn me(user: AuthUser) -> ApiJson<AuthUser> {
    ApiJson(user)
}

/// One token, without its secret.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last use (Unix seconds).
    pub last_used_at: Option<i64>,
    /// Revocation time (Unix seconds).
    pub revoked_at: Option<i64>,
}

/// `GET /api/v1/tokens`: the caller's tokens.
pub async fn tokens_index(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<TokenInfo>>> {
    let rows = sqlx::query_as(
        "SELECT id, label, created_at, last_used_at, revoked_at FROM api_tokens \
         WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(&user.id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(ApiJson(rows))
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
pub struct CreateToken {
    /// Label, e.g. the machine it is for.
    pub label: String,
}

/// `POST /api/v1/tokens`: a new token for the caller.
pub async fn tokens_create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, ApiJson<TokenCreated>)> {
    let (id, token) = issue_token(&state.db, &user.id, &req.label).await?;
    Ok((StatusCode::CREATED, ApiJson(TokenCreated { id, token })))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens (also the one in use).
pub async fn tokens_revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 \
         AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(&id)
    .bind(&user.id)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound(format!(
            "no active token `{id}` of yours"
        )));
    }
    Ok(ApiJson(json!({ "revoked": id })))
}
