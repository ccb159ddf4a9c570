//! Where a mole process keeps its data and finds its queue, shared by `mole`, `mole serve` and
//! `mole worker`: PostgreSQL and Redis (the scaled mode) when both URLs are given, one SQLite file
//! in a data directory (the embedded mode) when neither is.

use std::fmt;
use std::path::PathBuf;

use crate::telemetry::redact_url;

/// Connection settings. Heroku's `DATABASE_URL` and `REDIS_URL` (including `rediss://`) work as
/// they come; with neither, the process runs embedded on `MOLE_DATA_DIR`.
#[derive(Clone, clap::Args)]
pub struct ConnectionArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/mole (the scaled mode; give
    /// REDIS_URL too). Without both, mole runs embedded on a SQLite file in MOLE_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis URL for the job queue: redis://host:6379 or rediss://… (TLS). Append `#insecure` to
    /// accept a self-signed certificate (Heroku Redis).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Where the embedded mode keeps its SQLite file (created when missing).
    #[arg(long, env = "MOLE_DATA_DIR", default_value = "mole-data")]
    pub data_dir: PathBuf,

    /// Name of the job queue (the prefix of its Redis keys); web and workers must agree.
    #[arg(long, env = "MOLE_QUEUE", default_value = mole_jobs::DEFAULT_QUEUE)]
    pub queue: String,

    /// Most database connections this process opens (SQLite: readers, besides its one writer).
    #[arg(long, env = "MOLE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// Which backends the settings name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// PostgreSQL and Redis: any number of web and worker processes.
    Scaled {
        /// PostgreSQL URL.
        database_url: String,
        /// Redis URL.
        redis_url: String,
    },
    /// One process (web and worker) on one SQLite file in `data_dir`.
    Embedded {
        /// The data directory.
        data_dir: PathBuf,
    },
}

impl ConnectionArgs {
    /// Settings for the scaled mode (tests, tools).
    pub fn scaled(database_url: &str, redis_url: &str, queue: &str) -> Self {
        Self {
            database_url: Some(database_url.to_owned()),
            redis_url: Some(redis_url.to_owned()),
            data_dir: PathBuf::from("mole-data"),
            queue: queue.to_owned(),
            db_max_connections: 10,
        }
    }

    /// Settings for the embedded mode on `data_dir`.
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            database_url: None,
            redis_url: None,
            data_dir,
            queue: mole_jobs::DEFAULT_QUEUE.to_owned(),
            db_max_connections: 10,
        }
    }

    /// The mode these settings name, checked, with messages that say what to fix.
    pub fn mode(&self) -> Result<Mode, String> {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.trim().is_empty())
        }
        let mode = match (set(&self.database_url), set(&self.redis_url)) {
            (Some(db), Some(redis)) => Mode::Scaled {
                database_url: db.to_owned(),
                redis_url: redis.to_owned(),
            },
            (None, None) => Mode::Embedded {
                data_dir: self.data_dir.clone(),
            },
            (Some(_), None) => {
                return Err(
                    "DATABASE_URL is set but REDIS_URL is not: the scaled mode needs \
                     both (or neither, for the embedded mode on one SQLite file)"
                        .to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "REDIS_URL is set but DATABASE_URL is not: the scaled mode needs \
                     both (or neither, for the embedded mode on one SQLite file)"
                        .to_owned(),
                );
            }
        };
        if let Mode::Scaled {
            database_url,
            redis_url,
        } = &mode
        {
            if !(database_url.starts_with("postgres://")
                || database_url.starts_with("postgresql://"))
            {
                return Err(format!(
                    "DATABASE_URL must be a postgres:// URL, got {:?}",
                    redact_url(database_url)
                ));
            }
            if !(redis_url.starts_with("redis://")
                || redis_url.starts_with("rediss://")
                || redis_url.starts_with("redis+unix://")
                || redis_url.starts_with("unix://"))
            {
                return Err(format!(
                    "REDIS_URL must be a redis:// or rediss:// URL, got {:?}",
                    redact_url(redis_url)
                ));
            }
        }
        if self.queue.trim().is_empty() || self.queue.contains(char::is_whitespace) {
            return Err(format!(
                "MOLE_QUEUE must be a non-empty name without spaces, got {:?}",
                self.queue
            ));
        }
        if self.db_max_connections < 2 {
            return Err(
                "MOLE_DB_MAX_CONNECTIONS must be at least 2 (one is held by LISTEN)".to_owned(),
            );
        }
        Ok(mode)
    }

    /// Checks the values before anything connects.
    pub fn validate(&self) -> Result<(), String> {
        self.mode().map(|_| ())
    }

    /// Checks that these settings name the scaled mode: `what` (a command) needs PostgreSQL and
    /// Redis, because it runs beside other processes.
    pub fn require_scaled(&self, what: &str) -> Result<(), String> {
        match self.mode()? {
            Mode::Scaled { .. } => Ok(()),
            Mode::Embedded { .. } => Err(format!(
                "`{what}` needs DATABASE_URL and REDIS_URL (the scaled mode); with neither, run \
                 `mole` alone: the web server and a worker in one process on a SQLite file"
            )),
        }
    }
}

