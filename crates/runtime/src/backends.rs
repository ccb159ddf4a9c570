//! Backends from configuration: the one place where a process turns its settings into the
//! database (its store and live-update listener) and the job queue, for either mode.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use mole_jobs::JobQueue;
use mole_storage::{Store, StoreOptions};

use crate::config::{ConnectionArgs, Mode, StoreArgs};

/// The SQLite file's name in the embedded mode's data directory.
pub const DATABASE_FILE: &str = "mole.db";
/// The file whose lock says which process serves a data directory.
const LOCK_FILE: &str = "mole.lock";

/// What a process works with: the store (cases, and the listener of their changes) and the job
/// queue. Cheap to clone; the web server and the worker of one process share one.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The database.
    pub store: Store,
    /// The job queue.
    pub queue: JobQueue,
    mode: Mode,
    /// Held while this process serves an embedded data directory.
    _lock: Option<Arc<File>>,
}

impl Backends {
    /// Connects to what `args` name and applies pending migrations: PostgreSQL and Redis, or
    /// the embedded mode's SQLite file (created with its directory when missing) and a queue
    /// inside this process. For tools (`mole admin`, `mole migrate`, exports): several may open
    /// an embedded file beside the process that serves it.
    pub async fn connect(args: &ConnectionArgs) -> anyhow::Result<Self> {
        Self::open(args, false).await
    }

    /// [`Backends::connect`] for the process that serves: in the embedded mode it must be the
    /// only one (its worker takes over every unfinished case at start), so it locks the data
    /// directory and refuses to start when another process holds it.
    pub async fn connect_as_server(args: &ConnectionArgs) -> anyhow::Result<Self> {
        Self::open(args, true).await
    }

    async fn open(args: &ConnectionArgs, serve: bool) -> anyhow::Result<Self> {
        let mode = args.mode().map_err(anyhow::Error::msg)?;
        let options = StoreOptions {
            max_connections: args.db_max_connections,
            ..StoreOptions::default()
        };
        let (store, queue, lock) = match &mode {
            Mode::Scaled {
                database_url,
                redis_url,
            } => {
                let store = Store::connect(database_url, &options)
                    .await
                    .context("connecting to PostgreSQL")?;
                store.migrate().await.context("applying migrations")?;
                let queue = JobQueue::connect(redis_url, &args.queue)
                    .await
                    .context("connecting to Redis")?;
                (store, queue, None)
            }
            Mode::Embedded { data_dir } => {
                create_data_dir(data_dir)?;
                let lock = if serve {
                    Some(Arc::new(lock_data_dir(data_dir)?))
                } else {
                    None
                };
                let store = open_embedded(data_dir, &options).await?;
                (store, JobQueue::local(&args.queue), lock)
            }
        };
        Ok(Self {
            store,
            queue,
            mode,
            _lock: lock,
        })
    }

    /// The mode these backends run in.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Whether this is the embedded mode (one process, one SQLite file).
    pub fn is_embedded(&self) -> bool {
        matches!(self.mode, Mode::Embedded { .. })
    }

    /// The embedded mode's SQLite file.
    pub fn database_file(&self) -> Option<PathBuf> {
        match &self.mode {
            Mode::Embedded { data_dir } => Some(data_dir.join(DATABASE_FILE)),
            Mode::Scaled { .. } => None,
        }
    }
}

impl StoreArgs {
    /// Opens the store these settings name and applies pending migrations.
    pub async fn open(&self) -> anyhow::Result<Store> {
        match self
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => {
                let store = Store::connect(url, &StoreOptions::default())
                    .await
                    .context("connecting to PostgreSQL")?;
                store.migrate().await.context("applying migrations")?;
                Ok(store)
            }
            None => {
                create_data_dir(&self.data_dir)?;
                open_embedded(&self.data_dir, &StoreOptions::default()).await
            }
        }
    }
}

fn create_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))
}

async fn open_embedded(data_dir: &Path, options: &StoreOptions) -> anyhow::Result<Store> {
    let path = data_dir.join(DATABASE_FILE);
    let store = Store::open_sqlite(&path, options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another mole process is serving {}: stop it first (one process serves an embedded \
             data directory)",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}
