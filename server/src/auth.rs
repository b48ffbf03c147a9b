//! Users, teams, passwords and API tokens, and the [`AuthUser`] extractor that every
//! protected handler takes.
//!
//! Passwords are stored as argon2id PHC strings. API tokens are 256 random bits shown once and
//! stored only as their SHA-256, so a leaked database does not leak usable tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use crate::app::AppState;
use crate::db::{Db, Role, new_id, now};
use crate::error::AppError;
use crate::names::check_name;

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The argon2id PHC string of a password.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(random_hex(16).as_bytes()).map_err(AppError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

/// True when `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The stored form of an API token: SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for a user; returns `(token id, token)`. The token itself is never stored.
pub async fn issue_token(
    db: &Db,
    user_id: &str,
    label: &str,
) -> Result<(String, String), AppError> {
    let id = new_id("tok");
    let token = format!("gct_{}", random_hex(32));
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(hash_token(&token))
    .bind(label)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok((id, token))
}

/// What `user add` (and the first-start bootstrap) created.
#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    /// User id.
    pub user_id: String,
    /// The generated password, when the user was created now (shown once).
    pub password: Option<String>,
    /// A new API token (shown once).
    pub token: String,
}

/// The id of team `name`, creating the team if needed.
async fn ensure_team(tx: &mut Transaction<'static, Any>, name: &str) -> Result<String, AppError> {
    let found: Option<(String,)> = sqlx::query_as("SELECT id FROM teams WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some((id,)) = found {
        return Ok(id);
    }
    let id = new_id("team");
    sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(now())
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// Adds user `name` to `team` with `role`, creating the team and the user (with a generated
/// password) as needed, and issues a new API token. An existing membership gets the new role.
pub async fn add_user(db: &Db, name: &str, team: &str, role: Role) -> Result<NewUser, AppError> {
    check_name("user name", name)?;
    check_name("team name", team)?;
    let mut tx = db.pool.begin().await?;
    let team_id = ensure_team(&mut tx, team).await?;
    let found: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    let (user_id, password) = match found {
        Some((id,)) => (id, None),
        None => {
            let id = new_id("usr");
            let password = random_hex(12);
            let phc = hash_password(&password)?;
            sqlx::query(
                "INSERT INTO users (id, name, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(name)
            .bind(phc)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            (id, Some(password))
        }
    };
    sqlx::query(
        "INSERT INTO memberships (user_id, team_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, team_id) DO UPDATE SET role = excluded.role",
    )
    .bind(&user_id)
    .bind(&team_id)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let (_, token) = issue_token(db, &user_id, "cli").await?;
    Ok(NewUser {
        user_id,
        password,
        token,
    })
}

/// On an empty database, creates user `admin` (admin of team `admin`) with a random password
/// and returns it so the caller can print it once. Returns `None` when any user exists.
pub async fn bootstrap_admin(db: &Db) -> Result<Option<NewUser>, AppError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await?;
    if count > 0 {
        return Ok(None);
    }
    add_user(db, "admin", "admin", Role::Admin).await.map(Some)
}

/// One team the caller belongs to.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Membership {
    /// Team id.
    pub team_id: String,
    /// Team name.
    pub team_name: String,
    /// Role, as stored.
    pub role: String,
}

impl Membership {
    /// The parsed role (unknown strings count as viewer).
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

/// The authenticated caller, with the teams that scope every query.
#[derive(Debug, Clone, Serialize)]
pub struct AuthUser {
    /// User id.
    pub id: String,
    /// User name.
    pub name: String,
    /// The id of the token used.
    pub token_id: String,
    /// Team memberships.
    pub teams: Vec<Membership>,
}

impl AuthUser {
    /// The membership that lets the caller act in `team` (a name or id) with at least `min`.
    /// `team = None` is allowed when the caller belongs to exactly one team.
    /// Unknown teams give 404 (no hint that a team exists); too low a role gives 403.
    pub fn require(&self, team: Option<&str>, min: Role) -> Result<&Membership, AppError> {
        let m = match team {
            Some(t) => self
                .teams
                .iter()
                .find(|m| m.team_name == t || m.team_id == t)
                .ok_or_else(|| AppError::NotFound(format!("no team `{t}` among yours")))?,
            None => match self.teams.as_slice() {
                [only] => only,
                [] => {
                    return Err(AppError::Forbidden(
                        "you are not a member of any team".into(),
                    ));
                }
                _ => {
                    return Err(AppError::bad_request(
                        "team_required",
                        "you belong to several teams: name one with `team`",
                    ));
                }
            },
        };
        if m.role() < min {
            return Err(AppError::Forbidden(format!(
                "your role in team `{}` is {}; this needs {} or higher",
                m.team_name,
                m.role,
                min.as_str()
            )));
        }
        Ok(m)
    }
}

/// How often a token's `last_used_at` is written: at most once a minute per token and process,
/// so that a busy client does not turn every read into a database write (on SQLite, writes
/// serialise).
const LAST_USED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn last_use_is_stale(token_id: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;
    static SEEN: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .expect("token use map");
    let now = Instant::now();
    match seen.get(token_id) {
        Some(t) if now.duration_since(*t) < LAST_USED_EVERY => false,
        _ => {
            if seen.len() > 100_000 {
                seen.retain(|_, t| now.duration_since(*t) < LAST_USED_EVERY);
            }
            seen.insert(token_id.to_string(), now);
            true
        }
    }
}

/// Loads the caller behind a raw token, or `None` if unknown or revoked.
pub async fn user_for_token(db: &Db, token: &str) -> Result<Option<AuthUser>, AppError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT t.id, u.id, u.name FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(hash_token(token))
    .fetch_optional(&db.pool)
    .await?;
    let Some((token_id, id, name)) = row else {
        return Ok(None);
    };
    let teams: Vec<Membership> = sqlx::query_as(
        "SELECT m.team_id, t.name AS team_name, m.role FROM memberships m \
         JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.name",
    )
    .bind(&id)
    .fetch_all(&db.pool)
    .await?;
    if last_use_is_stale(&token_id) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(&token_id)
            .execute(&db.pool)
            .await?;
    }
    Ok(Some(AuthUser {
        id,
        name,
        token_id,
        teams,
    }))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        use crate::session::{CSRF_HEADER, SESSION_COOKIE, cookie, csrf_for, is_unsafe, same};
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // No bearer token: a web-app session cookie, CSRF-checked on unsafe methods.
            let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
                return Err(AppError::Unauthorized(
                    "missing `Authorization: Bearer <token>` (or a session: POST /api/v1/auth/session)"
                        .into(),
                ));
            };
            if is_unsafe(&parts.method) {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !same(sent, &csrf_for(&token)) {
                    return Err(AppError::Forbidden(
                        "missing or wrong `X-CSRF-Token`: a request made with the session cookie \
                         must echo the `gc_csrf` cookie in that header"
                            .into(),
                    ));
                }
            }
            let created: Option<(i64,)> =
                sqlx::query_as("SELECT created_at FROM api_tokens WHERE token_hash = $1")
                    .bind(hash_token(&token))
                    .fetch_optional(&state.db.pool)
                    .await?;
            let ended = || AppError::Unauthorized("the session has ended; sign in again".into());
            if created.is_none_or(|(t,)| now() - t > crate::session::SESSION_SECS) {
                return Err(ended());
            }
            return user_for_token(&state.db, &token).await?.ok_or_else(ended);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthorized("expected `Authorization: Bearer <token>`".into())
            })?;
        user_for_token(&state.db, token)
            .await?
            .ok_or_else(|| AppError::Unauthorized("invalid or revoked token".into()))
    }
}
