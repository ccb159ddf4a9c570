//! The domain types stored for a case: the case itself, its image, its prediction and its events.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StorageError;

/// Where a case is in its life. Deletion is orthogonal (`Case::deleted_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Stored and waiting for a worker (or for its job to be pushed again).
    Queued,
    /// Claimed by a worker, which holds a lease on it.
    Processing,
    /// A prediction was written.
    Done,
    /// Given up, with a reason shown to the uploader.
    Failed,
    /// The model could not judge the photo (not a lesion, too dark, too blurry...): a final outcome
    /// with a reason and advice, not a failure and not a diagnosis.
    Refused,
}

impl CaseStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    /// True once nothing more will happen to the case's analysis.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Refused)
    }

    /// Every status, in life order.
    pub const ALL: [CaseStatus; 5] = [
        Self::Queued,
        Self::Processing,
        Self::Done,
        Self::Failed,
        Self::Refused,
    ];
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown case status {s:?}")))
    }
}

/// What happened to a case, as recorded in the append-only audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The upload was stored.
    Created,
    /// A job for the case was pushed to the queue.
    Queued,
    /// The recovery sweep pushed a job again because the previous one was lost.
    Requeued,
    /// A worker claimed the case.
    Started,
    /// A transient error; the case goes back to the queue.
    Retrying,
    /// A prediction was written.
    Completed,
    /// The case failed for good, with a reason.
    Failed,
    /// Someone opened the case page.
    Viewed,
    /// The uploader or an admin deleted the case (its image and prediction are gone).
    Deleted,
    /// A clinician reviewed the case (or amended their review: a new version).
    Reviewed,
    /// The model could not judge the photo; the reason was written.
    Refused,
    /// The worker drew the occlusion map of a done case.
    Explained,
}

impl EventKind {
    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Queued => "queued",
            Self::Requeued => "requeued",
            Self::Started => "started",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Viewed => "viewed",
            Self::Deleted => "deleted",
            Self::Reviewed => "reviewed",
            Self::Refused => "refused",
            Self::Explained => "explained",
        }
    }

    /// Every kind.
    pub const ALL: [EventKind; 12] = [
        Self::Created,
        Self::Queued,
        Self::Requeued,
        Self::Started,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
        Self::Viewed,
        Self::Deleted,
        Self::Reviewed,
        Self::Refused,
        Self::Explained,
    ];
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown event kind {s:?}")))
    }
}

/// Who did something to a case, as written in the audit trail.
///
/// A plain string with a prefix (`uploader:`, `visitor:`, `worker:`, `system:`, `staff:`) so new kinds
/// of actors need no schema change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor(String);

impl Actor {
    /// The person who uploaded the case, named by a prefix of their token's hash (never the token).
    pub fn uploader(uploader_hash: &str) -> Self {
        let short: String = uploader_hash.chars().take(12).collect();
        Self(format!("uploader:{short}"))
    }

    /// Someone with the link who is not the uploader and has no cookie of their own.
    pub fn visitor() -> Self {
        Self("visitor".to_owned())
    }

    /// Someone with the link who is not the uploader, told apart by a prefix of their own
    /// cookie token's hash (never the token).
    pub fn visitor_with(token_hash: &str) -> Self {
        let short: String = token_hash.chars().take(12).collect();
        Self(format!("visitor:{short}"))
    }

    /// A worker process, by its unique name.
    pub fn worker(name: &str) -> Self {
        Self(format!("worker:{name}"))
    }

    /// A clinic staff member, by user name.
    pub fn staff(username: &str) -> Self {
        Self(format!("staff:{username}"))
    }

