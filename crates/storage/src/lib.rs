//! mole's storage: cases, their images, predictions and the append-only audit trail, clinic
//! staff (accounts, sessions, sign-in throttling) and their reviews — in PostgreSQL (the scaled
//! mode: many web and worker processes) or in one SQLite file (the embedded mode: one process).
//!
//! The database is the source of truth. The queue only carries case ids; whether a case still
//! needs work is decided here (`claim`, `requeue_stranded`), so a lost job costs time, never a
//! case. Every state change writes a [`CaseEvent`] in the same transaction, and
//! [`Store::listener`] hears it once committed: PostgreSQL announces it by a trigger on the
//! [`CASE_EVENTS_CHANNEL`] channel; in SQLite the one process that writes tells its listeners.
//!
//! [`Store`] is the one storage interface; each method runs on either database. Most statements
//! are written once, with the few differences marked as [`dialect`] tokens; where the two
//! databases need different statements, both are written side by side in that method.

mod clinic;
pub mod dialect;
mod export;
mod model;
mod person;
mod queries;
mod staff;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::watch;

pub use clinic::*;
pub use dialect::Dialect;
pub use export::*;
pub use model::*;
pub use person::*;
pub use queries::CaseSignal;
pub use staff::*;

/// PostgreSQL's migrations (`migrations/postgres/`), embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// SQLite's migrations (`migrations/sqlite/`), embedded in the binary.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The NOTIFY channel on which every state change of a case is announced (PostgreSQL).
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
    /// The operation needs the other database.
    #[error("not available here: {0}")]
    Unsupported(&'static str),
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
                        // SQLite: busy (another process holds the write lock past the
                        // timeout), locked.
                        | "5" | "6" | "261" | "517" | "773"
                    )
                }),
                _ => false,
            },
            Self::Migrate(_) | Self::Corrupt(_) | Self::Unsupported(_) => false,
        }
    }
}

/// How to connect to the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum pooled connections (SQLite: readers; it always has one writer besides).
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

/// Handle to mole's database. Cheap to clone (connection pools).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

/// The store's database; [`on_db!`] and the methods with per-database statements match on it.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Postgres(PgPool),
    Sqlite(Arc<Lite>),
}

/// An SQLite database: one writer connection (SQLite writes one transaction at a time; queuing
/// them here instead of in SQLite's lock keeps every write free of "database is locked"), a
/// pool of readers (WAL lets them read beside the writer), and the signal that something was
/// written, which wakes the listeners.
#[derive(Debug)]
pub(crate) struct Lite {
    writer: SqlitePool,
    reader: SqlitePool,
    written: watch::Sender<u64>,
    path: PathBuf,
}

/// Runs `$body` with `$pool` bound to the store's pool (SQLite: the reader pool for `read`, the
/// writer for `write`) and `$d` to its [`Dialect`]. The body is compiled once per database, so
/// the same code serves both.
macro_rules! on_db {
    ($store:expr, $access:ident, |$pool:ident, $d:ident| $body:expr) => {
        match $store.db() {
            $crate::Db::Postgres(pool) => {
                let $pool = pool;
                #[allow(unused_variables)]
                let $d = $crate::Dialect::Postgres;
                $body
            }
            $crate::Db::Sqlite(lite) => {
                let $pool = lite.$access();
                #[allow(unused_variables)]
                let $d = $crate::Dialect::Sqlite;
                $body
            }
        }
    };
}
pub(crate) use on_db;

impl Lite {
    /// The pool for reads.
    pub(crate) fn read(&self) -> &SqlitePool {
        &self.reader
    }
    /// The pool for writes (one connection).
    pub(crate) fn write(&self) -> &SqlitePool {
        &self.writer
    }
}

