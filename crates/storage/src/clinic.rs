//! The clinic's view of the cases: the filtered, sorted list (and its CSV export, streamed),
//! the summary strip, reviews (versioned, never changed), staff views and the figures of
//! reviewers against the model.

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

use crate::model::{Actor, CaseStatus, ClassProbability, EventKind};
use crate::on_db;
use crate::queries::append_event;
use crate::{StorageError, Store};

/// Which cases by status: a live status, or the deleted ones (tombstones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Live cases with this status.
    Live(CaseStatus),
    /// Deleted cases.
    Deleted,
}

/// Which cases the list shows (every field narrows; `None` does not). Without a status, every
/// live case; deleted ones only when asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseFilter {
    /// By status.
    pub status: Option<StatusFilter>,
    /// By the model's verdict (`see_a_doctor`, `looks_benign`).
    pub verdict: Option<String>,
    /// By the model's most probable diagnosis (HAM10000 code).
    pub diagnosis: Option<String>,
    /// Reviewed (true) or waiting for a review (false).
    pub reviewed: Option<bool>,
    /// By model version (`name@version`).
    pub model_version: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// The column the list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Creation time (the default, newest first).
    #[default]
    Created,
    /// P(malignant).
    PMalignant,
    /// Status.
    Status,
    /// The model's diagnosis.
    Diagnosis,
    /// The model's verdict.
    Verdict,
    /// Model version.
    Model,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            Self::Created => "c.created_at",
            Self::PMalignant => "p.p_malignant",
            Self::Status => "c.status",
            Self::Diagnosis => "p.top_class",
            Self::Verdict => "p.verdict",
            Self::Model => "c.model_version",
        }
    }

    /// Whether the column can be empty (cases without a result): only then does `NULLS LAST`
    /// change the order.
    fn nullable(self) -> bool {
        !matches!(self, Self::Created | Self::Status)
    }
}

/// How the list is sorted; ties are broken by case id, so pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSort {
    /// The column.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

impl Default for CaseSort {
    fn default() -> Self {
        Self {
            key: SortKey::Created,
            descending: true,
        }
    }
}

/// The latest review of a case, as the list and the export show it.
#[derive(Debug, Clone, Serialize)]
pub struct LatestReview {
    /// Its version (1 = first review; higher = amended).
    pub version: i32,
    /// The reviewer's diagnosis.
    pub diagnosis: String,
    /// The clinician's verdict.
    pub verdict: String,
    /// Who.
    pub reviewer: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The note, if any.
    pub note: Option<String>,
}

/// One case of the list or the export: the case, the model's output and the latest review.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRecord {
    /// Case id.
    pub id: Uuid,
    /// When the photo was stored.
    pub created_at: DateTime<Utc>,
    /// When the analysis finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Status (see `deleted`).
    pub status: CaseStatus,
    /// Deleted (a tombstone).
    pub deleted: bool,
    /// Why it failed.
    pub error_code: Option<String>,
    /// Model version.
    pub model_version: Option<String>,
    /// The model's verdict.
    pub verdict: Option<String>,
    /// The model's most probable diagnosis.
    pub top_class: Option<String>,
    /// P(malignant).
    pub p_malignant: Option<f32>,
    /// The verdict's threshold.
    pub threshold: Option<f32>,
    /// Every class's probability.
    pub classes: Vec<ClassProbability>,
    /// Milliseconds queued.
    pub queue_ms: Option<i32>,
    /// Milliseconds in the model.
    pub inference_ms: Option<i32>,
    /// The latest review.
    pub review: Option<LatestReview>,
}

#[derive(FromRow)]
struct RecordRow {
    id: Uuid,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    deleted_at: Option<DateTime<Utc>>,
    error_code: Option<String>,
    model_version: Option<String>,
    verdict: Option<String>,
    top_class: Option<String>,
    p_malignant: Option<f32>,
    threshold: Option<f32>,
    classes: Option<sqlx::types::Json<Vec<ClassProbability>>>,
    queue_ms: Option<i32>,
    inference_ms: Option<i32>,
    r_version: Option<i32>,
    r_diagnosis: Option<String>,
    r_verdict: Option<String>,
    r_reviewer: Option<String>,
    r_at: Option<DateTime<Utc>>,
    r_note: Option<String>,
}

