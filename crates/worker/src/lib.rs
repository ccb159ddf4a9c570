//! `mole worker`: takes analysis jobs from the Redis queue, batches them dynamically through the
//! model, and writes results back to PostgreSQL. Run as many as you like; each has a unique name.
//!
//! Flow per job: claim the case (a lease in PostgreSQL) → preprocess the image on a blocking
//! thread → [`batcher`] (one inference thread, batches form while the model is busy) → results of
//! a batch written in one transaction → the web processes hear of it through LISTEN/NOTIFY.

pub mod batcher;
pub mod handler;
pub mod recovery;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mole_inference::{Classifier, ClassifierConfig};
use mole_jobs::JobQueue;
use mole_runtime::Backends;
use mole_runtime::ConnectionArgs;
use mole_storage::Store;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::batcher::{Batcher, BatcherConfig};
use crate::handler::JobContext;
use crate::recovery::RecoveryConfig;

/// Settings of `mole worker` (flags or environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Database and queue.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Model card of the model to serve.
    #[arg(long, env = "MOLE_MODEL", default_value_os_t = mole_inference::default_card())]
    pub model: PathBuf,

    /// Most cases in one forward pass.
    #[arg(long, env = "MOLE_MAX_BATCH", default_value_t = 16)]
    pub max_batch: usize,

    /// Jobs this worker holds at once (waiting for the model or being written); at least
    /// MOLE_MAX_BATCH so a full batch can form.
    #[arg(long, env = "MOLE_WORKER_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,

    /// CPU threads one forward pass may use.
    #[arg(long, env = "MOLE_INFERENCE_THREADS", default_value_t = 1)]
    pub inference_threads: usize,

    /// The inference backend: `tract` (pure Rust, builds anywhere) or `ort` (onnxruntime; needs a
    /// build with the `ort` feature and `ORT_DYLIB_PATH` pointing at libonnxruntime).
    #[arg(long, env = "MOLE_BACKEND", default_value = "tract", value_parser = parse_backend)]
    pub backend: mole_inference::BackendKind,

    /// Test-time augmentation: average the model's probabilities over 6 flips and rotations of
    /// each photo, all in the batch's one forward pass (6 times the compute per case). Off by
    /// default: on mole-v2 it gained little on the test split and nothing on validation
    /// (BENCHMARKS.md, "Test-time augmentation").
    #[arg(long, env = "MOLE_TTA", default_value_t = false, action = clap::ArgAction::Set)]
    pub tta: bool,

    /// Cells per side of the occlusion map (what the model looked at) drawn after each verdict,
    /// when the model has no verdict to give; 0 turns maps off. A map costs one forward pass
    /// over grid² + 1 images (BENCHMARKS.md, "Occlusion maps").
    #[arg(long, env = "MOLE_OCCLUSION_GRID", default_value_t = 5)]
    pub occlusion_grid: usize,

    /// How often an idle worker looks for new jobs, in milliseconds.
    #[arg(long, env = "MOLE_POLL_INTERVAL_MS", default_value_t = 20)]
    pub poll_interval_ms: u64,

    /// How long a worker's claim on a case holds, in seconds; after that another worker may
    /// take the case over (the first one is presumed dead).
    #[arg(long, env = "MOLE_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,

    /// A queued case whose job was not picked up within this many seconds is queued again
    /// (its job was lost).
    #[arg(long, env = "MOLE_REQUEUE_AFTER_SECS", default_value_t = 60)]
    pub requeue_after_secs: u64,

    /// Seconds between recovery sweeps.
    #[arg(long, env = "MOLE_SWEEP_INTERVAL_SECS", default_value_t = 10)]
    pub sweep_interval_secs: u64,

    /// Claims after which a case that never finishes is failed.
    #[arg(long, env = "MOLE_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: i32,

    /// Port for the worker's /healthz and /metrics (off when unset).
    #[arg(long, env = "MOLE_WORKER_PORT")]
    pub http_port: Option<u16>,

    /// Prefix of the worker's name; a unique suffix is always added.
    #[arg(long, env = "MOLE_WORKER_NAME", default_value = "worker")]
    pub name: String,

    /// Fault injection for tests only (no flag, no environment variable): the inference thread
    /// panics after this many batches, as a bug in its loop would.
    #[doc(hidden)]
    #[arg(skip)]
    pub fault_panic_after_batches: Option<usize>,
}

