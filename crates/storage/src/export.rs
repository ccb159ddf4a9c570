//! Case bundles: everything a clinic's database holds about its cases and staff, as JSON Lines,
//! to move it from one store to another (the embedded SQLite file to PostgreSQL when the clinic
//! outgrows it, or back).
//!
//! A bundle is a header line, one line with the staff (accounts with their password hashes, and
//! their trail), then one line per case: its row, photo and model view (base64), prediction or
//! refusal, occlusion map, audit trail, reviews with their notes, and view records. Sessions and
//! sign-in throttling are not carried (they only matter to the running service). Importing keeps
//! every id, time, actor and detail; events get new ids in the target, in their order.
//! Importing a case the target already holds skips it, so an import that stopped can be run
//! again.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

use crate::queries::{CaseRow, case_columns};
use crate::staff::AccountRow;
use crate::{StorageError, Store, on_db};

/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT: &str = "mole-case-bundle";
/// Its version.
pub const BUNDLE_VERSION: u32 = 1;

/// One line of a bundle.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BundleLine {
    /// The first line: what this is.
    Header {
        /// [`BUNDLE_FORMAT`].
        format: String,
        /// [`BUNDLE_VERSION`].
        version: u32,
        /// When it was written.
        exported_at: DateTime<Utc>,
        /// The store it came from ("PostgreSQL", "SQLite …").
        source: String,
    },
    /// Staff accounts and their trail.
    Staff(StaffBundle),
    /// One case.
    Case(Box<CaseBundle>),
}

/// Staff accounts and the staff's trail.
#[derive(Serialize, Deserialize)]
pub struct StaffBundle {
    accounts: Vec<AccountRow>,
    events: Vec<StaffEventRecord>,
}