impl TryFrom<RecordRow> for CaseRecord {
    type Error = StorageError;

    fn try_from(r: RecordRow) -> Result<Self, StorageError> {
        let review = match (
            r.r_version,
            r.r_diagnosis,
            r.r_verdict,
            r.r_reviewer,
            r.r_at,
        ) {
            (Some(version), Some(diagnosis), Some(verdict), Some(reviewer), Some(at)) => {
                Some(LatestReview {
                    version,
                    diagnosis,
                    verdict,
                    reviewer,
                    at,
                    note: r.r_note,
                })
            }
            _ => None,
        };
        Ok(Self {
            id: r.id,
            created_at: r.created_at,
            finished_at: r.finished_at,
            status: r.status.parse()?,
            deleted: r.deleted_at.is_some(),
            error_code: r.error_code,
            model_version: r.model_version,
            verdict: r.verdict,
            top_class: r.top_class,
            p_malignant: r.p_malignant,
            threshold: r.threshold,
            classes: r.classes.map(|c| c.0).unwrap_or_default(),
            queue_ms: r.queue_ms,
            inference_ms: r.inference_ms,
            review,
        })
    }
}

const RECORD_SELECT: &str = "SELECT c.id, c.created_at, c.finished_at, c.status, c.deleted_at, \
    c.error_code, c.model_version, p.verdict, p.top_class, p.p_malignant, p.threshold, p.classes, \
    c.queue_ms, c.inference_ms, r.version AS r_version, r.diagnosis AS r_diagnosis, \
    r.verdict AS r_verdict, r.reviewer_name AS r_reviewer, r.at AS r_at, n.note AS r_note \
    FROM cases c LEFT JOIN predictions p ON p.case_id = c.id \
    LEFT JOIN case_reviews r ON r.case_id = c.id AND r.version = c.review_version \
    LEFT JOIN case_review_notes n ON n.case_id = c.id AND n.version = c.review_version";

/// A bound value of a dynamically built statement.
enum Arg {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// A WHERE clause with its values, numbered in order.
#[derive(Default)]
struct Clause {
    sql: String,
    args: Vec<Arg>,
}

impl Clause {
    fn and(&mut self, condition: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
    }

