//! The job that carries a case from the web process to a worker, and the queue it travels on:
//! Redis (apalis + apalis-redis) between processes, or a channel inside the one process of the
//! embedded mode (where the database, not the channel, keeps every unfinished case: see
//! [`JobQueue::local`]).
//!
//! Both sides name the queue explicitly (apalis would otherwise derive it from the job type's
//! Rust path), and workers poll on a short tokio interval (see [`TickStrategy`]) because
//! apalis-redis 1.0 puts every push in its scheduled set, which an idle worker otherwise only
//! looks at on its next heartbeat (30 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{BackendExt, PollSnapshot, PollStrategy, PollWith, TaskSink};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
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
    queue: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Redis {
        storage: Box<Storage>,
        conn: ConnectionManager,
    },
    Local(Arc<Local>),
}

/// The embedded mode's queue: a channel to the worker in the same process. Jobs in it are lost
/// when the process stops, never their cases: the database keeps every unfinished case, and the
/// next start queues them again.
#[derive(Debug)]
struct Local {
    sender: mpsc::UnboundedSender<AnalyseCase>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<AnalyseCase>>>,
    waiting: Arc<AtomicU64>,
    health: Mutex<HashMap<String, WorkerHealth>>,
}

/// The consuming end of a local queue (one worker takes it).
#[derive(Debug)]
pub struct LocalJobs {
    receiver: mpsc::UnboundedReceiver<AnalyseCase>,
    waiting: Arc<AtomicU64>,
}

impl LocalJobs {
    /// The next job; `None` once every producer is gone.
    pub async fn recv(&mut self) -> Option<AnalyseCase> {
        let job = self.receiver.recv().await?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some(job)
    }
}

impl JobQueue {
    /// A producer for `queue` over an existing Redis connection.
    pub fn new(conn: ConnectionManager, queue: &str) -> Self {
        let storage = RedisStorage::new(conn.clone()).with_config(queue_config(queue));
        Self {
            queue: queue.to_owned(),
            inner: Inner::Redis {
                storage: Box::new(storage),
                conn,
            },
        }
    }

    /// Connects to Redis and returns a producer for `queue`.
    pub async fn connect(redis_url: &str, queue: &str) -> Result<Self, QueueError> {
        Ok(Self::new(connect(redis_url).await?, queue))
    }

    /// A queue inside this process (the embedded mode): take its consuming end once with
    /// [`JobQueue::take_local_jobs`].
    pub fn local(queue: &str) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            queue: queue.to_owned(),
            inner: Inner::Local(Arc::new(Local {
                sender,
                receiver: Mutex::new(Some(receiver)),
                waiting: Arc::new(AtomicU64::new(0)),
                health: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// Whether this is a queue inside this process.
    pub fn is_local(&self) -> bool {
        matches!(self.inner, Inner::Local(_))
    }

    /// The consuming end of a local queue; `None` for Redis, or when it was taken already.
    pub fn take_local_jobs(&self) -> Option<LocalJobs> {
        match &self.inner {
            Inner::Local(local) => {
                local
                    .receiver
                    .lock()
                    .expect("local queue")
                    .take()
                    .map(|receiver| LocalJobs {
                        receiver,
                        waiting: local.waiting.clone(),
                    })
            }
            Inner::Redis { .. } => None,
        }
    }

    /// The queue's name (also the prefix of all its Redis keys).
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// Pushes a job.
    pub async fn push(&self, job: AnalyseCase) -> Result<(), QueueError> {
        match &self.inner {
            Inner::Redis { storage, .. } => {
                let mut storage = Storage::clone(storage);
                storage
                    .push(job)
                    .await
                    .map_err(|e| QueueError::Push(e.to_string()))
            }
            Inner::Local(local) => {
                local.waiting.fetch_add(1, Ordering::Relaxed);
                local.sender.send(job).map_err(|_| {
                    local.waiting.fetch_sub(1, Ordering::Relaxed);
                    QueueError::Push("the worker has stopped".to_owned())
                })
            }
        }
    }

    /// Checks that Redis answers (a local queue always does).
    pub async fn ping(&self) -> Result<(), QueueError> {
        match &self.inner {
            Inner::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
                Ok(())
            }
            Inner::Local(_) => Ok(()),
        }
    }

    /// Jobs waiting to be picked up (scheduled plus active), for metrics.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match &self.inner {
            Inner::Redis { storage, conn } => {
                let config = storage.get_config();
                let mut conn = conn.clone();
                let (scheduled, active): (u64, u64) = redis::pipe()
                    .cmd("ZCARD")
                    .arg(config.scheduled_jobs_set())
                    .cmd("LLEN")
                    .arg(config.active_jobs_list())
                    .query_async(&mut conn)
                    .await?;
                Ok(scheduled + active)
            }
            Inner::Local(local) => Ok(local.waiting.load(Ordering::Relaxed)),
        }
    }

