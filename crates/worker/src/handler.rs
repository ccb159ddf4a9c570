//! What a worker does with one job: claim the case in PostgreSQL, preprocess its image off the
//! async runtime, hand it to the batcher, and sort errors into final and transient ones.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use mole_inference::Classifier;
use mole_jobs::AnalyseCase;
use mole_storage::{Actor, Claim, CompletionOutcome, SkipReason, StorageError, Store};
use tracing::{Instrument, info, info_span, warn};

use crate::batcher::{BatchError, BatchItem, Batcher, MapItem};

/// Everything a job needs, shared by all jobs of a worker process.
pub struct JobContext {
    /// The database.
    pub store: Store,
    /// The model (preprocessing only here; forward passes run on the batcher's thread).
    pub classifier: Arc<Classifier>,
    /// The batcher.
    pub batcher: Batcher,
    /// This process's unique name (claims and audit events).
    pub worker_name: String,
    /// How long a claim holds before another worker may take the case over.
    pub lease: Duration,
    /// Claims after which a case is failed instead of tried again.
    pub max_attempts: i32,
    /// In-handler retries of a transient error before the job goes back to the queue.
    pub transient_retries: u32,
    /// Whether to ask for an occlusion map once a case's verdict is written.
    pub occlusion_maps: bool,
    /// Images decoded at once. Jobs in hand (`MOLE_WORKER_CONCURRENCY`) may be many; decoding a
    /// full photo (when no model view was stored for this model) takes tens of megabytes, so
    /// only this many run at once: the worker's memory stays bounded whatever the concurrency.
    pub preprocess_slots: tokio::sync::Semaphore,
}

/// How a job ended (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The case is done (this job wrote it).
    Done,
    /// The job found nothing to do (finished, deleted, held by another worker, or a duplicate).
    Skipped,
    /// The image is bad: the case failed with the reason.
    Rejected,
    /// The case was claimed too often: failed.
    GaveUp,
}

impl JobOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Skipped => "skipped",
            Self::Rejected => "rejected",
            Self::GaveUp => "gave_up",
        }
    }
}

/// A job that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The model or the batcher failed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// Preprocessing failed for a reason that is not the image's fault, or its task died.
    #[error("preprocessing failed: {0}")]
    Preprocess(String),
}

impl JobError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Storage(e) => e.is_transient(),
            Self::Batch(BatchError::Write { transient, .. }) => *transient,
            // A failed forward pass on a valid image is our fault and usually passes (memory,
            // a restarted thread); `max_attempts` bounds the retries if it does not.
            Self::Batch(BatchError::Inference(_) | BatchError::Closed) => true,
            Self::Preprocess(_) => true,
        }
    }
}

/// The apalis handler: one job, instrumented with the case and request ids.
pub async fn analyse(job: AnalyseCase, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let span = info_span!(
        "job",
        case_id = %job.case_id,
        request_id = %job.request_id,
        worker = %ctx.worker_name
    );
    let ctx: Arc<JobContext> = (*ctx).clone();
    async move {
        match run_with_retries(&ctx, &job).await {
            Ok(outcome) => {
                metrics::counter!("mole_jobs_total", "outcome" => outcome.label()).increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("mole_jobs_total", "outcome" => "error").increment(1);
                Err(Box::new(e) as BoxDynError)
            }
        }
    }
    .instrument(span)
    .await
}

