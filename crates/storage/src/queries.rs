//! The SQL behind [`Store`]. Runtime-checked queries (no `query!` macros), so building needs no
//! database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use crate::model::*;
use crate::{Dialect, StorageError, Store, on_db};

/// The columns of `cases`, in [`CaseRow`]'s order.
macro_rules! case_columns {
    () => {
        "id, status, created_at, updated_at, request_id, uploader, image_sha256, enqueued_at, \
         enqueue_count, attempts, claimed_by, lease_until, started_at, finished_at, error_code, \
         error, model_version, queue_ms, inference_ms, batch_size, deleted_at, review_version"
    };
}
pub(crate) use case_columns;

/// A case's row as stored (also what a case bundle carries: see [`crate::export`]).
#[derive(FromRow, serde::Serialize, Deserialize)]
pub(crate) struct CaseRow {
    pub(crate) id: Uuid,
    pub(crate) status: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) request_id: String,
    pub(crate) uploader: String,
    pub(crate) image_sha256: String,
    pub(crate) enqueued_at: Option<DateTime<Utc>>,
    pub(crate) enqueue_count: i32,
    pub(crate) attempts: i32,
    pub(crate) claimed_by: Option<String>,
    pub(crate) lease_until: Option<DateTime<Utc>>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) error_code: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) model_version: Option<String>,
    pub(crate) queue_ms: Option<i32>,
    pub(crate) inference_ms: Option<i32>,
    pub(crate) batch_size: Option<i32>,
    pub(crate) deleted_at: Option<DateTime<Utc>>,
    pub(crate) review_version: Option<i32>,
}

impl TryFrom<CaseRow> for Case {
    type Error = StorageError;

    fn try_from(r: CaseRow) -> Result<Self, Self::Error> {
        Ok(Case {
            id: r.id,
            status: r.status.parse()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            request_id: r.request_id,
            uploader: r.uploader,
            image_sha256: r.image_sha256,
            enqueued_at: r.enqueued_at,
            enqueue_count: r.enqueue_count,
            attempts: r.attempts,
            claimed_by: r.claimed_by,
            lease_until: r.lease_until,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error_code: r.error_code,
            error: r.error,
            model_version: r.model_version,
            queue_ms: r.queue_ms,
            inference_ms: r.inference_ms,
            batch_size: r.batch_size,
            deleted_at: r.deleted_at,
            review_version: r.review_version,
        })
    }
}

#[derive(FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    case: CaseRow,
    lease_live: bool,
}

/// The statement that completes one claimed case: its final state (`u`), then `$outcome` (the
/// CTE that inserts its prediction or refusal) and its event, whose detail is parameter `$detail`;
/// both inserts read `u`, so nothing is written unless the update matched.
macro_rules! completion_sql {
    ($outcome:literal, $detail:literal) => {
        concat!(
            "WITH u AS ( \
                UPDATE cases SET status = $7, finished_at = now(), updated_at = now(), \
                lease_until = NULL, error_code = NULL, error = NULL, model_version = $2, \
                queue_ms = $3, inference_ms = $4, batch_size = $5 \
                WHERE id = $1 AND status = 'processing' AND claimed_by = $6 \
                AND deleted_at IS NULL \
                RETURNING id, request_id), ",
            $outcome,
            ", event AS ( \
                INSERT INTO case_events (case_id, kind, actor, request_id, detail) \
                SELECT id, $8, $9, request_id, ",
            $detail,
            "::jsonb FROM u) \
             SELECT request_id FROM u"
        )
    };
}

/// A claimed case with its image (null only if the image row is missing: corrupt).
#[derive(FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    case: CaseRow,
    photo_width: Option<i32>,
    photo_height: Option<i32>,
    content_type: Option<String>,
    width: Option<i32>,
    height: Option<i32>,
    bytes: Option<Vec<u8>>,
}

impl ClaimedRow {
    fn into_claim(self, id: Uuid) -> Result<Claim, StorageError> {
        let case = Case::try_from(self.case)?;
        let (
            Some(photo_width),
            Some(photo_height),
            Some(content_type),
            Some(width),
            Some(height),
            Some(bytes),
        ) = (
            self.photo_width,
            self.photo_height,
            self.content_type,
            self.width,
            self.height,
            self.bytes,
        )
        else {
            return Err(StorageError::Corrupt(format!("case {id} has no image")));
        };
        Ok(Claim::Claimed {
            case,
            image: StoredImage {
                content_type,
                width,
                height,
                bytes,
            },
            // The photo's own size (a refusal checks it, whatever was read).
            photo_size: (
                u32::try_from(photo_width).unwrap_or(0),
                u32::try_from(photo_height).unwrap_or(0),
            ),
        })
    }
}

#[derive(FromRow)]
struct ImageRow {
    content_type: String,
    width: i32,
    height: i32,
    bytes: Vec<u8>,
}

impl From<ImageRow> for StoredImage {
    fn from(r: ImageRow) -> Self {
        StoredImage {
            content_type: r.content_type,
            width: r.width,
            height: r.height,
            bytes: r.bytes,
        }
    }
}

#[derive(FromRow)]
struct PredictionRow {
    case_id: Uuid,
    model_version: String,
    verdict: String,
    p_malignant: f32,
    threshold: f32,
    top_class: String,
    classes: sqlx::types::Json<Vec<ClassProbability>>,
    created_at: DateTime<Utc>,
}