    /// Adds `value` and returns its placeholder.
    fn arg(&mut self, value: Arg) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    fn of(filter: &CaseFilter) -> Self {
        let mut c = Self::default();
        match filter.status {
            None => c.and("c.deleted_at IS NULL"),
            Some(StatusFilter::Deleted) => c.and("c.deleted_at IS NOT NULL"),
            Some(StatusFilter::Live(status)) => {
                let p = c.arg(Arg::Text(status.as_str().to_owned()));
                c.and(&format!("c.deleted_at IS NULL AND c.status = {p}"));
            }
        }
        if let Some(v) = &filter.verdict {
            let p = c.arg(Arg::Text(v.clone()));
            c.and(&format!("p.verdict = {p}"));
        }
        if let Some(d) = &filter.diagnosis {
            let p = c.arg(Arg::Text(d.clone()));
            c.and(&format!("p.top_class = {p}"));
        }
        match filter.reviewed {
            Some(true) => c.and("c.review_version IS NOT NULL"),
            Some(false) => c.and("c.review_version IS NULL"),
            None => {}
        }
        if let Some(m) = &filter.model_version {
            let p = c.arg(Arg::Text(m.clone()));
            c.and(&format!("c.model_version = {p}"));
        }
        if let Some(t) = filter.from {
            let p = c.arg(Arg::Time(t));
            c.and(&format!("c.created_at >= {p}"));
        }
        if let Some(t) = filter.until {
            let p = c.arg(Arg::Time(t));
            c.and(&format!("c.created_at < {p}"));
        }
        c
    }
}

fn order_by(sort: CaseSort) -> String {
    let dir = if sort.descending { "DESC" } else { "ASC" };
    // `NULLS LAST` only on a column that can be empty. On a NOT NULL column it changes nothing,
    // but PostgreSQL does not use the constraint to see that, so `created_at DESC NULLS LAST`
    // cannot be read backwards off `cases_by_created` (which gives `DESC NULLS FIRST`): the
    // newest-first list sorted every case for each page (BENCHMARKS.md, the clinic's list).
    let nulls = if sort.key.nullable() {
        " NULLS LAST"
    } else {
        ""
    };
    format!(" ORDER BY {} {dir}{nulls}, c.id {dir}", sort.key.column())
}

/// Binds the clause's arguments to a query, in order (either database).
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Time(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

/// The summary strip of the past-cases page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClinicSummary {
    /// Cases created since the start of the day given.
    pub cases_today: i64,
    /// Live analysed cases nobody reviewed yet.
    pub waiting_for_review: i64,
    /// Live cases whose analysis failed.
    pub failed: i64,
    /// Live reviewed cases.
    pub reviewed: i64,
    /// Of those, the ones whose latest review gives the model's diagnosis.
    pub agreeing: i64,
}

/// A review to record.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// The case.
    pub case_id: Uuid,
    /// The reviewer's account.
    pub reviewer: Uuid,
    /// The reviewer's user name (kept with the review).
    pub reviewer_name: String,
    /// The reviewer's diagnosis (HAM10000 code).
    pub diagnosis: String,
    /// The clinician's verdict.
    pub verdict: String,
    /// A note, if any.
    pub note: Option<String>,
    /// The request behind it.
    pub request_id: Option<String>,
}

/// A stored review (one version).
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    /// The case.
    pub case_id: Uuid,
    /// Version, from 1.
    pub version: i32,
    /// Who.
    pub reviewer: String,
    /// The reviewer's diagnosis.
    pub diagnosis: String,
    /// The model's diagnosis when it was reviewed.
    pub model_diagnosis: Option<String>,
    /// The clinician's verdict.
    pub verdict: String,
    /// The note (removed when the case is deleted).
    pub note: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The request behind it.
    pub request_id: Option<String>,
}

#[derive(FromRow)]
struct ReviewRow {
    case_id: Uuid,
    version: i32,
    reviewer_name: String,
    diagnosis: String,
    model_diagnosis: Option<String>,
    verdict: String,
    note: Option<String>,
    at: DateTime<Utc>,
    request_id: Option<String>,
}

/// How many live reviewed cases share a model output and a latest review.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AgreementCount {
    /// Model version.
    pub model_version: String,
    /// The model's diagnosis.
    pub model_diagnosis: String,
    /// The model's verdict.
    pub model_verdict: String,
    /// The reviewer's diagnosis.
    pub review_diagnosis: String,
    /// The clinician's verdict.
    pub review_verdict: String,
    /// Cases.
    pub count: i64,
}