impl WorkerArgs {
    /// Checks the settings before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.connection.validate().map_err(anyhow::Error::msg)?;
        if !(1..=256).contains(&self.max_batch) {
            bail!(
                "MOLE_MAX_BATCH must be within 1..=256, got {}",
                self.max_batch
            );
        }
        if self.concurrency < self.max_batch {
            bail!(
                "MOLE_WORKER_CONCURRENCY ({}) must be at least MOLE_MAX_BATCH ({}), or batches \
                 can never fill",
                self.concurrency,
                self.max_batch
            );
        }
        if !(1..=64).contains(&self.inference_threads) {
            bail!(
                "MOLE_INFERENCE_THREADS must be within 1..=64, got {}",
                self.inference_threads
            );
        }
        if !(1..=10_000).contains(&self.poll_interval_ms) {
            bail!(
                "MOLE_POLL_INTERVAL_MS must be within 1..=10000, got {}",
                self.poll_interval_ms
            );
        }
        if self.lease_secs == 0 || self.requeue_after_secs == 0 || self.sweep_interval_secs == 0 {
            bail!(
                "MOLE_LEASE_SECS, MOLE_REQUEUE_AFTER_SECS and MOLE_SWEEP_INTERVAL_SECS must be > 0"
            );
        }
        if self.max_attempts < 1 {
            bail!("MOLE_MAX_ATTEMPTS must be at least 1");
        }
        if self.occlusion_grid > 16 {
            bail!(
                "MOLE_OCCLUSION_GRID must be within 0..=16 (0: no maps), got {}",
                self.occlusion_grid
            );
        }
        if !self.model.is_file() {
            bail!(
                "MOLE_MODEL {} is not a file (the model card, e.g. {})",
                self.model.display(),
                mole_inference::DEFAULT_CARD
            );
        }
        Ok(())
    }
}

/// A unique worker name: apalis refuses a restarted worker under a name still marked active.
fn unique_name(prefix: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("DYNO"))
        .unwrap_or_else(|_| "local".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{host}-{}-{}", std::process::id(), &random[..8])
}

#[derive(Clone)]
struct HealthState {
    store: Store,
    queue: JobQueue,
    batcher: Batcher,
    worker_name: String,
    model_version: String,
}

/// Runs a worker of the scaled mode (`mole worker`: PostgreSQL and Redis) until `shutdown` is
/// cancelled, then finishes the jobs in hand (the current batch included) and returns.
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    args.validate()?;
    args.connection
        .require_scaled("mole worker")
        .map_err(anyhow::Error::msg)?;
    let backends = Backends::connect_as_server(&args.connection).await?;
    let store = backends.store.clone();
    let result = run_with(args, backends, shutdown).await;
    store.close().await;
    result
}

