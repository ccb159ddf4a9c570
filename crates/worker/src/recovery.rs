//! The recovery sweep: PostgreSQL knows every unfinished case, so a case whose job was lost
//! (Redis flushed or restarted, a push that failed, a worker killed mid-batch) is found there and
//! queued again. Duplicate jobs are harmless: a claim lets only one worker run a case, and the
//! result write completes a case once.

use std::time::Duration;

use mole_jobs::{AnalyseCase, JobQueue};
use mole_storage::{Actor, Store};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often finished jobs are removed from Redis, and how old they must be.
const VACUUM_EVERY: Duration = Duration::from_secs(300);
const VACUUM_OLDER_THAN: Duration = Duration::from_secs(3600);

/// When the sweep runs and what it considers lost.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryConfig {
    /// Time between sweeps.
    pub every: Duration,
    /// A queued case whose job was pushed longer ago than this is pushed again.
    pub requeue_after: Duration,
    /// Most cases pushed again per sweep.
    pub limit: i64,
}

/// Runs one sweep; returns how many cases were queued again.
pub async fn sweep_once(
    store: &Store,
    queue: &JobQueue,
    config: &RecoveryConfig,
) -> Result<usize, mole_storage::StorageError> {
    let stranded = store
        .requeue_stranded(
            config.requeue_after,
            config.limit,
            &Actor::system("recovery"),
        )
        .await?;
    for case in &stranded {
        let job = AnalyseCase {
            case_id: case.id,
            request_id: case.request_id.clone(),
        };
        match queue.push(job).await {
            Ok(()) => {
                info!(case_id = %case.id, request_id = %case.request_id, "lost job queued again")
            }
            // The case stays queued; the next sweep after `requeue_after` tries again.
            Err(e) => warn!(case_id = %case.id, error = %e, "could not queue a lost job again"),
        }
    }
    metrics::counter!("mole_requeued_total").increment(stranded.len() as u64);
    Ok(stranded.len())
}

/// Queues every unfinished case again, held or not (the embedded mode's one process, at start:
/// the process before it died with its jobs and claims). Returns how many.
pub async fn take_over_unfinished(
    store: &Store,
    queue: &JobQueue,
) -> Result<usize, mole_storage::StorageError> {
    // One pass: a case queued again here is itself unfinished, so a second pass would take it
    // again.
    let cases = store
        .requeue_unfinished(i64::MAX, &Actor::system("start"))
        .await?;
    let taken = cases.len();
    for case in cases {
        let job = AnalyseCase {
            case_id: case.id,
            request_id: case.request_id,
        };
        if let Err(e) = queue.push(job).await {
            warn!(error = %e, "could not queue an unfinished case again");
        }
    }
    Ok(taken)
}

/// Sweeps every `config.every` until `shutdown`.
pub async fn run(
    store: Store,
    queue: JobQueue,
    config: RecoveryConfig,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_vacuum = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&store, &queue, &config).await {
            warn!(error = %e, "recovery sweep failed");
        }
        if last_vacuum.elapsed() >= VACUUM_EVERY {
            last_vacuum = tokio::time::Instant::now();
            match queue.vacuum(VACUUM_OLDER_THAN).await {
                Ok(n) if n > 0 => info!(removed = n, "forgot finished jobs in Redis"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "vacuuming the queue failed"),
            }
        }
    }
}