/// A case row joined with its prediction (columns prefixed `p_`) and its state version.
#[derive(FromRow)]
struct StateRow {
    #[sqlx(flatten)]
    case: CaseRow,
    p_model_version: Option<String>,
    p_verdict: Option<String>,
    p_p_malignant: Option<f32>,
    p_threshold: Option<f32>,
    p_top_class: Option<String>,
    p_classes: Option<sqlx::types::Json<Vec<ClassProbability>>>,
    p_created_at: Option<DateTime<Utc>>,
    r_model_version: Option<String>,
    r_reason: Option<String>,
    r_detail: Option<sqlx::types::Json<serde_json::Value>>,
    r_created_at: Option<DateTime<Utc>>,
    x_map: Option<sqlx::types::Json<serde_json::Value>>,
    version: Option<i64>,
}

#[derive(FromRow)]
struct EventRow {
    id: i64,
    case_id: Uuid,
    kind: String,
    actor: String,
    at: DateTime<Utc>,
    request_id: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

/// A state change announced on [`crate::CASE_EVENTS_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CaseSignal {
    /// The case that changed.
    pub case_id: Uuid,
    /// The kind of event that was appended.
    pub kind: String,
    /// The event's id.
    pub event_id: i64,
}

impl CaseSignal {
    /// Parses a notification payload; `None` for anything else (logged by the caller).
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

/// Appends one event to a case's audit trail (inside the caller's transaction).
macro_rules! append_event {
    ($conn:expr, $case_id:expr, $kind:expr, $actor:expr, $request_id:expr, $detail:expr) => {
        sqlx::query(
            "INSERT INTO case_events (case_id, kind, actor, request_id, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($case_id)
        .bind($kind.as_str())
        .bind($actor.as_str())
        .bind($request_id)
        .bind(sqlx::types::Json($detail))
        .execute($conn)
        .await
        .map(|_| ())
    };
}
pub(crate) use append_event;

/// Fails a live case (inside the caller's transaction): its final state and `failed` event.
/// `Some(case)` when it was live.
macro_rules! fail_locked {
    ($conn:expr, $d:expr, $id:expr, $actor:expr, $code:expr, $reason:expr) => {
        async {
            let row = sqlx::query_as::<_, CaseRow>($d.sql(concat!(
                "UPDATE cases SET status = 'failed', error_code = $2, error = $3, \
                 finished_at = {now}, updated_at = {now}, lease_until = NULL \
                 WHERE id = $1 AND status IN ('queued', 'processing') AND deleted_at IS NULL \
                 RETURNING ",
                case_columns!()
            )))
            .bind($id)
            .bind($code)
            .bind($reason)
            .fetch_optional(&mut *$conn)
            .await?;
            let Some(row) = row else {
                return Ok::<_, StorageError>(None);
            };
            let case = Case::try_from(row)?;
            append_event!(
                &mut *$conn,
                $id,
                EventKind::Failed,
                $actor,
                Some(&case.request_id),
                json!({ "code": $code, "reason": $reason })
            )?;
            Ok(Some(case))
        }
        .await
    };
}

/// The case under a row lock (PostgreSQL; SQLite's writer holds the whole file), with whether
/// its lease still runs.
macro_rules! case_for_update {
    ($conn:expr, $d:expr, $id:expr) => {
        sqlx::query_as::<_, ClaimRow>($d.sql(concat!(
            "SELECT ",
            case_columns!(),
            ", COALESCE(lease_until > {now}, false) AS lease_live FROM cases WHERE id = $1\
             {for_update}"
        )))
        .bind($id)
        .fetch_optional(&mut *$conn)
        .await
    };
}

/// The claimed case joined with the image the worker reads (SQLite reads it after its update).
const CLAIMED_SELECT_SQLITE: &str = concat!(
    "SELECT ",
    case_columns!(),
    ", i.width AS photo_width, i.height AS photo_height, i.content_type, \
     CASE WHEN i.model_input_side = $2 THEN i.model_input_side ELSE i.width END AS width, \
     CASE WHEN i.model_input_side = $2 THEN i.model_input_side ELSE i.height END AS height, \
     CASE WHEN i.model_input_side = $2 THEN i.model_input ELSE i.bytes END AS bytes \
     FROM cases c LEFT JOIN case_images i ON i.case_id = c.id WHERE c.id = $1"
);

/// What a claim that matched nothing finds when it looks at the case under its lock.
enum NotClaimed {
    Skip(SkipReason),
    GiveUp(i32),
    /// Claimable after all (its lease just ran out): try again.
    Again,
}

fn why_not_claimed(row: Option<ClaimRow>, max_attempts: i32) -> Result<NotClaimed, StorageError> {
    let Some(row) = row else {
        return Ok(NotClaimed::Skip(SkipReason::Missing));
    };
    let lease_live = row.lease_live;
    let case = Case::try_from(row.case)?;
    Ok(if case.is_deleted() {
        NotClaimed::Skip(SkipReason::Deleted)
    } else if case.status.is_terminal() {
        NotClaimed::Skip(SkipReason::Finished)
    } else if case.status == CaseStatus::Processing && lease_live {
        NotClaimed::Skip(SkipReason::Held)
    } else if case.attempts >= max_attempts {
        NotClaimed::GiveUp(case.attempts)
    } else {
        NotClaimed::Again
    })
}

/// A claim that matched nothing, settled inside `$tx` under the case's lock: `Some` answer
/// (a skip, or the case failed for good when its attempts are spent), or `None` when the case
/// turned out claimable after all (the caller tries the claim again).
macro_rules! settle_unclaimed {
    ($tx:ident, $d:expr, $id:expr, $actor:expr, $max_attempts:expr) => {
        async {
            let row = case_for_update!($tx, $d, $id)?;
            Ok::<_, StorageError>(match why_not_claimed(row, $max_attempts)? {
                NotClaimed::Skip(reason) => Some(Claim::Skip(reason)),
                NotClaimed::GiveUp(attempts) => {
                    let reason = format!(
                        "the analysis was started {attempts} times without finishing; giving up"
                    );
                    let failed = fail_locked!($tx, $d, $id, $actor, "gave_up", &reason)?;
                    $tx.commit().await?;
                    Some(failed.map_or(Claim::Skip(SkipReason::Finished), Claim::GaveUp))
                }
                NotClaimed::Again => None,
            })
        }
        .await
    };
}

/// What a completion writes besides the case's state: the event's kind and detail.
fn completion_event(c: &Completion) -> (CaseStatus, EventKind, serde_json::Value) {
    match &c.analysis {
        Analysis::Diagnosis(p) => (
            CaseStatus::Done,
            EventKind::Completed,
            json!({
                "verdict": p.verdict,
                "p_malignant": p.p_malignant,
                "top_class": p.top_class,
                "model_version": p.model_version,
                "batch_size": c.batch_size,
                "queue_ms": c.queue_ms,
                "inference_ms": c.inference_ms,
            }),
        ),
        Analysis::Refusal(r) => (
            CaseStatus::Refused,
            EventKind::Refused,
            json!({
                "reason": r.reason,
                "model_version": r.model_version,
                "batch_size": c.batch_size,
                "queue_ms": c.queue_ms,
                "inference_ms": c.inference_ms,
            }),
        ),
    }
}

/// Why a completion wrote nothing: the case finished or was deleted (a duplicate job:
/// skipped), or the claim is someone else's now (stale).
macro_rules! why_not_completed {
    ($conn:expr, $id:expr) => {
        async {
            let live: Option<bool> = sqlx::query_scalar(
                "SELECT status IN ('queued', 'processing') AND deleted_at IS NULL \
                 FROM cases WHERE id = $1",
            )
            .bind($id)
            .fetch_optional(&mut *$conn)
            .await?;
            Ok::<_, StorageError>(if live == Some(true) {
                CompletionOutcome::Stale
            } else {
                CompletionOutcome::Skipped
            })
        }
        .await
    };
}

/// Completes one claimed case in PostgreSQL: one statement (see [`Store::complete_batch`]).
async fn complete_one_pg(
    conn: &mut sqlx::PgConnection,
    c: &Completion,
) -> Result<CompletionOutcome, StorageError> {
    let actor = Actor::worker(&c.worker);
    let (status, kind, detail) = completion_event(c);
    // One statement per case: the case's final state, its prediction (or refusal) and
    // its event, each written only when the update matched (the claim is still ours).
    let sql = match &c.analysis {
        Analysis::Diagnosis(_) => completion_sql!(
            "predictions AS ( \
                    INSERT INTO predictions (case_id, model_version, verdict, \
                    p_malignant, threshold, top_class, classes) \
                    SELECT id, $2, $10, $11, $12, $13, $14 FROM u \
                    ON CONFLICT (case_id) DO NOTHING)",
            "$15"
        ),
        Analysis::Refusal(_) => completion_sql!(
            "refusals AS ( \
                    INSERT INTO refusals (case_id, model_version, reason, detail) \
                    SELECT id, $2, $10, $11 FROM u ON CONFLICT (case_id) DO NOTHING)",
            "$12"
        ),
    };
    let query = sqlx::query_scalar::<_, String>(sql)
        .bind(c.case_id)
        .bind(c.analysis.model_version())
        .bind(c.queue_ms)
        .bind(c.inference_ms)
        .bind(c.batch_size)
        .bind(&c.worker)
        .bind(status.as_str())
        .bind(kind.as_str())
        .bind(actor.as_str());
    let query = match &c.analysis {
        Analysis::Diagnosis(p) => query
            .bind(&p.verdict)
            .bind(p.p_malignant)
            .bind(p.threshold)
            .bind(&p.top_class)
            .bind(sqlx::types::Json(&p.classes)),
        Analysis::Refusal(r) => query.bind(&r.reason).bind(sqlx::types::Json(&r.detail)),
    };
    let updated: Option<String> = query
        .bind(sqlx::types::Json(detail))
        .fetch_optional(&mut *conn)
        .await?;
    if updated.is_none() {
        return why_not_completed!(conn, c.case_id);
    }
    Ok(CompletionOutcome::Completed)
}

/// Completes one claimed case in SQLite, inside the batch's transaction: the same writes as
/// PostgreSQL's one statement, one after the other.
async fn complete_one_sqlite(
    conn: &mut sqlx::SqliteConnection,
    c: &Completion,
) -> Result<CompletionOutcome, StorageError> {
    let d = Dialect::Sqlite;
    let actor = Actor::worker(&c.worker);
    let (status, kind, detail) = completion_event(c);
    let updated: Option<String> = sqlx::query_scalar(d.sql(
        "UPDATE cases SET status = $7, finished_at = {now}, updated_at = {now}, \
         lease_until = NULL, error_code = NULL, error = NULL, model_version = $2, \
         queue_ms = $3, inference_ms = $4, batch_size = $5 \
         WHERE id = $1 AND status = 'processing' AND claimed_by = $6 AND deleted_at IS NULL \
         RETURNING request_id",
    ))
    .bind(c.case_id)
    .bind(c.analysis.model_version())
    .bind(c.queue_ms)
    .bind(c.inference_ms)
    .bind(c.batch_size)
    .bind(&c.worker)
    .bind(status.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(request_id) = updated else {
        return why_not_completed!(conn, c.case_id);
    };
    match &c.analysis {
        Analysis::Diagnosis(p) => {
            sqlx::query(
                "INSERT INTO predictions (case_id, model_version, verdict, p_malignant, \
                 threshold, top_class, classes) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (case_id) DO NOTHING",
            )
            .bind(c.case_id)
            .bind(&p.model_version)
            .bind(&p.verdict)
            .bind(p.p_malignant)
            .bind(p.threshold)
            .bind(&p.top_class)
            .bind(sqlx::types::Json(&p.classes))
            .execute(&mut *conn)
            .await?;
        }
        Analysis::Refusal(r) => {
            sqlx::query(
                "INSERT INTO refusals (case_id, model_version, reason, detail) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (case_id) DO NOTHING",
            )
            .bind(c.case_id)
            .bind(&r.model_version)
            .bind(&r.reason)
            .bind(sqlx::types::Json(&r.detail))
            .execute(&mut *conn)
            .await?;
        }
    }
    append_event!(
        &mut *conn,
        c.case_id,
        kind,
        actor,
        Some(&request_id),
        detail
    )?;
    Ok(CompletionOutcome::Completed)
}

impl Store {
    /// Stores an upload as a new case, ready for the queue: the case (its job counted as pushed:
    /// `enqueued_at`, `enqueue_count` 1), its image and its `created` and `queued` events — in
    /// PostgreSQL in **one statement** (one round trip, one commit: the upload path's whole
    /// database write), in SQLite in one transaction.
    ///
    /// The caller pushes the job right after. If that push fails, or the process dies before it,
    /// the case is still `queued` with a push on record, and a worker's recovery sweep
    /// ([`Store::requeue_stranded`]) queues it again once `requeue_after` has passed: nothing is
    /// lost, as when the push itself is lost in Redis. The `queued` event is written before the
    /// push so that the audit trail reads created → queued → started even when a worker picks the
    /// job up within a millisecond.
    ///
    /// If the same uploader already has a live case for the same bytes (a double click, a
    /// re-submitted form) that case is returned instead and nothing is written.
    pub async fn create_case(&self, new: NewCase) -> Result<Created, StorageError> {
        let actor = Actor::uploader(&new.uploader);
        let created_detail = json!({
            "width": new.image.width,
            "height": new.image.height,
            "stored_bytes": new.image.bytes.len(),
        });
        let queued_detail = json!({ "enqueue_count": 1 });
        let inserted = match self.db() {
            crate::Db::Postgres(pool) => {
                // Data-modifying CTEs: the image and the events are written only when the case
                // row is (nothing at all on a re-submission); the foreign keys are checked at the
                // statement's end, after all three inserts. Events get their ids in the VALUES
                // order.
                sqlx::query_as::<_, CaseRow>(concat!(
                    "WITH c AS ( \
                        INSERT INTO cases (id, request_id, uploader, image_sha256, enqueued_at, \
                            enqueue_count) \
                        VALUES ($1, $2, $3, $4, now(), 1) \
                        ON CONFLICT (uploader, image_sha256) WHERE deleted_at IS NULL DO NOTHING \
                        RETURNING ",
                    case_columns!(),
                    "), image AS ( \
                        INSERT INTO case_images \
                        (case_id, content_type, width, height, bytes, model_input, model_input_side) \
                        SELECT id, $5, $6, $7, $8, $9, $10 FROM c), \
                     events AS ( \
                        INSERT INTO case_events (case_id, kind, actor, request_id, detail) \
                        SELECT c.id, e.kind, $11, c.request_id, e.detail \
                        FROM c, (VALUES (1, 'created', $12::jsonb), (2, 'queued', $13::jsonb)) \
                            AS e (n, kind, detail) \
                        ORDER BY e.n) \
                     SELECT * FROM c"
                ))
                .bind(new.id)
                .bind(&new.request_id)
                .bind(&new.uploader)
                .bind(&new.image_sha256)
                .bind(&new.image.content_type)
                .bind(new.image.width)
                .bind(new.image.height)
                .bind(&new.image.bytes)
                .bind(new.model_input.as_ref().map(|m| &m.bytes))
                .bind(new.model_input.as_ref().map(|m| m.side))
                .bind(actor.as_str())
                .bind(sqlx::types::Json(created_detail))
                .bind(sqlx::types::Json(queued_detail))
                .fetch_optional(pool)
                .await?
            }
            crate::Db::Sqlite(lite) => {
                let d = Dialect::Sqlite;
                let mut tx = lite.write().begin_with(d.begin_write()).await?;
                let row = sqlx::query_as::<_, CaseRow>(d.sql(concat!(
                    "INSERT INTO cases (id, request_id, uploader, image_sha256, enqueued_at, \
                        enqueue_count, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, {now}, 1, {now}, {now}) \
                     ON CONFLICT (uploader, image_sha256) WHERE deleted_at IS NULL DO NOTHING \
                     RETURNING ",
                    case_columns!()
                )))
                .bind(new.id)
                .bind(&new.request_id)
                .bind(&new.uploader)
                .bind(&new.image_sha256)
                .fetch_optional(&mut *tx)
                .await?;
                if row.is_some() {
                    sqlx::query(
                        "INSERT INTO case_images (case_id, content_type, width, height, bytes, \
                         model_input, model_input_side) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(new.id)
                    .bind(&new.image.content_type)
                    .bind(new.image.width)
                    .bind(new.image.height)
                    .bind(&new.image.bytes)
                    .bind(new.model_input.as_ref().map(|m| &m.bytes))
                    .bind(new.model_input.as_ref().map(|m| m.side))
                    .execute(&mut *tx)
                    .await?;
                    for (kind, detail) in [
                        (EventKind::Created, created_detail),
                        (EventKind::Queued, queued_detail),
                    ] {
                        append_event!(
                            &mut *tx,
                            new.id,
                            kind,
                            actor,
                            Some(&new.request_id),
                            detail
                        )?;
                    }
                    tx.commit().await?;
                }
                row
            }
        };
        if let Some(row) = inserted {
            return Ok(Created::New(row.try_into()?));
        }
        let existing = on_db!(self, read, |pool, d| sqlx::query_as::<_, CaseRow>(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE uploader = $1 AND image_sha256 = $2 AND deleted_at IS NULL"
        ))
        .bind(&new.uploader)
        .bind(&new.image_sha256)
        .fetch_optional(pool)
        .await?);
        match existing {
            Some(row) => Ok(Created::Existing(row.try_into()?)),
            // The other case was deleted between our insert and this read: try once more.
            None => Box::pin(self.create_case(new)).await,
        }
    }

    /// The case, deleted or not; `None` when unknown.
    pub async fn case(&self, id: Uuid) -> Result<Option<Case>, StorageError> {
        let row = on_db!(self, read, |pool, d| sqlx::query_as::<_, CaseRow>(concat!(
            "SELECT ",
            case_columns!(),
            " FROM cases WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(Case::try_from).transpose()
    }

    /// The case with its prediction and state version, in one statement (what the case page,
    /// its JSON and its live stream show); `None` when unknown.
    pub async fn case_state(&self, id: Uuid) -> Result<Option<CaseState>, StorageError> {
        let row = on_db!(self, read, |pool, d| {
            sqlx::query_as::<_, StateRow>(
            "SELECT c.id, c.status, c.created_at, c.updated_at, c.request_id, c.uploader, \
             c.image_sha256, c.enqueued_at, c.enqueue_count, c.attempts, c.claimed_by, \
             c.lease_until, c.started_at, c.finished_at, c.error_code, c.error, \
             c.model_version, c.queue_ms, c.inference_ms, c.batch_size, c.deleted_at, c.review_version, \
             p.model_version AS p_model_version, p.verdict AS p_verdict, \
             p.p_malignant AS p_p_malignant, p.threshold AS p_threshold, \
             p.top_class AS p_top_class, p.classes AS p_classes, p.created_at AS p_created_at, \
             r.model_version AS r_model_version, r.reason AS r_reason, r.detail AS r_detail, \
             r.created_at AS r_created_at, x.map AS x_map, \
             (SELECT max(e.id) FROM case_events e \
              WHERE e.case_id = c.id AND e.kind <> 'viewed') AS version \
             FROM cases c LEFT JOIN predictions p ON p.case_id = c.id \
             LEFT JOIN refusals r ON r.case_id = c.id \
             LEFT JOIN case_explanations x ON x.case_id = c.id WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let prediction = match (
            row.p_model_version,
            row.p_verdict,
            row.p_p_malignant,
            row.p_threshold,
            row.p_top_class,
            row.p_classes,
            row.p_created_at,
        ) {
            (
                Some(model_version),
                Some(verdict),
                Some(p_malignant),
                Some(threshold),
                Some(top_class),
                Some(classes),
                Some(created_at),
            ) => Some(Prediction {
                case_id: id,
                result: NewPrediction {
                    model_version,
                    verdict,
                    p_malignant,
                    threshold,
                    top_class,
                    classes: classes.0,
                },
                created_at,
            }),
            _ => None,
        };
        let refusal = match (
            row.r_model_version,
            row.r_reason,
            row.r_detail,
            row.r_created_at,
        ) {
            (Some(model_version), Some(reason), Some(detail), Some(created_at)) => Some(Refusal {
                case_id: id,
                result: NewRefusal {
                    model_version,
                    reason,
                    detail: detail.0,
                },
                created_at,
            }),
            _ => None,
        };
        Ok(Some(CaseState {
            case: row.case.try_into()?,
            prediction,
            refusal,
            explanation: row.x_map.map(|m| m.0),
            version: row.version.unwrap_or(0),
        }))
    }

    /// The case's stored image; `None` when unknown or deleted.
    pub async fn image(&self, id: Uuid) -> Result<Option<StoredImage>, StorageError> {
        let row = on_db!(self, read, |pool, d| sqlx::query_as::<_, ImageRow>(
            "SELECT content_type, width, height, bytes FROM case_images WHERE case_id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(StoredImage::from))
    }

    /// The case's prediction; `None` until done (or after deletion).
    pub async fn prediction(&self, id: Uuid) -> Result<Option<Prediction>, StorageError> {
        let row = on_db!(self, read, |pool, d| {
            sqlx::query_as::<_, PredictionRow>(
            "SELECT case_id, model_version, verdict, p_malignant, threshold, top_class, classes, \
             created_at FROM predictions WHERE case_id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        });
        Ok(row.map(|r| Prediction {
            case_id: r.case_id,
            result: NewPrediction {
                model_version: r.model_version,
                verdict: r.verdict,
                p_malignant: r.p_malignant,
                threshold: r.threshold,
                top_class: r.top_class,
                classes: r.classes.0,
            },
            created_at: r.created_at,
        }))
    }

    /// The case's audit trail, oldest first.
    pub async fn events(&self, id: Uuid) -> Result<Vec<CaseEvent>, StorageError> {
        let rows = on_db!(self, read, |pool, d| sqlx::query_as::<_, EventRow>(
            "SELECT id, case_id, kind, actor, at, request_id, detail FROM case_events \
             WHERE case_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(CaseEvent {
                    id: r.id,
                    case_id: r.case_id,
                    kind: r.kind.parse()?,
                    actor: r.actor,
                    at: r.at,
                    request_id: r.request_id,
                    detail: r.detail.0,
                })
            })
            .collect()
    }

    /// Records that `viewer` opened the case page (`viewed` event), at most once per viewer per
    /// case within `window`. Returns whether an event was written.
    ///
    /// The decision is one upsert on `case_views` that only touches the row once the window has
    /// passed, so two requests at the same moment cannot both write an event.
    pub async fn record_view(
        &self,
        id: Uuid,
        viewer: &Actor,
        request_id: Option<&str>,
        window: Duration,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let fresh: Option<i32> = sqlx::query_scalar(d.sql(
                "INSERT INTO case_views (case_id, viewer, recorded_at) VALUES ($1, $2, {now}) \
                 ON CONFLICT (case_id, viewer) DO UPDATE SET recorded_at = {now} \
                 WHERE case_views.recorded_at <= {ago $3} \
                 RETURNING 1",
            ))
            .bind(id)
            .bind(viewer.as_str())
            .bind(window.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            if fresh.is_none() {
                return Ok(false);
            }
            append_event!(
                &mut *tx,
                id,
                EventKind::Viewed,
                viewer,
                request_id,
                json!({})
            )?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes a case: its image, prediction or refusal, occlusion map, review notes, the
    /// uploader's pseudonym and the photo's fingerprint are removed; the row stays as a tombstone
    /// with its audit trail and `deleted` event. Returns false when it was already deleted or is unknown.
    pub async fn delete_case(
        &self,
        id: Uuid,
        actor: &Actor,
        request_id: Option<&str>,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let deleted = sqlx::query(d.sql(
                "UPDATE cases SET deleted_at = {now}, updated_at = {now}, lease_until = NULL \
                 WHERE id = $1 AND deleted_at IS NULL",
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            // The photo and everything made from it or recording who looked at it.
            for statement in [
                "DELETE FROM case_images WHERE case_id = $1",
                "DELETE FROM predictions WHERE case_id = $1",
                "DELETE FROM refusals WHERE case_id = $1",
                "DELETE FROM case_explanations WHERE case_id = $1",
                "DELETE FROM case_views WHERE case_id = $1",
                // Reviewers' notes may name the patient; the reviews themselves (a diagnosis and
                // a verdict, no identity left to attach them to) stay, immutable.
                "DELETE FROM case_review_notes WHERE case_id = $1",
                // The uploader's pseudonym and the photo's fingerprint go with the photo: what
                // remains is a tombstone (id, times, status) and its audit trail.
                "UPDATE cases SET uploader = '', image_sha256 = '' WHERE id = $1",
            ] {
                sqlx::query(statement).bind(id).execute(&mut *tx).await?;
            }
            append_event!(
                &mut *tx,
                id,
                EventKind::Deleted,
                actor,
                request_id,
                json!({})
            )?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A worker's claim on a case, taken when its job starts.
    ///
    /// Granted when the case waits (`queued`) or its holder's lease ran out (the holder died);
    /// the claim lasts `lease`. A case claimed `max_attempts` times without finishing is failed
    /// instead, so a case that kills workers cannot loop for ever.
    ///
    /// The claimed image is the stored model view when it was made for `model_side` (the
    /// worker's model input side), else the full photo.
    pub async fn claim(
        &self,
        id: Uuid,
        worker: &str,
        lease: Duration,
        max_attempts: i32,
        model_side: Option<u32>,
    ) -> Result<Claim, StorageError> {
        let actor = Actor::worker(worker);
        let side = model_side.map(|s| s as i32);
        // PostgreSQL: a claimable case (queued, or its holder's lease ran out, with attempts
        // left) is claimed in one statement: the claim, its `started` event and the image to
        // read. When it matches nothing, the case is looked at under a row lock to say why;
        // should it have become claimable in between (a lease that just ran out), the statement
        // is tried again. Each round needs another process to change the case meanwhile; past a
        // few, the case is left to its current holder (or the recovery sweep).
        // SQLite: the same, in one transaction (the writer holds the file throughout).
        for _ in 0..3 {
            match self.db() {
                crate::Db::Postgres(pool) => {
                    let claimed = sqlx::query_as::<_, ClaimedRow>(concat!(
                        "WITH c AS ( \
                            UPDATE cases SET status = 'processing', attempts = attempts + 1, \
                                claimed_by = $2, lease_until = now() + make_interval(secs => $3), \
                                started_at = now(), updated_at = now() \
                            WHERE id = $1 AND deleted_at IS NULL AND attempts < $4 \
                                AND (status = 'queued' \
                                     OR (status = 'processing' \
                                         AND NOT COALESCE(lease_until > now(), false))) \
                            RETURNING ",
                        case_columns!(),
                        "), started AS ( \
                            INSERT INTO case_events (case_id, kind, actor, request_id, detail) \
                            SELECT id, 'started', $5, request_id, \
                                jsonb_build_object('attempt', attempts) \
                            FROM c) \
                         SELECT c.*, i.width AS photo_width, i.height AS photo_height, \
                            i.content_type, \
                            CASE WHEN i.model_input_side = $6 THEN i.model_input_side \
                                ELSE i.width END AS width, \
                            CASE WHEN i.model_input_side = $6 THEN i.model_input_side \
                                ELSE i.height END AS height, \
                            CASE WHEN i.model_input_side = $6 THEN i.model_input \
                                ELSE i.bytes END AS bytes \
                         FROM c LEFT JOIN case_images i ON i.case_id = c.id"
                    ))
                    .bind(id)
                    .bind(worker)
                    .bind(lease.as_secs_f64())
                    .bind(max_attempts)
                    .bind(actor.as_str())
                    .bind(side)
                    .fetch_optional(pool)
                    .await?;
                    if let Some(row) = claimed {
                        return row.into_claim(id);
                    }
                    let mut tx = pool.begin().await?;
                    if let Some(claim) =
                        settle_unclaimed!(tx, Dialect::Postgres, id, &actor, max_attempts)?
                    {
                        return Ok(claim);
                    }
                    // Claimable now: the lock is released (the transaction rolls back) and the
                    // claim statement tried again.
                }
                crate::Db::Sqlite(lite) => {
                    let d = Dialect::Sqlite;
                    let mut tx = lite.write().begin_with(d.begin_write()).await?;
                    let claimed = sqlx::query_as::<_, CaseRow>(d.sql(concat!(
                        "UPDATE cases SET status = 'processing', attempts = attempts + 1, \
                            claimed_by = $2, lease_until = {in $3}, started_at = {now}, \
                            updated_at = {now} \
                         WHERE id = $1 AND deleted_at IS NULL AND attempts < $4 \
                            AND (status = 'queued' \
                                 OR (status = 'processing' \
                                     AND NOT COALESCE(lease_until > {now}, false))) \
                         RETURNING ",
                        case_columns!()
                    )))
                    .bind(id)
                    .bind(worker)
                    .bind(lease.as_secs_f64())
                    .bind(max_attempts)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(case) = claimed {
                        append_event!(
                            &mut *tx,
                            id,
                            EventKind::Started,
                            actor,
                            Some(&case.request_id),
                            json!({ "attempt": case.attempts })
                        )?;
                        let row = sqlx::query_as::<_, ClaimedRow>(CLAIMED_SELECT_SQLITE)
                            .bind(id)
                            .bind(side)
                            .fetch_one(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        return row.into_claim(id);
                    }
                    if let Some(claim) = settle_unclaimed!(tx, d, id, &actor, max_attempts)? {
                        return Ok(claim);
                    }
                    // Cannot happen with one writer; tried again like PostgreSQL would.
                }
            }
        }
        Ok(Claim::Skip(SkipReason::Held))
    }

    /// Writes a batch of results: one statement per case in PostgreSQL (in one transaction when
    /// the batch has several cases; a lone case's statement is its own transaction), one
    /// transaction for the batch in SQLite.
    ///
    /// Only the claim's own worker may complete a case: a completion from a worker that no
    /// longer holds the claim (its lease ran out and the case was queued again or claimed by
    /// another worker) is refused as [`CompletionOutcome::Stale`] and writes nothing; the
    /// current holder completes the case. Idempotent: a case that is already finished or deleted
    /// is skipped, and the prediction insert does nothing on conflict, so a job run twice
    /// completes its case exactly once.
    pub async fn complete_batch(
        &self,
        completions: &[Completion],
    ) -> Result<Vec<CompletionOutcome>, StorageError> {
        let mut outcomes = Vec::with_capacity(completions.len());
        match self.db() {
            crate::Db::Postgres(pool) => {
                if let [one] = completions {
                    let mut conn = pool.acquire().await?;
                    return Ok(vec![complete_one_pg(&mut conn, one).await?]);
                }
                let mut tx = pool.begin().await?;
                for c in completions {
                    outcomes.push(complete_one_pg(&mut tx, c).await?);
                }
                tx.commit().await?;
            }
            crate::Db::Sqlite(lite) => {
                let mut tx = lite
                    .write()
                    .begin_with(Dialect::Sqlite.begin_write())
                    .await?;
                for c in completions {
                    outcomes.push(complete_one_sqlite(&mut tx, c).await?);
                }
                tx.commit().await?;
            }
        }
        Ok(outcomes)
    }

    /// Stores the occlusion map a worker drew for a done case (`explained` event). Returns false,
    /// writing nothing, when the case is not done any more (deleted meanwhile) or already has one.
    pub async fn save_explanation(
        &self,
        id: Uuid,
        worker: &str,
        model_version: &str,
        map: &serde_json::Value,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let request_id: Option<String> = sqlx::query_scalar(d.sql(
                "SELECT request_id FROM cases WHERE id = $1 AND status = 'done' \
                 AND deleted_at IS NULL{for_update}",
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(request_id) = request_id else {
                return Ok(false);
            };
            let inserted = sqlx::query(d.sql(
                "INSERT INTO case_explanations (case_id, model_version, method, map, created_at) \
                 VALUES ($1, $2, 'occlusion', $3, {now}) ON CONFLICT (case_id) DO NOTHING",
            ))
            .bind(id)
            .bind(model_version)
            .bind(sqlx::types::Json(map))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            append_event!(
                &mut *tx,
                id,
                EventKind::Explained,
                Actor::worker(worker),
                Some(&request_id),
                json!({ "method": "occlusion", "model_version": model_version })
            )?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Fails a case for good with a reason fit to show to the uploader (`failed` event).
    /// Returns false when it was already finished or deleted.
    pub async fn fail_case(
        &self,
        id: Uuid,
        actor: &Actor,
        code: &str,
        reason: &str,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let failed = fail_locked!(tx, d, id, actor, code, reason)?;
            tx.commit().await?;
            Ok(failed.is_some())
        })
    }

    /// Fails a case that `worker` holds the claim of (a bad image found by that worker), with a
    /// reason fit to show to the uploader. Returns false, writing nothing, when the worker no
    /// longer holds the claim or the case is finished or deleted.
    pub async fn fail_claimed(
        &self,
        id: Uuid,
        worker: &str,
        code: &str,
        reason: &str,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let holds: Option<bool> = sqlx::query_scalar(d.sql(
                "SELECT COALESCE(status = 'processing' AND claimed_by = $2, false) FROM cases \
                 WHERE id = $1{for_update}",
            ))
            .bind(id)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
            if holds != Some(true) {
                return Ok(false);
            }
            let failed = fail_locked!(tx, d, id, &Actor::worker(worker), code, reason)?;
            tx.commit().await?;
            Ok(failed.is_some())
        })
    }

    /// Gives a claimed case back to the queue after a transient error (`retrying` event), so the
    /// retried job can claim it at once instead of waiting for the lease to run out.
    pub async fn release_for_retry(
        &self,
        id: Uuid,
        worker: &str,
        reason: &str,
    ) -> Result<bool, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let released: Option<(i32, String)> = sqlx::query_as(d.sql(
                "UPDATE cases SET status = 'queued', claimed_by = NULL, lease_until = NULL, \
                 updated_at = {now} WHERE id = $1 AND status = 'processing' AND claimed_by = $2 \
                 AND deleted_at IS NULL RETURNING attempts, request_id",
            ))
            .bind(id)
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((attempt, request_id)) = released else {
                return Ok(false);
            };
            append_event!(
                &mut *tx,
                id,
                EventKind::Retrying,
                Actor::worker(worker),
                Some(&request_id),
                json!({ "attempt": attempt, "reason": reason })
            )?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Finds unfinished cases whose job was lost and marks them for a new push (`requeued`
    /// event): queued cases with no push for `requeue_after` (the job vanished from the queue,
    /// or the first push failed) and processing cases whose lease ran out (the worker died).
    ///
    /// PostgreSQL takes the rows with `FOR UPDATE SKIP LOCKED`, so concurrent sweepers in
    /// several workers pick disjoint cases; SQLite has one writer. The caller pushes a job for
    /// each returned case.
    pub async fn requeue_stranded(
        &self,
        requeue_after: Duration,
        limit: i64,
        actor: &Actor,
    ) -> Result<Vec<Requeued>, StorageError> {
        self.requeue(requeue_after, limit, actor, false).await
    }

    /// Marks every unfinished case for a new push (`requeued` event), claimed or not: for the
    /// embedded mode's one process when it starts, whose jobs and claims died with the process
    /// before it (nobody else can hold a claim on its file). The caller pushes a job for each.
    pub async fn requeue_unfinished(
        &self,
        limit: i64,
        actor: &Actor,
    ) -> Result<Vec<Requeued>, StorageError> {
        self.requeue(Duration::ZERO, limit, actor, true).await
    }

    async fn requeue(
        &self,
        requeue_after: Duration,
        limit: i64,
        actor: &Actor,
        every_claim: bool,
    ) -> Result<Vec<Requeued>, StorageError> {
        let held = if every_claim {
            "the process that held it stopped"
        } else {
            "the worker's lease ran out"
        };
        let reason = |was: &str| {
            if was == "processing" {
                held
            } else {
                "the job was not picked up"
            }
        };
        let rows: Vec<(Uuid, String)> = match self.db() {
            crate::Db::Postgres(pool) => {
                sqlx::query_as(
                    "WITH picked AS ( \
                        SELECT id, status FROM cases \
                        WHERE deleted_at IS NULL AND ( \
                            (status = 'queued' \
                             AND COALESCE(enqueued_at, created_at) \
                                <= now() - make_interval(secs => $1)) \
                            OR (status = 'processing' AND (lease_until < now() OR $4))) \
                        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                     moved AS ( \
                        UPDATE cases c SET status = 'queued', claimed_by = NULL, \
                            lease_until = NULL, enqueued_at = now(), \
                            enqueue_count = c.enqueue_count + 1, updated_at = now() \
                        FROM picked WHERE c.id = picked.id \
                        RETURNING c.id, c.request_id, c.enqueue_count, picked.status AS was) \
                     INSERT INTO case_events (case_id, kind, actor, request_id, detail) \
                     SELECT id, 'requeued', $3, request_id, \
                        jsonb_build_object('was', was, 'enqueue_count', enqueue_count, 'reason', \
                            CASE WHEN was = 'processing' THEN $5 \
                                 ELSE 'the job was not picked up' END) \
                     FROM moved RETURNING case_id, request_id",
                )
                .bind(requeue_after.as_secs_f64())
                .bind(limit)
                .bind(actor.as_str())
                .bind(every_claim)
                .bind(held)
                .fetch_all(pool)
                .await?
            }
            crate::Db::Sqlite(lite) => {
                let d = Dialect::Sqlite;
                let mut tx = lite.write().begin_with(d.begin_write()).await?;
                let picked: Vec<(Uuid, String)> = sqlx::query_as(d.sql(
                    "SELECT id, status FROM cases WHERE deleted_at IS NULL AND ( \
                        (status = 'queued' AND COALESCE(enqueued_at, created_at) <= {ago $1}) \
                        OR (status = 'processing' AND (lease_until < {now} OR $3))) \
                     ORDER BY created_at LIMIT $2",
                ))
                .bind(requeue_after.as_secs_f64())
                .bind(limit)
                .bind(every_claim)
                .fetch_all(&mut *tx)
                .await?;
                let mut moved = Vec::with_capacity(picked.len());
                for (id, was) in picked {
                    let (request_id, enqueue_count): (String, i32) = sqlx::query_as(d.sql(
                        "UPDATE cases SET status = 'queued', claimed_by = NULL, \
                            lease_until = NULL, enqueued_at = {now}, \
                            enqueue_count = enqueue_count + 1, updated_at = {now} \
                         WHERE id = $1 RETURNING request_id, enqueue_count",
                    ))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    append_event!(
                        &mut *tx,
                        id,
                        EventKind::Requeued,
                        actor,
                        Some(&request_id),
                        json!({
                            "was": was,
                            "enqueue_count": enqueue_count,
                            "reason": reason(&was),
                        })
                    )?;
                    moved.push((id, request_id));
                }
                tx.commit().await?;
                moved
            }
        };
        Ok(rows
            .into_iter()
            .map(|(id, request_id)| Requeued { id, request_id })
            .collect())
    }

    /// Live (not deleted) cases per status.
    pub async fn status_counts(&self) -> Result<StatusCounts, StorageError> {
        let rows: Vec<(String, i64)> = on_db!(self, read, |pool, d| sqlx::query_as(
            "SELECT status, count(*) FROM cases WHERE deleted_at IS NULL GROUP BY status",
        )
        .fetch_all(pool)
        .await?);
        let mut counts: Vec<(CaseStatus, i64)> = CaseStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, n) in rows {
            let status: CaseStatus = status.parse()?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = n;
            }
        }
        Ok(StatusCounts { counts })
    }
}
