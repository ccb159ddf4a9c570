//! The dynamic batcher: jobs hand their preprocessed image to one inference thread, which runs
//! every image that waited while the model was busy as the next batch (up to `max_batch`).
//!
//! There is no timer: a lone job runs at once, and batches grow by themselves under load (the
//! design of text-embeddings-inference's queue). The model never runs on a tokio thread. A
//! second task writes each batch's results back in one transaction while the next batch runs,
//! then answers every job of the batch.
//!
//! Occlusion maps (what the model looked at) are asked for after a case's verdict is written and
//! run only once the model has had no verdict to run for [`MAP_IDLE`]: a map is `grid² + 1` copies
//! of the view, run [`MAP_CHUNK_ROWS`] at a time, and it pauses as soon as anything is asked of the
//! model, so a map delays a verdict by at most one small chunk; it goes on where it paused at the
//! next idle moment. Under load (verdicts closer together than [`MAP_IDLE`]) no map runs, so maps
//! never take CPU from verdicts, nor from the web process, the database or other workers on the
//! same machine. At most [`MAP_BACKLOG`] maps wait; beyond that the oldest is dropped (the case
//! keeps its verdict without a map).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mole_inference::{
    Classifier, InferenceError, MapProgress, OcclusionMap, Prediction, Preprocessed,
};
use mole_storage::{
    Analysis, ClassProbability, Completion, CompletionOutcome, NewPrediction, NewRefusal, Store,
};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use uuid::Uuid;

/// One case waiting for the model.
#[derive(Debug)]
pub struct BatchItem {
    /// The case.
    pub case_id: Uuid,
    /// When the case was stored (for its queue time).
    pub created_at: DateTime<Utc>,
    /// Its preprocessed image.
    pub image: Preprocessed,
}

/// Copies of the image an occlusion map runs at once between checks for waiting verdicts.
const MAP_CHUNK_ROWS: usize = 2;

/// Occlusion maps waiting for an idle model, at most.
pub const MAP_BACKLOG: usize = 64;

/// How long the model must have had no verdict to run before a map starts or goes on.
pub const MAP_IDLE: Duration = Duration::from_millis(250);

/// A done case whose occlusion map is wanted.
#[derive(Debug)]
pub struct MapItem {
    /// The case.
    pub case_id: Uuid,
    /// Its preprocessed image (width and height of the photo, not of the view).
    pub image: Preprocessed,
}

/// Why a batched case did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The forward pass failed for the whole batch.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The results could not be written (after retries).
    #[error("writing the results failed: {message}")]
    Write {
        /// The storage error.
        message: String,
        /// Whether it may pass by itself.
        transient: bool,
    },
    /// The batcher is shutting down or its thread died.
    #[error("the inference thread is gone")]
    Closed,
}

/// The answer to one submitted case.
#[derive(Debug, Clone, Copy)]
pub struct BatchOutcome {
    /// Whether this write completed the case (or it was already finished/deleted).
    pub outcome: CompletionOutcome,
    /// Whether the model judged the photo (false: it refused it).
    pub diagnosed: bool,
    /// Cases in its forward pass.
    pub batch_size: usize,
}

/// Where a case's outcome goes back to its job handler.
type Reply = oneshot::Sender<Result<BatchOutcome, BatchError>>;

enum Message {
    Item(BatchItem, Reply),
    /// A health probe: one real forward pass on the inference thread.
    Probe(oneshot::Sender<Result<Duration, String>>),
    /// An occlusion map to draw when nothing more urgent waits.
    Map(MapItem),
}

/// What the inference thread hands to the writer.
enum Done {
    Batch(Finished),
    Map {
        case_id: Uuid,
        result: Result<OcclusionMap, String>,
        elapsed: Duration,
    },
}

struct Finished {
    /// Case id, when it was queued, where its outcome goes.
    items: Vec<(Uuid, DateTime<Utc>, Reply)>,
    result: Result<Vec<Prediction>, String>,
    started: DateTime<Utc>,
    elapsed: Duration,
}

/// Handle to the batcher; cheap to clone. The inference thread stops when every handle is
/// dropped, after finishing the batch it is running.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Message>,
}

/// What the batcher needs to run.
pub struct BatcherConfig {
    /// Most cases per forward pass.
    pub max_batch: usize,
    /// Name written as the actor of completions.
    pub worker_name: String,
    /// Cells per side of the occlusion map drawn after each verdict; 0: no maps.
    pub occlusion_grid: usize,
    /// Fault injection for tests: the inference thread panics after this many batches.
    pub panic_after_batches: Option<usize>,
}

