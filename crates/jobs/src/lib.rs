//! The job that carries a case from the web process to a worker, and the Redis queue it travels
//! on (apalis + apalis-redis).
//!
//! Both sides name the queue explicitly (apalis would otherwise derive it from the job type's
//! Rust path), and workers poll on a short tokio interval (see [`TickStrategy`]) because
//! apalis-redis 1.0 puts every push in its scheduled set, which an idle worker otherwise only
//! looks at on its next heartbeat (30 s).

pub mod config;
pub mod telemetry;

use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{BackendExt, PollSnapshot, PollStrategy, PollWith, TaskSink};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The queue name used when none is configured.
pub const DEFAULT_QUEUE: &str = "mole:analyse";

/// The job: analyse one stored case. Only the id travels; everything else is read from the
/// database, which stays the source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyseCase {
    /// The case to analyse.
    pub case_id: Uuid,
    /// The HTTP request that created the case, so the worker's logs can be joined to it.
    pub request_id: String,
}

/// A worker's latest self-check: a real forward pass on its inference thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// The worker's unique name.
    pub worker: String,
    /// `name@version` of its model.
    pub model_version: String,
    /// Whether the forward pass succeeded.
    pub ok: bool,
    /// Its duration in milliseconds (when it succeeded).
    pub forward_ms: Option<f64>,
    /// Its error (when it failed).
    pub error: Option<String>,
    /// When it ran, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached or refused a command.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// apalis failed to push a job.
    #[error("could not push the job: {0}")]
    Push(String),
}

/// The Redis storage type both sides use.
pub type Storage = RedisStorage<AnalyseCase>;

/// The storage a worker consumes, polled on a [`TickStrategy`].
pub type WorkerStorage = PollWith<Storage, TickStrategy>;

/// Connects to Redis (`redis://` or `rediss://`; add `#insecure` to skip certificate checks, as
/// Heroku's self-signed Redis needs). The connection manager reconnects by itself.
pub async fn connect(redis_url: &str) -> Result<ConnectionManager, QueueError> {
    Ok(apalis_redis::connect(redis_url).await?)
}

/// apalis-redis configuration for `queue`.
pub fn queue_config(queue: &str) -> Config {
    Config::default()
        .queue(queue)
        // Our jobs last milliseconds; the Postgres lease, not Redis, protects a running case.
        .heartbeat_interval(Duration::from_secs(10))
}

/// The producing side of the queue (the web process, the recovery sweep). Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobQueue {
    storage: Storage,
    conn: ConnectionManager,
    queue: String,
}

impl JobQueue {
    /// A producer for `queue` over an existing connection.
    pub fn new(conn: ConnectionManager, queue: &str) -> Self {
        let storage = RedisStorage::new(conn.clone()).with_config(queue_config(queue));
        Self {
            storage,
            conn,
            queue: queue.to_owned(),
        }
    }

    /// Connects and returns a producer for `queue`.
    pub async fn connect(redis_url: &str, queue: &str) -> Result<Self, QueueError> {
        Ok(Self::new(connect(redis_url).await?, queue))
    }

    /// The queue's name (also the prefix of all its Redis keys).
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// Pushes a job.
    pub async fn push(&self, job: AnalyseCase) -> Result<(), QueueError> {
        let mut storage = self.storage.clone();
        storage
            .push(job)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Jobs waiting to be picked up (scheduled plus active), for metrics.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let config = self.storage.get_config();
        let mut conn = self.conn.clone();
        let (scheduled, active): (u64, u64) = redis::pipe()
            .cmd("ZCARD")
            .arg(config.scheduled_jobs_set())
            .cmd("LLEN")
            .arg(config.active_jobs_list())
            .query_async(&mut conn)
            .await?;
        Ok(scheduled + active)
    }

    fn health_key(&self) -> String {
        format!("{}:mole:worker-health", self.queue)
    }

