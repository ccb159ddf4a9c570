//! mole's storage: cases, their images, predictions and the append-only audit trail, clinic
//! staff (accounts, sessions, sign-in throttling) and their reviews, in PostgreSQL.
//!
//! PostgreSQL is the source of truth. The queue only carries case ids; whether a case still needs
//! work is decided here (`claim`, `requeue_stranded`), so a lost job costs time, never a case.
//! Every state change writes a [`CaseEvent`] in the same transaction, and a trigger announces it
//! on the [`CASE_EVENTS_CHANNEL`] channel when the transaction commits.
//!
//! All SQL lives in this crate behind [`Store`], so an embedded SQLite backend can slot in later
//! without touching the web or worker crates.

mod clinic;
mod model;
mod person;
mod queries;
mod staff;
mod synthetic;

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

pub use clinic::*;
pub use model::*;
pub use person::*;
pub use queries::CaseSignal;
pub use staff::*;

/// The migrations in the repository's `migrations/` folder, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The NOTIFY channel on which every state change of a case is announced.
pub const CASE_EVENTS_CHANNEL: &str = "mole_case_events";

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not fit the schema this code expects.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// True for errors that may pass by themselves (connection lost, pool exhausted, database
    /// restarting, serialization conflicts): worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // serialization_failure, deadlock_detected, admin/crash shutdown,
                    // cannot_connect_now, too_many_connections
                    matches!(
                        code.as_ref(),
                        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
                    )
                }),
                _ => false,
            },
            Self::Migrate(_) | Self::Corrupt(_) => false,
        }
    }
}

/// How to connect to the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum pooled connections.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing (a transient error).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Handle to mole's PostgreSQL database. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects a pool to `url` (`postgres://…`, TLS per the URL's `sslmode`).
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool (for tests and health checks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations (safe to run from several processes at once: sqlx takes an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A listener subscribed to [`CASE_EVENTS_CHANNEL`]. Parse payloads with [`CaseSignal::parse`].
    pub async fn listener(&self) -> Result<PgListener, StorageError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CASE_EVENTS_CHANNEL).await?;
        Ok(listener)
    }

    /// The id of the latest case event committed so far (0 when there is none).
    pub async fn latest_event_id(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM case_events")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