impl Store {
    /// One page of the list: `limit` cases after skipping `offset`.
    pub async fn list_cases(
        &self,
        filter: &CaseFilter,
        sort: CaseSort,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<CaseRecord>, StorageError> {
        let mut clause = Clause::of(filter);
        let limit_p = clause.arg(Arg::Int(limit));
        let offset_p = clause.arg(Arg::Int(offset));
        let order = order_by(sort);
        // The page's ids first, then their rows: the skipped cases are only counted off an
        // index (the planner drops the predictions join where no filter or sort reads it),
        // not joined to their results and reviews (page 1000 took 0.8 s the other way).
        let sql = format!(
            "{RECORD_SELECT} WHERE c.id IN (SELECT c.id FROM cases c \
             LEFT JOIN predictions p ON p.case_id = c.id{}{order} \
             LIMIT {limit_p} OFFSET {offset_p}){order}",
            clause.sql
        );
        let rows = on_db!(self, read, |pool, d| bind_all!(
            sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(sql)),
            clause.args
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// How many cases the filter lets through.
    pub async fn count_cases(&self, filter: &CaseFilter) -> Result<i64, StorageError> {
        let clause = Clause::of(filter);
        // The predictions join is removed by the planner when no filter reads it.
        let sql = format!(
            "SELECT count(*) FROM cases c LEFT JOIN predictions p ON p.case_id = c.id{}",
            clause.sql
        );
        Ok(on_db!(self, read, |pool, d| bind_all!(
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)),
            clause.args
        )
        .fetch_one(pool)
        .await?))
    }

    /// Every case the filter lets through, in list order, as a stream read from one cursor:
    /// memory stays flat however many cases there are.
    pub fn export_cases(
        &self,
        filter: &CaseFilter,
        sort: CaseSort,
    ) -> impl Stream<Item = Result<CaseRecord, StorageError>> + Send + '_ {
        let clause = Clause::of(filter);
        let sql = format!("{RECORD_SELECT}{}{}", clause.sql, order_by(sort));
        let rows = match self.db() {
            crate::Db::Postgres(pool) => bind_all!(
                sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(sql)),
                clause.args
            )
            .fetch(pool)
            .left_stream(),
            crate::Db::Sqlite(lite) => bind_all!(
                sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(sql)),
                clause.args
            )
            .fetch(lite.read())
            .right_stream(),
        };
        rows.map(|row| CaseRecord::try_from(row?))
    }

    /// Model versions that produced a result, for the filter (a skip scan over the index).
    pub async fn model_versions(&self) -> Result<Vec<String>, StorageError> {
        Ok(on_db!(self, read, |pool, d| sqlx::query_scalar(
            "WITH RECURSIVE v AS ( \
                SELECT min(model_version) AS m FROM cases \
                UNION ALL \
                SELECT (SELECT min(model_version) FROM cases WHERE model_version > v.m) \
                FROM v WHERE v.m IS NOT NULL) \
             SELECT m FROM v WHERE m IS NOT NULL",
        )
        .fetch_all(pool)
        .await?))
    }

    /// The summary strip; "today" starts at `day_start`.
    pub async fn clinic_summary(
        &self,
        day_start: DateTime<Utc>,
    ) -> Result<ClinicSummary, StorageError> {
        let (cases_today, waiting_for_review, failed, reviewed, agreeing): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = on_db!(self, read, |pool, d| sqlx::query_as(
            "SELECT \
               (SELECT count(*) FROM cases WHERE created_at >= $1), \
               (SELECT count(*) FROM cases WHERE status = 'done' AND deleted_at IS NULL \
                  AND review_version IS NULL), \
               (SELECT count(*) FROM cases WHERE status = 'failed' AND deleted_at IS NULL), \
               r.reviewed, r.agreeing \
             FROM (SELECT count(*) AS reviewed, \
                     count(*) FILTER (WHERE r.diagnosis = r.model_diagnosis) AS agreeing \
                   FROM cases c JOIN case_reviews r \
                     ON r.case_id = c.id AND r.version = c.review_version \
                   WHERE c.deleted_at IS NULL) r",
        )
        .bind(day_start)
        .fetch_one(pool)
        .await?);
        Ok(ClinicSummary {
            cases_today,
            waiting_for_review,
            failed,
            reviewed,
            agreeing,
        })
    }

    /// Records a review (version 1) or an amendment (the next version) of a live case, with its
    /// `reviewed` event, in one transaction. Returns the version, or `None` when the case is
    /// unknown or deleted. Earlier versions are never changed.
    pub async fn add_review(&self, review: &NewReview) -> Result<Option<i32>, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            // The row lock taken here orders two reviewers amending at once.
            let version: Option<i32> = sqlx::query_scalar(d.sql(
                "UPDATE cases SET review_version = COALESCE(review_version, 0) + 1, \
             updated_at = {now} WHERE id = $1 AND deleted_at IS NULL RETURNING review_version",
            ))
            .bind(review.case_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(version) = version else {
                return Ok(None);
            };
            let model_diagnosis: Option<String> =
                sqlx::query_scalar("SELECT top_class FROM predictions WHERE case_id = $1")
                    .bind(review.case_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query(d.sql(
                "INSERT INTO case_reviews (case_id, version, reviewer, reviewer_name, diagnosis, \
             model_diagnosis, verdict, request_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now})",
            ))
            .bind(review.case_id)
            .bind(version)
            .bind(review.reviewer)
            .bind(&review.reviewer_name)
            .bind(&review.diagnosis)
            .bind(&model_diagnosis)
            .bind(&review.verdict)
            .bind(&review.request_id)
            .execute(&mut *tx)
            .await?;
            if let Some(note) = &review.note {
                sqlx::query(
                    "INSERT INTO case_review_notes (case_id, version, note) VALUES ($1, $2, $3)",
                )
                .bind(review.case_id)
                .bind(version)
                .bind(note)
                .execute(&mut *tx)
                .await?;
            }
            // The note stays out of the permanent trail (it may name the patient).
            append_event!(
                &mut *tx,
                review.case_id,
                EventKind::Reviewed,
                Actor::staff(&review.reviewer_name),
                review.request_id.as_deref(),
                json!({
                    "version": version,
                    "diagnosis": review.diagnosis,
                    "model_diagnosis": model_diagnosis,
                    "agrees_with_model": model_diagnosis.as_deref() == Some(review.diagnosis.as_str()),
                    "verdict": review.verdict,
                    "note": review.note.is_some(),
                })
            )?;
            tx.commit().await?;
            Ok(Some(version))
        })
    }

    /// Every review of a case, first version first.
    pub async fn reviews(&self, case_id: Uuid) -> Result<Vec<Review>, StorageError> {
        let rows = on_db!(self, read, |pool, d| sqlx::query_as::<_, ReviewRow>(
            "SELECT r.case_id, r.version, r.reviewer_name, r.diagnosis, r.model_diagnosis, \
             r.verdict, n.note, r.at, r.request_id FROM case_reviews r \
             LEFT JOIN case_review_notes n ON n.case_id = r.case_id AND n.version = r.version \
             WHERE r.case_id = $1 ORDER BY r.version",
        )
        .bind(case_id)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| Review {
                case_id: r.case_id,
                version: r.version,
                reviewer: r.reviewer_name,
                diagnosis: r.diagnosis,
                model_diagnosis: r.model_diagnosis,
                verdict: r.verdict,
                note: r.note,
                at: r.at,
                request_id: r.request_id,
            })
            .collect())
    }

    /// Appends a staff member's view of a case to its trail: every view, no window (who looked
    /// at a patient's case is part of the record).
    pub async fn record_staff_view(
        &self,
        case_id: Uuid,
        actor: &Actor,
        request_id: Option<&str>,
    ) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| {
            let mut conn = pool.acquire().await?;
            append_event!(
                &mut *conn,
                case_id,
                EventKind::Viewed,
                actor,
                request_id,
                json!({ "page": "staff" })
            )?;
            Ok(())
        })
    }

    /// Live reviewed cases counted by model output and latest review.
    pub async fn agreement_counts(&self) -> Result<Vec<AgreementCount>, StorageError> {
        Ok(on_db!(self, read, |pool, d| sqlx::query_as::<
            _,
            AgreementCount,
        >(
            "SELECT p.model_version, p.top_class AS model_diagnosis, p.verdict AS model_verdict, \
             r.diagnosis AS review_diagnosis, r.verdict AS review_verdict, count(*) AS count \
             FROM cases c JOIN case_reviews r ON r.case_id = c.id AND r.version = c.review_version \
             JOIN predictions p ON p.case_id = c.id WHERE c.deleted_at IS NULL \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 4",
        )
        .fetch_all(pool)
        .await?))
    }
}