/// One case with everything stored about it.
#[derive(Serialize, Deserialize)]
pub struct CaseBundle {
    case: CaseRow,
    image: Option<ImageRecord>,
    prediction: Option<PredictionRecord>,
    refusal: Option<RefusalRecord>,
    explanation: Option<ExplanationRecord>,
    events: Vec<EventRecord>,
    reviews: Vec<ReviewRecord>,
    views: Vec<ViewRecord>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct StaffEventRecord {
    at: DateTime<Utc>,
    actor: String,
    action: String,
    request_id: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct ImageRecord {
    content_type: String,
    width: i32,
    height: i32,
    #[serde(with = "base64_bytes")]
    bytes: Vec<u8>,
    #[serde(with = "base64_opt")]
    model_input: Option<Vec<u8>>,
    model_input_side: Option<i32>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct PredictionRecord {
    model_version: String,
    verdict: String,
    p_malignant: f32,
    threshold: f32,
    top_class: String,
    classes: sqlx::types::Json<serde_json::Value>,
    created_at: DateTime<Utc>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct RefusalRecord {
    model_version: String,
    reason: String,
    detail: sqlx::types::Json<serde_json::Value>,
    created_at: DateTime<Utc>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct ExplanationRecord {
    model_version: String,
    method: String,
    map: sqlx::types::Json<serde_json::Value>,
    created_at: DateTime<Utc>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct EventRecord {
    kind: String,
    actor: String,
    at: DateTime<Utc>,
    request_id: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct ReviewRecord {
    version: i32,
    reviewer: Uuid,
    reviewer_name: String,
    diagnosis: String,
    model_diagnosis: Option<String>,
    verdict: String,
    at: DateTime<Utc>,
    request_id: Option<String>,
    note: Option<String>,
}

#[derive(FromRow, Serialize, Deserialize)]
struct ViewRecord {
    viewer: String,
    recorded_at: DateTime<Utc>,
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod base64_opt {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Cases written.
    pub cases: u64,
    /// Cases the target held already (skipped).
    pub skipped: u64,
    /// Audit events written.
    pub events: u64,
    /// Staff accounts written (existing ones are kept).
    pub accounts: u64,
}

impl Store {
    /// The bundle's header line for this store.
    fn bundle_header(&self) -> BundleLine {
        BundleLine::Header {
            format: BUNDLE_FORMAT.to_owned(),
            version: BUNDLE_VERSION,
            exported_at: Utc::now(),
            source: self.describe(),
        }
    }

    /// The staff's accounts and trail.
    async fn bundle_staff(&self) -> Result<StaffBundle, StorageError> {
        let accounts = on_db!(self, read, |pool, d| sqlx::query_as::<_, AccountRow>(
            "SELECT id, username, role, password_hash, session_epoch, created_at, \
             password_changed_at, last_sign_in_at, disabled_at FROM staff_accounts ORDER BY id"
        )
        .fetch_all(pool)
        .await?);
        let events = on_db!(self, read, |pool, d| sqlx::query_as::<_, StaffEventRecord>(
            "SELECT at, actor, action, request_id, detail FROM staff_events ORDER BY id"
        )
        .fetch_all(pool)
        .await?);
        Ok(StaffBundle { accounts, events })
    }

    /// The ids of every case, oldest first (what an export walks through).
    fn bundle_case_ids(&self) -> impl Stream<Item = Result<Uuid, StorageError>> + Send + '_ {
        let sql = "SELECT id FROM cases ORDER BY created_at, id";
        match self.db() {
            crate::Db::Postgres(pool) => sqlx::query_scalar(sql).fetch(pool).left_stream(),
            crate::Db::Sqlite(lite) => sqlx::query_scalar(sql).fetch(lite.read()).right_stream(),
        }
        .map(|id| Ok(id?))
    }

    /// Everything stored about one case; `None` when unknown.
    async fn bundle_case(&self, id: Uuid) -> Result<Option<CaseBundle>, StorageError> {
        on_db!(self, read, |pool, d| {
            // One read transaction: a consistent picture of the case.
            let mut tx = pool.begin().await?;
            let Some(case) = sqlx::query_as::<_, CaseRow>(concat!(
                "SELECT ",
                case_columns!(),
                " FROM cases WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(None);
            };
            let image = sqlx::query_as::<_, ImageRecord>(
                "SELECT content_type, width, height, bytes, model_input, model_input_side \
                 FROM case_images WHERE case_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let prediction = sqlx::query_as::<_, PredictionRecord>(
                "SELECT model_version, verdict, p_malignant, threshold, top_class, classes, \
                 created_at FROM predictions WHERE case_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let refusal = sqlx::query_as::<_, RefusalRecord>(
                "SELECT model_version, reason, detail, created_at FROM refusals \
                 WHERE case_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let explanation = sqlx::query_as::<_, ExplanationRecord>(
                "SELECT model_version, method, map, created_at FROM case_explanations \
                 WHERE case_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let events = sqlx::query_as::<_, EventRecord>(
                "SELECT kind, actor, at, request_id, detail FROM case_events \
                 WHERE case_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let reviews = sqlx::query_as::<_, ReviewRecord>(
                "SELECT r.version, r.reviewer, r.reviewer_name, r.diagnosis, r.model_diagnosis, \
                 r.verdict, r.at, r.request_id, n.note FROM case_reviews r \
                 LEFT JOIN case_review_notes n ON n.case_id = r.case_id AND n.version = r.version \
                 WHERE r.case_id = $1 ORDER BY r.version",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let views = sqlx::query_as::<_, ViewRecord>(
                "SELECT viewer, recorded_at FROM case_views WHERE case_id = $1 ORDER BY viewer",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(CaseBundle {
                case,
                image,
                prediction,
                refusal,
                explanation,
                events,
                reviews,
                views,
            }))
        })
    }

    /// Writes the staff's accounts (those whose id or user name the target has already are
    /// kept as they are) and their trail (entries it lacks). Returns the accounts written.
    async fn import_staff(&self, staff: &StaffBundle) -> Result<u64, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let mut written = 0;
            for a in &staff.accounts {
                written += sqlx::query(
                    "INSERT INTO staff_accounts (id, username, role, password_hash, \
                     session_epoch, created_at, password_changed_at, last_sign_in_at, \
                     disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(a.id)
                .bind(&a.username)
                .bind(&a.role)
                .bind(&a.password_hash)
                .bind(a.session_epoch)
                .bind(a.created_at)
                .bind(a.password_changed_at)
                .bind(a.last_sign_in_at)
                .bind(a.disabled_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            for e in &staff.events {
                // Once: an import run again does not repeat the trail.
                sqlx::query(
                    "INSERT INTO staff_events (at, actor, action, request_id, detail) \
                     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM staff_events \
                     WHERE at = $1 AND actor = $2 AND action = $3)",
                )
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.request_id)
                .bind(&e.detail)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Writes one case with everything stored about it, in one transaction; `Ok(None)` when the
    /// target holds a case with its id already (nothing is written), else the events written.
    async fn import_case(&self, bundle: &CaseBundle) -> Result<Option<u64>, StorageError> {
        let c = &bundle.case;
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let inserted = sqlx::query(concat!(
                "INSERT INTO cases (",
                case_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17, $18, $19, $20, $21, $22) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(c.id)
            .bind(&c.status)
            .bind(c.created_at)
            .bind(c.updated_at)
            .bind(&c.request_id)
            .bind(&c.uploader)
            .bind(&c.image_sha256)
            .bind(c.enqueued_at)
            .bind(c.enqueue_count)
            .bind(c.attempts)
            .bind(&c.claimed_by)
            .bind(c.lease_until)
            .bind(c.started_at)
            .bind(c.finished_at)
            .bind(&c.error_code)
            .bind(&c.error)
            .bind(&c.model_version)
            .bind(c.queue_ms)
            .bind(c.inference_ms)
            .bind(c.batch_size)
            .bind(c.deleted_at)
            .bind(c.review_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(None);
            }
            if let Some(i) = &bundle.image {
                sqlx::query(
                    "INSERT INTO case_images (case_id, content_type, width, height, bytes, \
                     model_input, model_input_side) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(c.id)
                .bind(&i.content_type)
                .bind(i.width)
                .bind(i.height)
                .bind(&i.bytes)
                .bind(&i.model_input)
                .bind(i.model_input_side)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(p) = &bundle.prediction {
                sqlx::query(
                    "INSERT INTO predictions (case_id, model_version, verdict, p_malignant, \
                     threshold, top_class, classes, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.id)
                .bind(&p.model_version)
                .bind(&p.verdict)
                .bind(p.p_malignant)
                .bind(p.threshold)
                .bind(&p.top_class)
                .bind(&p.classes)
                .bind(p.created_at)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(r) = &bundle.refusal {
                sqlx::query(
                    "INSERT INTO refusals (case_id, model_version, reason, detail, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.id)
                .bind(&r.model_version)
                .bind(&r.reason)
                .bind(&r.detail)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(x) = &bundle.explanation {
                sqlx::query(
                    "INSERT INTO case_explanations (case_id, model_version, method, map, \
                     created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(c.id)
                .bind(&x.model_version)
                .bind(&x.method)
                .bind(&x.map)
                .bind(x.created_at)
                .execute(&mut *tx)
                .await?;
            }
            for e in &bundle.events {
                sqlx::query(
                    "INSERT INTO case_events (case_id, kind, actor, at, request_id, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(c.id)
                .bind(&e.kind)
                .bind(&e.actor)
                .bind(e.at)
                .bind(&e.request_id)
                .bind(&e.detail)
                .execute(&mut *tx)
                .await?;
            }
            for r in &bundle.reviews {
                sqlx::query(
                    "INSERT INTO case_reviews (case_id, version, reviewer, reviewer_name, \
                     diagnosis, model_diagnosis, verdict, at, request_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(c.id)
                .bind(r.version)
                .bind(r.reviewer)
                .bind(&r.reviewer_name)
                .bind(&r.diagnosis)
                .bind(&r.model_diagnosis)
                .bind(&r.verdict)
                .bind(r.at)
                .bind(&r.request_id)
                .execute(&mut *tx)
                .await?;
                if let Some(note) = &r.note {
                    sqlx::query(
                        "INSERT INTO case_review_notes (case_id, version, note) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(c.id)
                    .bind(r.version)
                    .bind(note)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for v in &bundle.views {
                sqlx::query(
                    "INSERT INTO case_views (case_id, viewer, recorded_at) VALUES ($1, $2, $3)",
                )
                .bind(c.id)
                .bind(&v.viewer)
                .bind(v.recorded_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(Some(bundle.events.len() as u64))
        })
    }

    /// Writes a whole bundle to `out`, one line at a time (memory stays flat however many cases
    /// there are). Returns the cases written.
    pub async fn export_bundle<W: std::io::Write>(&self, out: &mut W) -> Result<u64, BundleError> {
        write_line(out, &self.bundle_header())?;
        write_line(out, &BundleLine::Staff(self.bundle_staff().await?))?;
        let mut ids = std::pin::pin!(self.bundle_case_ids());
        let mut n = 0;
        while let Some(id) = ids.next().await {
            // A case deleted for good meanwhile (there is no such thing yet) would be skipped.
            if let Some(case) = self.bundle_case(id?).await? {
                write_line(out, &BundleLine::Case(Box::new(case)))?;
                n += 1;
            }
        }
        out.flush()?;
        Ok(n)
    }

    /// Reads a bundle from `input` and writes it into this store (see the module
    /// documentation). Each case is its own transaction.
    pub async fn import_bundle<R: std::io::BufRead>(
        &self,
        input: R,
    ) -> Result<ImportCounts, BundleError> {
        let mut counts = ImportCounts::default();
        let mut lines = input.lines().enumerate();
        match lines.next() {
            Some((_, line)) => match serde_json::from_str(&line?) {
                Ok(BundleLine::Header {
                    format, version, ..
                }) if format == BUNDLE_FORMAT && version == BUNDLE_VERSION => {}
                Ok(BundleLine::Header {
                    format, version, ..
                }) => {
                    return Err(BundleError::Format(format!(
                        "a {format} bundle of version {version}; this build reads \
                         {BUNDLE_FORMAT} version {BUNDLE_VERSION}"
                    )));
                }
                _ => {
                    return Err(BundleError::Format(
                        "the first line is not a mole case bundle's header".to_owned(),
                    ));
                }
            },
            None => return Err(BundleError::Format("the bundle is empty".to_owned())),
        }
        for (number, line) in lines {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: BundleLine = serde_json::from_str(&line)
                .map_err(|e| BundleError::Format(format!("line {}: {e}", number + 1)))?;
            match parsed {
                BundleLine::Header { .. } => {
                    return Err(BundleError::Format(format!(
                        "line {}: a second header",
                        number + 1
                    )));
                }
                BundleLine::Staff(staff) => counts.accounts += self.import_staff(&staff).await?,
                BundleLine::Case(case) => match self.import_case(&case).await? {
                    Some(events) => {
                        counts.cases += 1;
                        counts.events += events;
                    }
                    None => counts.skipped += 1,
                },
            }
        }
        Ok(counts)
    }
}

fn write_line<W: std::io::Write>(out: &mut W, line: &BundleLine) -> Result<(), BundleError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| BundleError::Format(e.to_string()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Everything that can go wrong moving a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading or writing the bundle failed.
    #[error("reading or writing the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// The bundle is not one this build reads.
    #[error("not a readable case bundle: {0}")]
    Format(String),
}

impl From<sqlx::Error> for BundleError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}