async fn run_with_retries(ctx: &JobContext, job: &AnalyseCase) -> Result<JobOutcome, JobError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match process(ctx, job).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if e.is_transient() => {
                // Give the case back so the next try (ours, a retried job, or the recovery
                // sweep) can claim it at once rather than after the lease.
                if let Err(release) = ctx
                    .store
                    .release_for_retry(job.case_id, &ctx.worker_name, &e.to_string())
                    .await
                {
                    warn!(error = %release, "could not release the case after an error");
                }
                if attempt > ctx.transient_retries {
                    warn!(error = %e, attempt, "transient error; the job goes back to the queue");
                    return Err(e);
                }
                warn!(error = %e, attempt, ?delay, "transient error; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                // Not the image's fault and not transient: fail the case with an honest reason
                // rather than leave it queued for ever.
                warn!(error = %e, "permanent error; failing the case");
                let failed = ctx
                    .store
                    .fail_case(
                        job.case_id,
                        &Actor::worker(&ctx.worker_name),
                        "internal_error",
                        "the analysis failed on our side; please try again later",
                    )
                    .await?;
                return Ok(if failed {
                    JobOutcome::Rejected
                } else {
                    JobOutcome::Skipped
                });
            }
        }
    }
}

async fn process(ctx: &JobContext, job: &AnalyseCase) -> Result<JobOutcome, JobError> {
    let claim = ctx
        .store
        .claim(
            job.case_id,
            &ctx.worker_name,
            ctx.lease,
            ctx.max_attempts,
            Some(ctx.classifier.card().input_size()),
        )
        .await?;
    let (case, image, photo_size) = match claim {
        Claim::Claimed {
            case,
            image,
            photo_size,
        } => (case, image, photo_size),
        Claim::Skip(reason) => {
            info!(?reason, "nothing to do");
            if reason == SkipReason::Missing {
                warn!("the job names an unknown case");
            }
            return Ok(JobOutcome::Skipped);
        }
        Claim::GaveUp(case) => {
            warn!(attempts = case.attempts, "gave up on the case");
            return Ok(JobOutcome::GaveUp);
        }
    };
    info!(attempt = case.attempts, "claimed");

    let classifier = ctx.classifier.clone();
    let slot = ctx
        .preprocess_slots
        .acquire()
        .await
        .map_err(|e| JobError::Preprocess(e.to_string()))?;
    let preprocessed = tokio::task::spawn_blocking(move || classifier.preprocess(&image.bytes))
        .await
        .map_err(|e| JobError::Preprocess(e.to_string()))?;
    drop(slot);
    let preprocessed = match preprocessed {
        // The model's view may have been read instead of the photo: the refusal's size check and
        // the occlusion map's placement are about the photo the person sent.
        Ok(mut p) => {
            (p.width, p.height) = photo_size;
            p
        }
        Err(e) if e.is_bad_input() => {
            info!(code = e.code(), reason = %e, "the image cannot be analysed");
            let failed = ctx
                .store
                .fail_claimed(job.case_id, &ctx.worker_name, e.code(), &e.to_string())
                .await?;
            if !failed {
                info!("not failed by us: our claim was taken over, or the case ended meanwhile");
                return Ok(JobOutcome::Skipped);
            }
            return Ok(JobOutcome::Rejected);
        }
        Err(e) => return Err(JobError::Preprocess(e.to_string())),
    };

    let for_map = ctx.occlusion_maps.then(|| preprocessed.clone());
    let outcome = ctx
        .batcher
        .submit(BatchItem {
            case_id: job.case_id,
            created_at: case.created_at,
            image: preprocessed,
        })
        .await?;
    match outcome.outcome {
        CompletionOutcome::Completed => {
            info!(
                batch = outcome.batch_size,
                diagnosed = outcome.diagnosed,
                "done"
            );
            // The verdict is written; the map follows when the model has nothing more urgent.
            if let (Some(image), true) = (for_map, outcome.diagnosed) {
                let case_id = job.case_id;
                if !ctx.batcher.request_map(MapItem { case_id, image }) {
                    info!("no occlusion map: the batcher's queue is full");
                }
            }
            Ok(JobOutcome::Done)
        }
        CompletionOutcome::Skipped => {
            info!("result not written: the case was finished or deleted meanwhile");
            Ok(JobOutcome::Skipped)
        }
        CompletionOutcome::Stale => {
            warn!(
                "result refused: our claim ran out and the case was queued again or taken over; \
                 its current holder completes it"
            );
            Ok(JobOutcome::Skipped)
        }
    }
}