    /// Publishes a worker's latest self-check (kept in a Redis hash next to the queue), so web
    /// processes can report the workers' health.
    pub async fn report_worker_health(&self, report: &WorkerHealth) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let value = serde_json::to_string(report).map_err(|e| QueueError::Push(e.to_string()))?;
        redis::cmd("HSET")
            .arg(self.health_key())
            .arg(&report.worker)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a worker's report (at its shutdown).
    pub async fn forget_worker_health(&self, worker: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("HDEL")
            .arg(self.health_key())
            .arg(worker)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Reports of workers seen within `max_age`; older ones are dropped from Redis.
    pub async fn worker_health(&self, max_age: Duration) -> Result<Vec<WorkerHealth>, QueueError> {
        let mut conn = self.conn.clone();
        let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.health_key())
            .query_async(&mut conn)
            .await?;
        let now = unix_millis();
        let mut live = Vec::new();
        for (worker, value) in all {
            match serde_json::from_str::<WorkerHealth>(&value) {
                Ok(report)
                    if now.saturating_sub(report.at_unix_ms) <= max_age.as_millis() as u64 =>
                {
                    live.push(report)
                }
                _ => {
                    let _ = redis::cmd("HDEL")
                        .arg(self.health_key())
                        .arg(&worker)
                        .query_async::<()>(&mut conn)
                        .await;
                }
            }
        }
        live.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(live)
    }

    /// Forgets finished jobs older than `older_than` (their data, metadata and the done list),
    /// which apalis-redis would otherwise keep for ever. PostgreSQL keeps the history that
    /// matters. Returns the number of jobs removed.
    pub async fn vacuum(&self, older_than: Duration) -> Result<usize, QueueError> {
        use apalis_core::backend::Vacuum;
        let mut storage = self.storage.clone();
        let removed = storage
            .vacuum_before(older_than)
            .await
            .map_err(|e| QueueError::Push(format!("vacuum failed: {e}")))?;
        // The done list only feeds apalis' own statistics.
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(storage.get_config().done_jobs_set())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(removed)
    }

    /// The consuming side for a worker: the same queue, polled every `poll_interval`.
    pub fn worker_storage(&self, poll_interval: Duration) -> WorkerStorage {
        RedisStorage::new(self.conn.clone())
            .with_config(queue_config(&self.queue))
            .poll_with_strategy(TickStrategy::new(poll_interval))
    }

    /// A connection for other Redis commands (tests, health checks).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Wakes the worker every `period` to fetch new jobs.
///
/// apalis' own `IntervalStrategy` re-arms its timer without polling it, so no waker is
/// registered and an idle worker can stall until its next heartbeat. This one drains a tokio
/// `Interval` until it returns `Pending`, which always leaves a waker registered.
#[derive(Debug)]
pub struct TickStrategy {
    period: Duration,
    interval: Option<tokio::time::Interval>,
}

impl TickStrategy {
    /// A strategy that wakes the worker every `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            interval: None,
        }
    }
}

impl PollStrategy for TickStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        // Created lazily: the strategy is built outside the runtime, the interval needs one.
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut i = tokio::time::interval(period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut ticked = false;
        while interval.poll_tick(cx).is_ready() {
            ticked = true;
        }
        if ticked {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// A token cancelled on SIGTERM (Heroku, Docker, systemd) or Ctrl-C: the signal for a graceful
/// shutdown. Must be called inside a tokio runtime.
pub fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use apalis::prelude::{PollSnapshot, PollStrategy};

    use super::TickStrategy;

    #[tokio::test]
    async fn the_tick_strategy_wakes_an_idle_worker_again_and_again() {
        let mut strategy = TickStrategy::new(Duration::from_millis(5));
        let snapshot = PollSnapshot::default();
        // Each await only finishes if the previous poll left a waker behind; a strategy that
        // re-arms its timer without registering one (the stall seen with apalis' own interval
        // strategy) hangs here and hits the timeout.
        for _ in 0..5 {
            tokio::time::timeout(
                Duration::from_secs(5),
                poll_fn(|cx| strategy.poll_drive(cx, &snapshot)),
            )
            .await
            .expect("the strategy woke the task");
        }
    }
}