/// Joins the batcher's thread and writer task at shutdown.
pub struct BatcherTasks {
    thread: thread::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
    died: CancellationToken,
}

impl BatcherTasks {
    /// Cancelled if the inference thread ends by a panic outside the model (a bug in its loop):
    /// from then on every submitted case fails with [`BatchError::Closed`].
    pub fn died(&self) -> CancellationToken {
        self.died.clone()
    }

    /// Waits until the last batch is run and written (call after dropping every [`Batcher`]).
    pub async fn join(self) {
        let thread = self.thread;
        if let Err(e) = tokio::task::spawn_blocking(move || thread.join()).await {
            error!(error = %e, "joining the inference thread failed");
        }
        if let Err(e) = self.writer.await {
            error!(error = %e, "the result writer failed");
        }
    }
}

impl Batcher {
    /// Starts the inference thread and the result writer. Must be called inside a tokio runtime.
    pub fn spawn(
        classifier: Arc<Classifier>,
        store: Store,
        config: BatcherConfig,
    ) -> std::io::Result<(Self, BatcherTasks)> {
        // Bounded: when the model falls behind, jobs wait here (and apalis stops fetching once
        // its concurrency is used up) instead of piling up in memory.
        let (tx, rx) = mpsc::channel::<Message>(config.max_batch * 4);
        let (done_tx, done_rx) = mpsc::channel::<Done>(4);
        let max_batch = config.max_batch;
        let grid = config.occlusion_grid;
        let model_classifier = classifier.clone();
        // The inference thread waits on the channel with a timeout through the runtime's timers.
        let runtime = tokio::runtime::Handle::current();
        let died = CancellationToken::new();
        let panic_after = config.panic_after_batches;
        let thread = thread::Builder::new()
            .name("mole-inference".to_owned())
            .spawn({
                let died = died.clone();
                move || {
                    let run = || {
                        inference_loop(
                            model_classifier,
                            rx,
                            done_tx,
                            max_batch,
                            grid,
                            runtime,
                            panic_after,
                        )
                    };
                    if catch_unwind(AssertUnwindSafe(run)).is_err() {
                        error!("the inference thread panicked");
                        died.cancel();
                    }
                }
            })?;
        let writer = tokio::spawn(write_loop(classifier, store, config.worker_name, done_rx));
        Ok((
            Self { tx },
            BatcherTasks {
                thread,
                writer,
                died,
            },
        ))
    }

    /// Queues a case for the next batch and waits until its result is written.
    pub async fn submit(&self, item: BatchItem) -> Result<BatchOutcome, BatchError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Item(item, reply))
            .await
            .map_err(|_| BatchError::Closed)?;
        answer.await.map_err(|_| BatchError::Closed)?
    }

    /// Asks for a done case's occlusion map, drawn and written when the model is idle. Returns
    /// false when the batcher's queue is full (no map for this case) or it is shutting down.
    pub fn request_map(&self, item: MapItem) -> bool {
        self.tx.try_send(Message::Map(item)).is_ok()
    }

    /// Runs one real forward pass on the inference thread (a health check); returns its time.
    pub async fn probe(&self) -> Result<Duration, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Probe(reply))
            .await
            .map_err(|_| BatchError::Closed.to_string())?;
        answer.await.map_err(|_| BatchError::Closed.to_string())?
    }
}

