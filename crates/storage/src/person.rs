//! The uploader's side: the cases one browser sent (by its token's hash, newest first) and what
//! a waiting case can be told about the queue ahead of it.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::model::CaseStatus;
use crate::{StorageError, Store, on_db};

/// One of an uploader's own cases, as listed on "my cases".
#[derive(Debug, Clone)]
pub struct OwnCase {
    /// Case id.
    pub id: Uuid,
    /// Where it is in its life.
    pub status: CaseStatus,
    /// When the photo was sent.
    pub created_at: DateTime<Utc>,
    /// The verdict (`see_a_doctor` / `looks_benign`), once done.
    pub verdict: Option<String>,
    /// P(malignant), once done.
    pub p_malignant: Option<f32>,
    /// Why the photo was refused, when it was.
    pub refusal_reason: Option<String>,
}

#[derive(FromRow)]
struct OwnCaseRow {
    id: Uuid,
    status: String,
    created_at: DateTime<Utc>,
    verdict: Option<String>,
    p_malignant: Option<f32>,
    reason: Option<String>,
}

/// What the queue looks like from one waiting case (`Default`: nothing ahead, nothing recent).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueFigures {
    /// Live cases still queued that were sent before this one.
    pub ahead: i64,
    /// Cases that reached a final state in the last [`PACE_WINDOW_SECS`] seconds.
    pub recent_finished: i64,
    /// Seconds between the first of those and now (the span the pace is measured over).
    pub recent_span_secs: f64,
    /// Median seconds from upload to a final state over those cases.
    pub typical_secs: Option<f64>,
}

/// The window over which the workers' recent pace is measured.
pub const PACE_WINDOW_SECS: i64 = 600;

impl QueueFigures {
    /// Finished cases per second over the recent window, when there were enough to say.
    pub fn pace(&self) -> Option<f64> {
        (self.recent_finished >= 3 && self.recent_span_secs > 0.0)
            .then(|| self.recent_finished as f64 / self.recent_span_secs.max(1.0))
    }

    /// The expected seconds until this case's result: the cases ahead at the recent pace, and
    /// never less than the recent typical time; `None` without recent cases to measure on.
    pub fn expected_secs(&self) -> Option<f64> {
        let typical = self.typical_secs?;
        let by_pace = self.pace().map_or(0.0, |p| (self.ahead + 1) as f64 / p);
        Some(typical.max(by_pace))
    }
}

impl Store {
    /// The live cases of one uploader (sha256 hex of its token), newest first, at most `limit`.
    /// Deleted cases lose their uploader, so they are never listed.
    pub async fn uploader_cases(
        &self,
        uploader_hash: &str,
        limit: i64,
    ) -> Result<Vec<OwnCase>, StorageError> {
        let rows = on_db!(self, read, |pool, d| sqlx::query_as::<_, OwnCaseRow>(
            "SELECT c.id, c.status, c.created_at, p.verdict, p.p_malignant, r.reason \
             FROM cases c \
             LEFT JOIN predictions p ON p.case_id = c.id \
             LEFT JOIN refusals r ON r.case_id = c.id \
             WHERE c.uploader = $1 AND c.deleted_at IS NULL \
             ORDER BY c.created_at DESC, c.id DESC LIMIT $2",
        )
        .bind(uploader_hash)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(OwnCase {
                    id: r.id,
                    status: r.status.parse()?,
                    created_at: r.created_at,
                    verdict: r.verdict,
                    p_malignant: r.p_malignant,
                    refusal_reason: r.reason,
                })
            })
            .collect()
    }

    /// The queue as seen from case `id`: how many wait before it, and the recent pace.
    pub async fn queue_figures(&self, id: Uuid) -> Result<QueueFigures, StorageError> {
        let (ahead, recent_finished, recent_span_secs, typical_secs): (
            i64,
            i64,
            Option<f64>,
            Option<f64>,
        ) = on_db!(self, read, |pool, d| {
            // The median time to a result: PostgreSQL's percentile_cont, SQLite's middle row(s).
            let sql = match d {
                crate::Dialect::Postgres => {
                    "WITH me AS (SELECT created_at FROM cases WHERE id = $1), \
                     recent AS (SELECT created_at, finished_at FROM cases \
                                WHERE finished_at > {ago $2} \
                                AND status IN ('done', 'failed', 'refused')) \
                     SELECT \
                       (SELECT count(*) FROM cases c, me WHERE c.status = 'queued' \
                        AND c.deleted_at IS NULL AND c.created_at < me.created_at), \
                       (SELECT count(*) FROM recent), \
                       (SELECT extract(epoch FROM now() - min(finished_at))::float8 FROM recent), \
                       (SELECT percentile_cont(0.5) WITHIN GROUP \
                          (ORDER BY extract(epoch FROM finished_at - created_at))::float8 \
                        FROM recent)"
                }
                crate::Dialect::Sqlite => {
                    "WITH me AS (SELECT created_at FROM cases WHERE id = $1), \
                     recent AS (SELECT finished_at, \
                                  (julianday(finished_at) - julianday(created_at)) * 86400.0 AS secs \
                                FROM cases \
                                WHERE finished_at > {ago $2} \
                                AND status IN ('done', 'failed', 'refused')), \
                     n AS (SELECT count(*) AS n FROM recent) \
                     SELECT \
                       (SELECT count(*) FROM cases c, me WHERE c.status = 'queued' \
                        AND c.deleted_at IS NULL AND c.created_at < me.created_at), \
                       (SELECT n FROM n), \
                       (SELECT (julianday('now') - julianday(min(finished_at))) * 86400.0 \
                        FROM recent), \
                       (SELECT avg(secs) FROM (SELECT secs FROM recent ORDER BY secs \
                          LIMIT 2 - (SELECT n FROM n) % 2 OFFSET ((SELECT n FROM n) - 1) / 2))"
                }
            };
            sqlx::query_as(d.sql(sql))
                .bind(id)
                .bind(PACE_WINDOW_SECS as f64)
                .fetch_one(pool)
                .await?
        });
        Ok(QueueFigures {
            ahead,
            recent_finished,
            recent_span_secs: recent_span_secs.unwrap_or(0.0),
            typical_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(ahead: i64, n: i64, span: f64, typical: Option<f64>) -> QueueFigures {
        QueueFigures {
            ahead,
            recent_finished: n,
            recent_span_secs: span,
            typical_secs: typical,
        }
    }

    #[test]
    fn the_expected_wait_is_the_queue_at_the_recent_pace_and_never_below_the_typical_time() {
        // 60 cases in 60 s: 1 per second; 9 ahead → 10 s.
        assert_eq!(figures(9, 60, 60.0, Some(0.5)).expected_secs(), Some(10.0));
        // An empty queue: the typical time.
        assert_eq!(figures(0, 60, 60.0, Some(2.0)).expected_secs(), Some(2.0));
        // Too few recent cases for a pace: the typical time alone.
        assert_eq!(figures(50, 2, 60.0, Some(2.0)).expected_secs(), Some(2.0));
        // Nothing finished recently: no estimate at all.
        assert_eq!(figures(3, 0, 0.0, None).expected_secs(), None);
    }
}
