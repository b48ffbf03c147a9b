//! Database access through sqlx's `Any` driver, so one binary serves SQLite (default, a file in
//! the data directory) and PostgreSQL (`DATABASE_URL=postgres://...`).
//!
//! Queries use `$1` placeholders (both drivers accept them) and only the types `Any` can carry:
//! `TEXT`, 64-bit integers and doubles. Ids are random text made here; times are Unix seconds.

use std::path::Path;
use std::str::FromStr;

use rand::RngCore;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

/// Migrations for SQLite, embedded at compile time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
/// Migrations for PostgreSQL, embedded at compile time.
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl DbKind {
    /// The name used in `/health` and logs.
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names a database we do not support.
    #[error("unsupported DATABASE_URL `{0}`: use postgres://... or sqlite://...")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the {kind} database: {source}")]
    Connect {
        /// Which database.
        kind: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The connection pool and what it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The pool.
    pub pool: AnyPool,
    /// SQLite or PostgreSQL.
    pub kind: DbKind,
}

/// The default SQLite URL for a data directory (created on first use).
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("genecompass.db").display()
    )
}

impl Db {
    /// Connects to `url` (`sqlite://...` or `postgres://...`); does not migrate.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbKind::Postgres
        } else if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            let shown = url.split('@').next_back().unwrap_or(url);
            return Err(DbError::UnsupportedUrl(shown.to_string()));
        };
        // SQLite allows one writer at a time: a small pool keeps `database is locked` rare
        // (sqlx sets a 5 s busy timeout).
        let max = if kind == DbKind::Sqlite { 4 } else { 10 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(url)
            .await
            .map_err(|source| DbError::Connect {
                kind: kind.name(),
                source,
            })?;
        Ok(Self { pool, kind })
    }

    /// Applies pending migrations of this database's dialect.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.kind {
            DbKind::Sqlite => &SQLITE_MIGRATIONS,
            DbKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new random id with a readable prefix, e.g. `ds_3f9a...` (16 hex digits, 64 random bits).
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// A role in a team; each one includes the rights of those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the team.
    Viewer,
    /// Also uploads datasets and records results.
    Editor,
    /// Also imports checkpoints and moves aliases.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: use viewer, editor or admin"
            )),
        }
    }
}