/// [`run`] on backends made by the caller, who closes them (the embedded mode's one process
/// shares them with its web server). With a queue inside this process (the embedded mode), the
/// worker first takes over every unfinished case: the process before it is gone with its jobs.
pub async fn run_with(
    args: WorkerArgs,
    backends: Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    args.validate()?;
    // Install the metrics recorder before anything records.
    mole_runtime::telemetry::prometheus();
    let worker_name = unique_name(&args.name);
    info!(config = ?args, worker = %worker_name, "starting worker");

    let classifier_config = ClassifierConfig {
        backend: args.backend,
        threads: args.inference_threads,
        max_batch: args.max_batch,
        tta: args.tta,
        ..ClassifierConfig::default()
    };
    let model_path = args.model.clone();
    let classifier = tokio::task::spawn_blocking(move || {
        let classifier = Classifier::load(&model_path, classifier_config)?;
        // A real forward pass before taking jobs: a broken model fails here, not on a case.
        classifier.warm_up()?;
        // tract builds one optimised plan per batch size (BENCHMARKS.md: 3-4x faster than one
        // symbolic plan); build them now, so that the first batches do not wait for it.
        let sizes: Vec<usize> = (1..=classifier.config().max_batch).collect();
        classifier.prepare_batch_sizes(&sizes)?;
        Ok::<_, mole_inference::InferenceError>(classifier)
    })
    .await
    .context("loading the model panicked")?
    .with_context(|| format!("loading the model {}", args.model.display()))?;
    let classifier = Arc::new(classifier);
    info!(model = %classifier.model_version(), backend = classifier.backend_name(), "model ready");

    let Backends { store, queue, .. } = backends;
    let local_jobs = queue.take_local_jobs();
    if local_jobs.is_some() {
        let taken = recovery::take_over_unfinished(&store, &queue).await?;
        if taken > 0 {
            info!(
                cases = taken,
                "queued the unfinished cases of the previous run again"
            );
        }
    }

    let (batcher, batcher_tasks) = Batcher::spawn(
        classifier.clone(),
        store.clone(),
        BatcherConfig {
            max_batch: args.max_batch,
            worker_name: worker_name.clone(),
            occlusion_grid: args.occlusion_grid,
            panic_after_batches: args.fault_panic_after_batches,
        },
    )
    .context("starting the inference thread")?;

    let background = CancellationToken::new();
    // A worker whose inference thread died can only fail its jobs: it stops taking them and exits
    // with an error, so that its process manager starts a fresh one (cases in hand go back to the
    // queue, or to the recovery sweep).
    let died = batcher_tasks.died();
    tokio::spawn({
        let (died, shutdown, background) = (died.clone(), shutdown.clone(), background.clone());
        async move {
            tokio::select! {
                _ = died.cancelled() => {
                    error!("the inference thread died; the worker stops so that it can be restarted");
                    shutdown.cancel();
                }
                _ = background.cancelled() => {}
            }
        }
    });
    let recovery = tokio::spawn(recovery::run(
        store.clone(),
        queue.clone(),
        RecoveryConfig {
            every: Duration::from_secs(args.sweep_interval_secs),
            requeue_after: Duration::from_secs(args.requeue_after_secs),
            limit: 500,
        },
        background.clone(),
    ));

    let reporter = tokio::spawn(report_health(
        queue.clone(),
        batcher.clone(),
        worker_name.clone(),
        classifier.model_version(),
        background.clone(),
    ));

    let http = match args.http_port {
        Some(port) => {
            let state = HealthState {
                store: store.clone(),
                queue: queue.clone(),
                batcher: batcher.clone(),
                worker_name: worker_name.clone(),
                model_version: classifier.model_version(),
            };
            Some(spawn_http(port, state, background.clone()).await?)
        }
        None => None,
    };

    let context = Arc::new(JobContext {
        store: store.clone(),
        classifier,
        batcher,
        worker_name: worker_name.clone(),
        lease: Duration::from_secs(args.lease_secs),
        max_attempts: args.max_attempts,
        transient_retries: 3,
        occlusion_maps: args.occlusion_grid > 0,
        preprocess_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
    });

    match local_jobs {
        Some(jobs) => run_local(jobs, context.clone(), args.concurrency, shutdown.clone()).await,
        None => {
            // apalis ends a worker when Redis fails under it; start a fresh one (with a fresh name)
            // until we are asked to stop.
            let mut restarts = 0u32;
            loop {
                let apalis_name = format!("{worker_name}-{restarts}");
                let storage = queue
                    .worker_storage(Duration::from_millis(args.poll_interval_ms))
                    .context("a worker needs a Redis queue or a local one")?;
                let worker = WorkerBuilder::new(apalis_name.as_str())
                    .backend(storage)
                    .data(context.clone())
                    .concurrency(args.concurrency)
                    .build(handler::analyse);
                let stop = shutdown.clone();
                let result = worker
                    .run_until(async move {
                        stop.cancelled().await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await;
                if shutdown.is_cancelled() {
                    if let Err(e) = result {
                        warn!(error = %e, "worker stopped with an error during shutdown");
                    }
                    break;
                }
                restarts += 1;
                let wait = Duration::from_secs(u64::from(restarts.min(5)));
                match result {
                    Ok(()) => warn!(?wait, "the queue worker stopped; starting a new one"),
                    Err(e) => {
                        error!(error = %e, ?wait, "the queue worker failed; starting a new one")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    info!("finishing the jobs in hand");
    // The apalis worker has finished its in-flight jobs; dropping the last batcher handle lets
    // the inference thread end after its current batch and the writer flush it.
    // Every other holder (health reporter, health endpoint) stops with `background`.
    drop(context);
    background.cancel();
    let _ = reporter.await;
    if let Some(http) = http {
        let _ = http.await;
    }
    batcher_tasks.join().await;
    let _ = recovery.await;
    if let Err(e) = queue.forget_worker_health(&worker_name).await {
        warn!(error = %e, "could not remove the worker's health report");
    }
    if died.is_cancelled() {
        anyhow::bail!("the inference thread died (see the log above); the worker stopped");
    }
    info!("worker stopped");
    Ok(())
}

/// Runs jobs from a queue inside this process until `shutdown`, at most `concurrency` at once,
/// through the same handler as a Redis worker's; then waits for the jobs in hand.
async fn run_local(
    mut jobs: mole_jobs::LocalJobs,
    context: Arc<JobContext>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let job = tokio::select! {
            _ = shutdown.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let context = context.clone();
        running.spawn(async move {
            // Errors are logged and counted by the handler; the case stays in the database.
            let _ = handler::analyse(job, apalis::prelude::Data::new(context)).await;
            drop(slot);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

fn parse_backend(s: &str) -> Result<mole_inference::BackendKind, String> {
    let kind: mole_inference::BackendKind = s.parse().map_err(|e| format!("{e}"))?;
    if !kind.is_available() {
        return Err(format!(
            "the {kind} backend is not in this build (build with `--features ort`)"
        ));
    }
    Ok(kind)
}

/// How often a worker checks itself (a forward pass) and reports to Redis for `/healthz`.
const HEALTH_REPORT_EVERY: Duration = Duration::from_secs(10);

async fn report_health(
    queue: JobQueue,
    batcher: Batcher,
    worker_name: String,
    model_version: String,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEALTH_REPORT_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = tokio::time::timeout(Duration::from_secs(10), batcher.probe())
            .await
            .unwrap_or_else(|_| Err("the forward pass took longer than 10 s".to_owned()));
        let report = mole_jobs::WorkerHealth {
            worker: worker_name.clone(),
            model_version: model_version.clone(),
            ok: probe.is_ok(),
            forward_ms: probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            error: probe.err(),
            at_unix_ms: mole_jobs::unix_millis(),
        };
        if let Err(e) = queue.report_worker_health(&report).await {
            warn!(error = %e, "cannot report the worker's health");
        }
    }
}

async fn spawn_http(
    port: u16,
    state: HealthState,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("binding the worker's health port {port}"))?;
    info!(addr = %listener.local_addr()?, "worker health endpoint listening");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            error!(error = %e, "worker health endpoint failed");
        }
    }))
}

/// Database, Redis and a real forward pass on the inference thread; 503 if any fails.
async fn healthz(State(state): State<HealthState>) -> impl IntoResponse {
    // What works is shown; why something does not goes to the log only.
    let database = state
        .store
        .ping()
        .await
        .map_err(|e| warn!(error = %e, "health check: the database does not answer"));
    let redis = state
        .queue
        .ping()
        .await
        .map_err(|e| warn!(error = %e, "health check: Redis does not answer"));
    let model = tokio::time::timeout(Duration::from_secs(10), state.batcher.probe())
        .await
        .unwrap_or_else(|_| Err("the forward pass took longer than 10 s".to_owned()));
    let healthy = database.is_ok() && redis.is_ok() && model.is_ok();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "worker": state.worker_name,
        "model_version": state.model_version,
        "database": { "ok": database.is_ok() },
        "redis": { "ok": redis.is_ok() },
        "forward_pass": match &model {
            Ok(d) => serde_json::json!({ "ok": true, "ms": d.as_secs_f64() * 1000.0 }),
            Err(e) => {
                warn!(error = %e, "health check: the forward pass failed");
                serde_json::json!({ "ok": false })
            }
        },
    });
    (status, Json(body))
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    match state.queue.depth().await {
        Ok(depth) => metrics::gauge!("mole_queue_depth").set(depth as f64),
        Err(e) => warn!(error = %e, "cannot read the queue depth"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        mole_runtime::telemetry::prometheus().render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_named_and_one_this_build_lacks_is_refused_at_start() {
        assert_eq!(
            parse_backend("tract"),
            Ok(mole_inference::BackendKind::Tract)
        );
        assert!(parse_backend("gpu").is_err());
        let ort = parse_backend("ort");
        assert_eq!(
            ort.is_ok(),
            mole_inference::BackendKind::Ort.is_available(),
            "{ort:?}"
        );
    }
}