/// Where the data lives, for the tools that only need the database (`mole migrate`, `mole
/// admin`, `mole export`, `mole import`): PostgreSQL when `DATABASE_URL` is set, else the embedded
/// mode's SQLite file in `MOLE_DATA_DIR`.
#[derive(Clone, clap::Args)]
pub struct StoreArgs {
    /// PostgreSQL URL; without it, the embedded mode's SQLite file in MOLE_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The embedded mode's data directory.
    #[arg(long, env = "MOLE_DATA_DIR", default_value = "mole-data")]
    pub data_dir: PathBuf,
}

impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// Logs without secrets: passwords in the URLs are replaced by `***`.
impl fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("data_dir", &self.data_dir)
            .field("queue", &self.queue)
            .field("db_max_connections", &self.db_max_connections)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str, redis: &str) -> ConnectionArgs {
        ConnectionArgs::scaled(db, redis, mole_jobs::DEFAULT_QUEUE)
    }

    #[test]
    fn heroku_style_urls_are_accepted() {
        assert!(
            args(
                "postgres://u:p@ec2.example.com:5432/d",
                "rediss://:p@ec2.example.com:6380#insecure"
            )
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn a_non_postgres_database_url_is_refused_without_leaking_its_password() {
        let err = args("mysql://u:secret@h/d", "redis://h")
            .validate()
            .unwrap_err();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn a_non_redis_queue_url_is_refused() {
        let err = args("postgres://h/d", "http://h").validate().unwrap_err();
        assert!(err.contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn neither_url_is_the_embedded_mode_and_one_alone_is_refused() {
        let embedded = ConnectionArgs::embedded(PathBuf::from("/tmp/d"));
        assert_eq!(
            embedded.mode(),
            Ok(Mode::Embedded {
                data_dir: PathBuf::from("/tmp/d")
            })
        );
        assert!(embedded.require_scaled("mole worker").is_err());
        let only_db = ConnectionArgs {
            database_url: Some("postgres://h/d".to_owned()),
            ..embedded.clone()
        };
        assert!(only_db.mode().unwrap_err().contains("REDIS_URL is not"));
        let only_redis = ConnectionArgs {
            redis_url: Some("redis://h".to_owned()),
            ..embedded
        };
        assert!(
            only_redis
                .mode()
                .unwrap_err()
                .contains("DATABASE_URL is not")
        );
    }

    #[test]
    fn help_never_shows_the_values_of_the_urls() {
        #[derive(clap::Parser)]
        struct Service {
            #[command(flatten)]
            connection: ConnectionArgs,
        }
        #[derive(clap::Parser)]
        struct Tool {
            #[command(flatten)]
            store: StoreArgs,
        }
        let hidden = |command: clap::Command| -> Vec<bool> {
            command
                .get_arguments()
                .filter(|a| matches!(a.get_id().as_str(), "database_url" | "redis_url"))
                .map(|a| a.is_hide_env_values_set())
                .collect()
        };
        assert_eq!(
            hidden(<Service as clap::CommandFactory>::command()),
            [true, true]
        );
        assert_eq!(hidden(<Tool as clap::CommandFactory>::command()), [true]);
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let shown = format!("{:?}", args("postgres://u:hunter2@h/d", "redis://:pw@h"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