    /// An automatic part of the service, e.g. `recovery`.
    pub fn system(component: &str) -> Self {
        Self(format!("system:{component}"))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A case as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// The case id (also the job payload).
    pub id: Uuid,
    /// Where the case is in its life.
    pub status: CaseStatus,
    /// When the upload was stored.
    pub created_at: DateTime<Utc>,
    /// Last change of the row.
    pub updated_at: DateTime<Utc>,
    /// The request that created the case.
    pub request_id: String,
    /// sha256 (hex) of the uploader's token.
    #[serde(skip)]
    pub uploader: String,
    /// sha256 (hex) of the uploaded bytes.
    pub image_sha256: String,
    /// Last time a job was pushed; `None` when none was pushed yet.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// How many jobs were pushed for the case (more than one after a recovery).
    pub enqueue_count: i32,
    /// How many times a worker claimed it.
    pub attempts: i32,
    /// The worker holding or last holding the case.
    pub claimed_by: Option<String>,
    /// Until when the claim holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// When the last claim started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the case became done or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Stable code of the failure reason.
    pub error_code: Option<String>,
    /// Failure reason, fit to show to the uploader.
    pub error: Option<String>,
    /// Model that produced the result.
    pub model_version: Option<String>,
    /// Milliseconds from the upload to the start of the case's batch.
    pub queue_ms: Option<i32>,
    /// Milliseconds the case's batch spent in the model.
    pub inference_ms: Option<i32>,
    /// How many cases shared the forward pass.
    pub batch_size: Option<i32>,
    /// When the uploader deleted it.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The latest review's version; `None` while nobody reviewed the case.
    pub review_version: Option<i32>,
}

impl Case {
    /// True when the uploader deleted the case.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// The image stored with a case (metadata-free PNG of the decoded pixels).
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// MIME type of `bytes`.
    pub content_type: String,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// The encoded image.
    pub bytes: Vec<u8>,
}

/// The model's view of a photo (the centre square at the model's input side, PNG), stored beside
/// it so that workers need not decode the full photo again.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// Width and height in pixels: the input side of the model it was made for.
    pub side: i32,
    /// The PNG.
    pub bytes: Vec<u8>,
}

/// An upload to store as a new case.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// Id chosen by the caller (UUID v4).
    pub id: Uuid,
    /// The request that carries the upload.
    pub request_id: String,
    /// sha256 (hex) of the uploader's token.
    pub uploader: String,
    /// sha256 (hex) of the uploaded bytes.
    pub image_sha256: String,
    /// The cleaned image.
    pub image: StoredImage,
    /// The model's view of it, when the web process knows the model.
    pub model_input: Option<ModelInput>,
}

/// The outcome of storing an upload.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new case was stored.
    New(Case),
    /// The same uploader already sent the same photo: this is that case.
    Existing(Case),
}

impl Created {
    /// The case, new or existing.
    pub fn case(&self) -> &Case {
        match self {
            Self::New(c) | Self::Existing(c) => c,
        }
    }
}

/// One class's probability, with what the page needs to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    /// HAM10000 code, e.g. `mel`.
    pub code: String,
    /// Human name, e.g. `Melanoma`.
    pub name: String,
    /// Whether the class counts towards P(malignant).
    pub malignant: bool,
    /// Calibrated probability in [0, 1].
    pub probability: f32,
}

/// A prediction to write for a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPrediction {
    /// `name@version` of the model.
    pub model_version: String,
    /// Stable verdict code, e.g. `see_a_doctor` or `looks_benign`.
    pub verdict: String,
    /// Sum of the malignant classes' probabilities.
    pub p_malignant: f32,
    /// The threshold on `p_malignant` the verdict was decided at.
    pub threshold: f32,
    /// Code of the most probable class.
    pub top_class: String,
    /// Every class in the model's output order.
    pub classes: Vec<ClassProbability>,
}

/// A refusal to write for a case: the model could not judge its photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRefusal {
    /// `name@version` of the model.
    pub model_version: String,
    /// Stable reason code, e.g. `not_a_lesion` or `too_dark`.
    pub reason: String,
    /// What the model measured and the limits it was compared with (for the clinic's audit).
    pub detail: serde_json::Value,
}

