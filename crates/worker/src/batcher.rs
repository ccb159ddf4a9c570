//! The dynamic batcher: jobs hand their preprocessed image to one inference thread, which runs
//! every image that waited while the model was busy as the next batch (up to `max_batch`).
//!
//! There is no timer: a lone job runs at once, and batches grow by themselves under load (the
//! design of text-embeddings-inference's queue). The model never runs on a tokio thread. A
//! second task writes each batch's results back in one transaction while the next batch runs,
//! then answers every job of the batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mole_inference::{Classifier, InferenceError, Prediction, Preprocessed};
use mole_storage::{ClassProbability, Completion, CompletionOutcome, NewPrediction, Store};
use tokio::sync::{mpsc, oneshot};
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
    /// Cases in its forward pass.
    pub batch_size: usize,
}

/// Where a case's outcome goes back to its job handler.
type Reply = oneshot::Sender<Result<BatchOutcome, BatchError>>;

enum Message {
    Item(BatchItem, Reply),
    /// A health probe: one real forward pass on the inference thread.
    Probe(oneshot::Sender<Result<Duration, String>>),
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
}

/// Joins the batcher's thread and writer task at shutdown.
pub struct BatcherTasks {
    thread: thread::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl BatcherTasks {
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
        let (done_tx, done_rx) = mpsc::channel::<Finished>(4);
        let max_batch = config.max_batch;
        let model_classifier = classifier.clone();
        let thread = thread::Builder::new()
            .name("mole-inference".to_owned())
            .spawn(move || inference_loop(model_classifier, rx, done_tx, max_batch))?;
        let writer = tokio::spawn(write_loop(classifier, store, config.worker_name, done_rx));
        Ok((Self { tx }, BatcherTasks { thread, writer }))
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
    done: mpsc::Sender<Finished>,
    max_batch: usize,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut items = Vec::new();
        let mut images = Vec::new();
        let mut probes = Vec::new();
        let mut take = |m: Message, items: &mut Vec<_>, images: &mut Vec<Preprocessed>| match m {
            Message::Item(item, reply) => {
                items.push((item.case_id, item.created_at, reply));
                images.push(item.image);
            }
            Message::Probe(reply) => probes.push(reply),
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
        if done.blocking_send(finished).is_err() {
            error!("the result writer is gone; stopping the inference thread");
            break;
        }
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
    mut done: mpsc::Receiver<Finished>,
) {
    while let Some(finished) = done.recv().await {
        let batch_size = finished.items.len();
        let predictions = match finished.result {
            Ok(p) => p,
            Err(message) => {
                warn!(batch = batch_size, error = %message, "forward pass failed");
                for (_, _, reply) in finished.items {
                    let _ = reply.send(Err(BatchError::Inference(message.clone())));
                }
                continue;
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
                    worker: worker_name.clone(),
                    prediction: to_new_prediction(&classifier, p),
                    queue_ms: waited.min(i64::from(i32::MAX)) as i32,
                    inference_ms,
                    batch_size: batch_size as i32,
                }
            })
            .collect();
        let result = write_with_retry(&store, &completions).await;
        match result {
            Ok(outcomes) => {
                for ((_, _, reply), outcome) in finished.items.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(BatchOutcome {
                        outcome,
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
    debug!("result writer stopped");
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
