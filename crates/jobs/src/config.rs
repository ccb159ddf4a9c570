//! Configuration shared by `mole serve` and `mole worker`: where the database and the queue are.

use std::fmt;

use crate::telemetry::redact_url;

/// Connection settings both processes need. Heroku's `DATABASE_URL` and `REDIS_URL` (including
/// `rediss://`) work as they come.
#[derive(Clone, clap::Args)]
pub struct ConnectionArgs {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/mole (the source of truth).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Redis URL for the job queue: redis://host:6379 or rediss://… (TLS). Append `#insecure` to
    /// accept a self-signed certificate (Heroku Redis).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,

    /// Name of the job queue (the prefix of its Redis keys); web and workers must agree.
    #[arg(long, env = "MOLE_QUEUE", default_value = crate::DEFAULT_QUEUE)]
    pub queue: String,

    /// Most PostgreSQL connections this process opens.
    #[arg(long, env = "MOLE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

impl ConnectionArgs {
    /// Checks the values before anything connects, with messages that say what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let db = self.database_url.as_str();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(format!(
                "DATABASE_URL must be a postgres:// URL, got {:?}",
                redact_url(db)
            ));
        }
        let redis = self.redis_url.as_str();
        if !(redis.starts_with("redis://")
            || redis.starts_with("rediss://")
            || redis.starts_with("redis+unix://")
            || redis.starts_with("unix://"))
        {
            return Err(format!(
                "REDIS_URL must be a redis:// or rediss:// URL, got {:?}",
                redact_url(redis)
            ));
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
        Ok(())
    }
}

/// Logs without secrets: passwords in the URLs are replaced by `***`.
impl fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("queue", &self.queue)
            .field("db_max_connections", &self.db_max_connections)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str, redis: &str) -> ConnectionArgs {
        ConnectionArgs {
            database_url: db.to_owned(),
            redis_url: redis.to_owned(),
            queue: crate::DEFAULT_QUEUE.to_owned(),
            db_max_connections: 10,
        }
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
    fn debug_output_redacts_passwords() {
        let shown = format!("{:?}", args("postgres://u:hunter2@h/d", "redis://:pw@h"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