/// A stored refusal.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The case it belongs to.
    pub case_id: Uuid,
    /// The refusal itself.
    #[serde(flatten)]
    pub result: NewRefusal,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// What a worker's analysis of one photo came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Analysis {
    /// The model judged the photo: a prediction (the case becomes `done`).
    Diagnosis(NewPrediction),
    /// The model could not judge it (the case becomes `refused`).
    Refusal(NewRefusal),
}

impl Analysis {
    /// `name@version` of the model that analysed the photo.
    pub fn model_version(&self) -> &str {
        match self {
            Self::Diagnosis(p) => &p.model_version,
            Self::Refusal(r) => &r.model_version,
        }
    }
}

/// What the outside sees of a case, read in one statement: the case, its prediction when done,
/// and the version of its state.
#[derive(Debug, Clone)]
pub struct CaseState {
    /// The case.
    pub case: Case,
    /// Its prediction (done and not deleted).
    pub prediction: Option<Prediction>,
    /// Its refusal (refused and not deleted).
    pub refusal: Option<Refusal>,
    /// Its occlusion map, once a worker drew it (done and not deleted): the JSON the worker wrote.
    pub explanation: Option<serde_json::Value>,
    /// The id of the case's latest state-changing event (views excluded): changes whenever
    /// the case's state does, so a live page can tell "seen that" from "something new".
    pub version: i64,
}

/// A stored prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The case it belongs to.
    pub case_id: Uuid,
    /// The prediction itself.
    #[serde(flatten)]
    pub result: NewPrediction,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A finished analysis to write back, one of a batch.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The case.
    pub case_id: Uuid,
    /// The worker that claimed it (only its own claim may complete it).
    pub worker: String,
    /// The result: a prediction or a refusal.
    pub analysis: Analysis,
    /// Milliseconds from the upload to the start of the batch.
    pub queue_ms: i32,
    /// Milliseconds of the batch's forward pass.
    pub inference_ms: i32,
    /// Cases in the forward pass.
    pub batch_size: i32,
}

/// What the write of one completion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionOutcome {
    /// The case is now done or refused (this write did it).
    Completed,
    /// Nothing written: the case was already finished or deleted (a duplicate job).
    Skipped,
    /// Refused: the worker no longer holds the case's claim (its lease ran out and the case was
    /// queued again or taken over); the claim's current holder completes it.
    Stale,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct CaseEvent {
    /// Position in the trail (increasing).
    pub id: i64,
    /// The case.
    pub case_id: Uuid,
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The request behind it, if any.
    pub request_id: Option<String>,
    /// Event-specific facts (reason, attempt, batch size...).
    pub detail: serde_json::Value,
}

/// The answer to a worker's claim on a case.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The worker now holds the case, until its lease ends.
    Claimed {
        /// The case after the claim.
        case: Case,
        /// Its image: the model's view when one was stored for this model, else the photo.
        image: StoredImage,
        /// Width and height of the uploaded photo in pixels (whichever image was read).
        photo_size: (u32, u32),
    },
    /// Nothing to do: the case is finished, deleted, unknown or held by a live claim.
    Skip(SkipReason),
    /// The case has been claimed too often without finishing; it is now failed.
    GaveUp(Case),
}

/// Why a claim was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No such case (e.g. a job from another database).
    Missing,
    /// The uploader deleted it.
    Deleted,
    /// Already done or failed.
    Finished,
    /// Another worker holds a live lease on it.
    Held,
}

/// A case whose job the recovery sweep pushed again.
#[derive(Debug, Clone)]
pub struct Requeued {
    /// The case.
    pub id: Uuid,
    /// The request that created it (for log correlation).
    pub request_id: String,
}

/// Number of live cases per status.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    /// `(status, count)` for every status, zero included.
    pub counts: Vec<(CaseStatus, i64)>,
}