fn inference_loop(
    classifier: Arc<Classifier>,
    mut rx: mpsc::Receiver<Message>,
    done: mpsc::Sender<Done>,
    max_batch: usize,
    grid: usize,
    runtime: tokio::runtime::Handle,
    panic_after_batches: Option<usize>,
) {
    let mut batches = 0usize;
    let mut maps: VecDeque<(MapItem, MapProgress)> = VecDeque::new();
    // When the model last ran verdicts (maps wait until it has been idle for MAP_IDLE).
    let mut last_verdicts = Instant::now();
    loop {
        let first = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) if maps.is_empty() => match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            },
            Err(TryRecvError::Empty) => {
                let idle = last_verdicts.elapsed();
                if idle < MAP_IDLE {
                    // Not idle long enough for a map: wait for work or the rest of the while.
                    // (The timer is made inside the runtime: built out here it would panic.)
                    let wait = runtime
                        .block_on(async { tokio::time::timeout(MAP_IDLE - idle, rx.recv()).await });
                    match wait {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(_) => continue,
                    }
                } else {
                    let (item, mut progress) = maps.pop_front().expect("a map waits");
                    let clock = Instant::now();
                    // A few copies at a time, pausing as soon as a verdict is asked for: a map
                    // never holds a new case back by more than one small chunk.
                    let drawn = guarded(|| {
                        classifier.occlusion_while(
                            &item.image,
                            grid,
                            MAP_CHUNK_ROWS,
                            &mut progress,
                            || rx.is_empty(),
                        )
                    });
                    let result = match drawn {
                        Ok(Some(map)) => Ok(map),
                        Ok(None) => {
                            // Paused: it goes on from here at the next idle moment.
                            metrics::counter!("mole_occlusion_interrupted_total").increment(1);
                            maps.push_front((item, progress));
                            continue;
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let elapsed = clock.elapsed();
                    metrics::histogram!("mole_occlusion_seconds").record(elapsed.as_secs_f64());
                    let map = Done::Map {
                        case_id: item.case_id,
                        result,
                        elapsed,
                    };
                    if done.blocking_send(map).is_err() {
                        error!("the result writer is gone; stopping the inference thread");
                        break;
                    }
                    continue;
                }
            }
        };
        let mut items = Vec::new();
        let mut images = Vec::new();
        let mut probes = Vec::new();
        let mut take = |m: Message, items: &mut Vec<_>, images: &mut Vec<Preprocessed>| match m {
            Message::Item(item, reply) => {
                items.push((item.case_id, item.created_at, reply));
                images.push(item.image);
            }
            Message::Probe(reply) => probes.push(reply),
            Message::Map(item) => {
                if grid == 0 {
                    return;
                }
                if maps.len() >= MAP_BACKLOG {
                    maps.pop_front();
                    metrics::counter!("mole_occlusion_dropped_total").increment(1);
                }
                maps.push_back((item, MapProgress::default()));
            }
        };
        take(first, &mut items, &mut images);
        // Everything that queued up while the previous batch ran forms this batch.
        while images.len() < max_batch {
            match rx.try_recv() {
                Ok(m) => take(m, &mut items, &mut images),
                Err(_) => break,
            }
        }
        for reply in probes {
            let started = Instant::now();
            let result = guarded(|| classifier.warm_up())
                .map(|()| started.elapsed())
                .map_err(|e| e.to_string());
            let _ = reply.send(result);
        }
        if items.is_empty() {
            continue;
        }
        let started = Utc::now();
        let clock = Instant::now();
        let result = guarded(|| classifier.predict(&images)).map_err(|e| e.to_string());
        let elapsed = clock.elapsed();
        last_verdicts = Instant::now();
        metrics::histogram!("mole_batch_size").record(items.len() as f64);
        metrics::histogram!("mole_inference_seconds").record(elapsed.as_secs_f64());
        debug!(
            batch = items.len(),
            ms = elapsed.as_millis() as u64,
            "batch ran"
        );
        let finished = Finished {
            items,
            result,
            started,
            elapsed,
        };
        if done.blocking_send(Done::Batch(finished)).is_err() {
            error!("the result writer is gone; stopping the inference thread");
            break;
        }
        batches += 1;
        if panic_after_batches == Some(batches) {
            panic!("fault injection: the inference thread panics after {batches} batches");
        }
    }
    if !maps.is_empty() {
        debug!(maps = maps.len(), "occlusion maps not drawn at shutdown");
    }
    debug!("inference thread stopped");
}

/// Runs `f`, turning a panic in the model into an error so one bad batch cannot kill the thread.
fn guarded<T>(f: impl FnOnce() -> Result<T, InferenceError>) -> Result<T, InferenceError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(InferenceError::Backend {
                backend: "tract",
                reason: format!("panicked: {what}"),
            })
        }
    }
}

/// Turns the model's answer into what is stored: a refusal when the card's limits refuse the photo
/// (its probabilities are then not a diagnosis and are not kept), else the prediction.
pub fn to_analysis(classifier: &Classifier, p: &Prediction) -> Analysis {
    match (p.refusal, classifier.card().refusal.as_ref()) {
        (Some(reason), Some(spec)) => {
            metrics::counter!("mole_refusals_total", "reason" => reason.as_str()).increment(1);
            Analysis::Refusal(NewRefusal {
                model_version: p.model_version.clone(),
                reason: reason.as_str().to_owned(),
                detail: serde_json::json!({
                    "signals": p.signals,
                    "limits": {
                        "min_side": spec.min_side,
                        "ood_max": spec.ood_max,
                        "luma_min": spec.luma_min,
                        "luma_max": spec.luma_max,
                        "sharpness_min": spec.sharpness_min,
                    },
                }),
            })
        }
        _ => Analysis::Diagnosis(to_new_prediction(classifier, p)),
    }
}