    fn health_key(&self) -> String {
        format!("{}:mole:worker-health", self.queue)
    }

    /// Publishes a worker's latest self-check (kept in a Redis hash next to the queue, or in
    /// this process), so web processes can report the workers' health.
    pub async fn report_worker_health(&self, report: &WorkerHealth) -> Result<(), QueueError> {
        match &self.inner {
            Inner::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let value =
                    serde_json::to_string(report).map_err(|e| QueueError::Push(e.to_string()))?;
                redis::cmd("HSET")
                    .arg(self.health_key())
                    .arg(&report.worker)
                    .arg(value)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Inner::Local(local) => {
                local
                    .health
                    .lock()
                    .expect("worker health")
                    .insert(report.worker.clone(), report.clone());
            }
        }
        Ok(())
    }

    /// Removes a worker's report (at its shutdown).
    pub async fn forget_worker_health(&self, worker: &str) -> Result<(), QueueError> {
        match &self.inner {
            Inner::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("HDEL")
                    .arg(self.health_key())
                    .arg(worker)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Inner::Local(local) => {
                local.health.lock().expect("worker health").remove(worker);
            }
        }
        Ok(())
    }

    /// Reports of workers seen within `max_age`; older ones are dropped.
    pub async fn worker_health(&self, max_age: Duration) -> Result<Vec<WorkerHealth>, QueueError> {
        let now = unix_millis();
        let fresh = |report: &WorkerHealth| {
            now.saturating_sub(report.at_unix_ms) <= max_age.as_millis() as u64
        };
        let mut live = Vec::new();
        match &self.inner {
            Inner::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let all: HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(self.health_key())
                    .query_async(&mut conn)
                    .await?;
                for (worker, value) in all {
                    match serde_json::from_str::<WorkerHealth>(&value) {
                        Ok(report) if fresh(&report) => live.push(report),
                        _ => {
                            let _ = redis::cmd("HDEL")
                                .arg(self.health_key())
                                .arg(&worker)
                                .query_async::<()>(&mut conn)
                                .await;
                        }
                    }
                }
            }
            Inner::Local(local) => {
                let mut health = local.health.lock().expect("worker health");
                health.retain(|_, report| fresh(report));
                live.extend(health.values().cloned());
            }
        }
        live.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(live)
    }

    /// Forgets finished jobs older than `older_than` (their data, metadata and the done list),
    /// which apalis-redis would otherwise keep for ever. The database keeps the history that
    /// matters. Returns the number of jobs removed (a local queue keeps none).
    pub async fn vacuum(&self, older_than: Duration) -> Result<usize, QueueError> {
        use apalis_core::backend::Vacuum;
        let Inner::Redis { storage, conn } = &self.inner else {
            return Ok(0);
        };
        let mut storage = Storage::clone(storage);
        let removed = storage
            .vacuum_before(older_than)
            .await
            .map_err(|e| QueueError::Push(format!("vacuum failed: {e}")))?;
        // The done list only feeds apalis' own statistics.
        let mut conn = conn.clone();
        redis::cmd("DEL")
            .arg(storage.get_config().done_jobs_set())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(removed)
    }

    /// The consuming side for a worker: the same Redis queue, polled every `poll_interval`
    /// (`None` for a local queue: see [`JobQueue::take_local_jobs`]).
    pub fn worker_storage(&self, poll_interval: Duration) -> Option<WorkerStorage> {
        match &self.inner {
            Inner::Redis { conn, .. } => Some(
                RedisStorage::new(conn.clone())
                    .with_config(queue_config(&self.queue))
                    .poll_with_strategy(TickStrategy::new(poll_interval)),
            ),
            Inner::Local(_) => None,
        }
    }

    /// A connection for other Redis commands (tests, health checks); `None` for a local queue.
    pub fn connection(&self) -> Option<ConnectionManager> {
        match &self.inner {
            Inner::Redis { conn, .. } => Some(conn.clone()),
            Inner::Local(_) => None,
        }
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