impl Store {
    /// Connects a pool to PostgreSQL at `url` (`postgres://…`, TLS per the URL's `sslmode`); see
    /// [`Store::open_sqlite`] for SQLite.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self {
            db: Db::Postgres(pool),
        })
    }

    /// Opens (creating it when missing) the SQLite database at `path`. Its migrations are not
    /// applied here: call [`Store::migrate`].
    pub async fn open_sqlite(path: &Path, options: &StoreOptions) -> Result<Self, StorageError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL: a commit survives a crash of the process; a power cut may lose
            // the last commits but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let (written, _) = watch::channel(0u64);
        let signal = written.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout.max(Duration::from_secs(30)))
            // The writer comes back after its statement or transaction ended: whatever it
            // committed is visible to readers now.
            .after_release(move |_, _| {
                signal.send_modify(|n| *n = n.wrapping_add(1));
                Box::pin(async { Ok(true) })
            })
            .connect_with(connect.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(Self {
            db: Db::Sqlite(Arc::new(Lite {
                writer,
                reader,
                written,
                path: path.to_owned(),
            })),
        })
    }

    /// Wraps an existing PostgreSQL pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            db: Db::Postgres(pool),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The PostgreSQL pool (`None` for SQLite): for tests that reach under the interface.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// The SQLite writer pool (`None` for PostgreSQL): for tests that reach under the interface.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Postgres(_) => None,
            Db::Sqlite(lite) => Some(&lite.writer),
        }
    }

    /// Where the data lives, for logs: the SQLite file, or "PostgreSQL".
    pub fn describe(&self) -> String {
        match &self.db {
            Db::Postgres(_) => "PostgreSQL".to_owned(),
            Db::Sqlite(lite) => format!("SQLite {}", lite.path.display()),
        }
    }

    /// Connections open and idle, over all pools (for /metrics).
    pub fn pool_usage(&self) -> (u32, usize) {
        match &self.db {
            Db::Postgres(pool) => (pool.size(), pool.num_idle()),
            Db::Sqlite(lite) => (
                lite.writer.size() + lite.reader.size(),
                lite.writer.num_idle() + lite.reader.num_idle(),
            ),
        }
    }

    /// Applies pending migrations (safe to run from several processes at once: sqlx takes an
    /// advisory lock in PostgreSQL; SQLite's one writer serialises them).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match &self.db {
            Db::Postgres(pool) => MIGRATOR.run(pool).await?,
            Db::Sqlite(lite) => SQLITE_MIGRATOR.run(&lite.writer).await?,
        }
        Ok(())
    }

    /// The migrations this store's database takes.
    pub fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match &self.db {
            Db::Postgres(_) => &MIGRATOR,
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        on_db!(self, read, |pool, d| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// A listener that hears every state change of a case committed from now on.
    pub async fn listener(&self) -> Result<CaseListener, StorageError> {
        match &self.db {
            Db::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CASE_EVENTS_CHANNEL).await?;
                Ok(CaseListener::Postgres(Box::new(listener)))
            }
            Db::Sqlite(lite) => Ok(CaseListener::Sqlite {
                reader: lite.reader.clone(),
                written: lite.written.subscribe(),
                after: self.latest_event_id().await?,
                heard: std::collections::VecDeque::new(),
            }),
        }
    }

    /// The id of the latest case event committed so far (0 when there is none).
    pub async fn latest_event_id(&self) -> Result<i64, StorageError> {
        on_db!(self, read, |pool, d| Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM case_events")
                .fetch_one(pool)
                .await?
                .unwrap_or(0)
        ))
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        match &self.db {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(lite) => {
                lite.reader.close().await;
                lite.writer.close().await;
            }
        }
    }
}

/// Hears the case events committed after it was made (see [`Store::listener`]).
pub enum CaseListener {
    /// PostgreSQL's LISTEN on [`CASE_EVENTS_CHANNEL`].
    Postgres(Box<PgListener>),
    /// SQLite: woken by every write of this process, reads the events after the last one heard.
    Sqlite {
        /// The pool read from.
        reader: SqlitePool,
        /// Bumped after every write.
        written: watch::Receiver<u64>,
        /// The last event id heard.
        after: i64,
        /// Events read, not yet handed out.
        heard: std::collections::VecDeque<CaseSignal>,
    },
}

impl CaseListener {
    /// The next event (views are not announced); `Ok(None)` when the listener lost its
    /// connection and must be made again (events may have been missed meanwhile).
    pub async fn recv(&mut self) -> Result<Option<CaseSignal>, StorageError> {
        match self {
            Self::Postgres(listener) => loop {
                match listener.try_recv().await? {
                    None => return Ok(None),
                    Some(n) => match CaseSignal::parse(n.payload()) {
                        Some(signal) => return Ok(Some(signal)),
                        None => tracing::warn!(payload = n.payload(), "unreadable case event"),
                    },
                }
            },
            Self::Sqlite {
                reader,
                written,
                after,
                heard,
            } => loop {
                if let Some(signal) = heard.pop_front() {
                    return Ok(Some(signal));
                }
                // Marked seen before reading: a write after this read wakes the next wait.
                written.mark_unchanged();
                let rows: Vec<(i64, uuid::Uuid, String)> = sqlx::query_as(
                    "SELECT id, case_id, kind FROM case_events                      WHERE id > $1 AND kind <> 'viewed' ORDER BY id LIMIT 1000",
                )
                .bind(*after)
                .fetch_all(&*reader)
                .await?;
                if let Some((last, _, _)) = rows.last() {
                    *after = *last;
                    heard.extend(
                        rows.into_iter()
                            .map(|(event_id, case_id, kind)| CaseSignal {
                                case_id,
                                kind,
                                event_id,
                            }),
                    );
                    continue;
                }
                if written.changed().await.is_err() {
                    return Ok(None);
                }
            },
        }
    }
}