/// Turns the model's answer into the stored form, with the card's class names.
pub fn to_new_prediction(classifier: &Classifier, p: &Prediction) -> NewPrediction {
    let card = classifier.card();
    let classes = card
        .classes
        .iter()
        .zip(&p.probabilities)
        .map(|(c, &probability)| ClassProbability {
            code: c.code.clone(),
            name: c.name.clone(),
            malignant: c.malignant,
            probability,
        })
        .collect();
    NewPrediction {
        model_version: p.model_version.clone(),
        verdict: p.verdict.as_str().to_owned(),
        p_malignant: p.p_malignant,
        threshold: card.threshold,
        top_class: card
            .classes
            .get(p.top_class)
            .map(|c| c.code.clone())
            .unwrap_or_default(),
        classes,
    }
}

const WRITE_ATTEMPTS: u32 = 5;

async fn write_loop(
    classifier: Arc<Classifier>,
    store: Store,
    worker_name: String,
    mut done: mpsc::Receiver<Done>,
) {
    while let Some(done) = done.recv().await {
        match done {
            Done::Batch(finished) => {
                write_batch(&classifier, &store, &worker_name, finished).await;
            }
            Done::Map {
                case_id,
                result,
                elapsed,
            } => {
                write_map(&classifier, &store, &worker_name, case_id, result, elapsed).await;
            }
        }
    }
    debug!("result writer stopped");
}

async fn write_map(
    classifier: &Classifier,
    store: &Store,
    worker_name: &str,
    case_id: Uuid,
    result: Result<OcclusionMap, String>,
    elapsed: Duration,
) {
    let map = match result {
        Ok(map) => map,
        Err(message) => {
            warn!(%case_id, error = %message, "the occlusion map could not be drawn");
            return;
        }
    };
    let json = serde_json::to_value(&map).expect("an occlusion map serialises");
    match store
        .save_explanation(case_id, worker_name, &classifier.model_version(), &json)
        .await
    {
        Ok(true) => debug!(%case_id, ms = elapsed.as_millis() as u64, "occlusion map written"),
        Ok(false) => debug!(%case_id, "occlusion map not written: the case changed meanwhile"),
        Err(e) => warn!(%case_id, error = %e, "writing the occlusion map failed"),
    }
}

async fn write_batch(
    classifier: &Classifier,
    store: &Store,
    worker_name: &str,
    finished: Finished,
) {
    let batch_size = finished.items.len();
    let predictions = match finished.result {
        Ok(p) => p,
        Err(message) => {
            warn!(batch = batch_size, error = %message, "forward pass failed");
            for (_, _, reply) in finished.items {
                let _ = reply.send(Err(BatchError::Inference(message.clone())));
            }
            return;
        }
    };
    let inference_ms = finished.elapsed.as_millis().min(i32::MAX as u128) as i32;
    let completions: Vec<Completion> = finished
        .items
        .iter()
        .zip(&predictions)
        .map(|((case_id, created_at, _), p)| {
            let waited = (finished.started - *created_at).num_milliseconds().max(0);
            metrics::histogram!("mole_queue_wait_seconds").record(waited as f64 / 1000.0);
            Completion {
                case_id: *case_id,
                worker: worker_name.to_owned(),
                analysis: to_analysis(classifier, p),
                queue_ms: waited.min(i64::from(i32::MAX)) as i32,
                inference_ms,
                batch_size: batch_size as i32,
            }
        })
        .collect();
    let result = write_with_retry(store, &completions).await;
    match result {
        Ok(outcomes) => {
            for (((_, _, reply), outcome), c) in
                finished.items.into_iter().zip(outcomes).zip(&completions)
            {
                let _ = reply.send(Ok(BatchOutcome {
                    outcome,
                    diagnosed: matches!(c.analysis, Analysis::Diagnosis(_)),
                    batch_size,
                }));
            }
        }
        Err(e) => {
            for (_, _, reply) in finished.items {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

async fn write_with_retry(
    store: &Store,
    completions: &[Completion],
) -> Result<Vec<CompletionOutcome>, BatchError> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        match store.complete_batch(completions).await {
            Ok(outcomes) => {
                metrics::histogram!("mole_result_write_seconds")
                    .record(started.elapsed().as_secs_f64());
                return Ok(outcomes);
            }
            Err(e) if e.is_transient() && attempt < WRITE_ATTEMPTS => {
                warn!(error = %e, attempt, "writing a batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => {
                error!(error = %e, attempt, "writing a batch failed");
                return Err(BatchError::Write {
                    message: e.to_string(),
                    transient: e.is_transient(),
                });
            }
        }
    }
}
