//! Synthetic cases for benchmarks (`mole bench-admin`): many cases in one statement, without
//! photos, shaped like real ones where the clinic's pages look (status, model output, reviews).

use uuid::Uuid;

use crate::{StorageError, Store, on_db};

/// Seeds `$1` cases after `$2` existing ones: 1 % failed, 0.4 % still queued, the rest analysed by
/// one of two model versions (diagnoses drawn roughly as HAM10000's), one every 90 s back from
/// now.
const SEED: &str = "
WITH k(ord, code, name, mal) AS (VALUES
    (1, 'akiec', 'Actinic keratosis', true), (2, 'bcc', 'Basal cell carcinoma', true),
    (3, 'bkl', 'Benign keratosis', false), (4, 'df', 'Dermatofibroma', false),
    (5, 'mel', 'Melanoma', true), (6, 'nv', 'Melanocytic nevus', false),
    (7, 'vasc', 'Vascular lesion', false)),
s AS (
    SELECT i, now() - ((i + $2) * interval '90 seconds') AS ts,
        (ARRAY['nv','nv','nv','nv','nv','nv','nv','nv','mel','bkl','bkl','bcc','akiec','vasc','df'])
            [1 + (abs(hashint4(i::int)) % 15)] AS top,
        0.40 + (abs(hashint4((i + 7)::int)) % 55) / 100.0 AS pt
    FROM generate_series(1, $1) i),
c AS (
    INSERT INTO cases (id, status, created_at, updated_at, request_id, uploader, image_sha256,
        model_version, started_at, finished_at, attempts, queue_ms, inference_ms, batch_size,
        error_code, error)
    SELECT gen_random_uuid(),
        CASE WHEN i % 100 = 0 THEN 'failed' WHEN i % 250 = 1 THEN 'queued' ELSE 'done' END,
        ts, ts, 'bench-' || (i + $2), md5('u' || (i + $2)) || md5('v' || i),
        md5('p' || (i + $2)) || md5('q' || i),
        CASE WHEN i % 100 = 0 OR i % 250 = 1 THEN NULL
             WHEN i % 3 = 0 THEN 'mole-v1@1.0.0' ELSE 'mole-v2@2.0.0' END,
        ts, CASE WHEN i % 250 = 1 THEN NULL ELSE ts + interval '2 seconds' END,
        CASE WHEN i % 250 = 1 THEN 0 ELSE 1 END,
        CASE WHEN i % 100 = 0 OR i % 250 = 1 THEN NULL ELSE 40 + i % 200 END,
        CASE WHEN i % 100 = 0 OR i % 250 = 1 THEN NULL ELSE 30 + i % 50 END,
        CASE WHEN i % 100 = 0 OR i % 250 = 1 THEN NULL ELSE 1 + i % 8 END,
        CASE WHEN i % 100 = 0 THEN 'not_an_image' END,
        CASE WHEN i % 100 = 0 THEN 'The file is not a photo.' END
    FROM s
    RETURNING id, status, model_version, finished_at, request_id)
INSERT INTO predictions (case_id, model_version, verdict, p_malignant, threshold, top_class,
    classes, created_at)
SELECT c.id, c.model_version,
    CASE WHEN pm >= 0.33 THEN 'see_a_doctor' ELSE 'looks_benign' END, pm, 0.33, top,
    (SELECT jsonb_agg(jsonb_build_object('code', k.code, 'name', k.name, 'malignant', k.mal,
        'probability', CASE WHEN k.code = top THEN pt ELSE (1 - pt) / 6 END) ORDER BY k.ord)
     FROM k),
    c.finished_at
FROM c JOIN (
    SELECT 'bench-' || (i + $2) AS request_id, top, pt::real AS pt,
        (CASE WHEN top IN ('mel', 'bcc', 'akiec') THEN pt + 2 * (1 - pt) / 6
              ELSE 3 * (1 - pt) / 6 END)::real AS pm
    FROM s) x ON x.request_id = c.request_id
WHERE c.status = 'done'";

/// Reviews a fifth of the analysed cases (80 % of those agreeing with the model) as `$1`.
const REVIEW: &str = "
WITH picked AS (
    SELECT c.id, p.top_class, p.verdict, abs(hashint4(hashtext(c.id::text))) % 100 AS r
    FROM cases c JOIN predictions p ON p.case_id = c.id
    WHERE c.review_version IS NULL),
r AS (
    INSERT INTO case_reviews (case_id, version, reviewer, reviewer_name, diagnosis,
        model_diagnosis, verdict)
    SELECT id, 1, $1, 'bench', CASE WHEN r < 16 THEN top_class ELSE 'nv' END, top_class,
        CASE WHEN r < 16 THEN verdict ELSE 'looks_benign' END
    FROM picked WHERE r < 20
    RETURNING case_id)
UPDATE cases SET review_version = 1 FROM r WHERE cases.id = r.case_id";

impl Store {
    /// The benchmark data is written in PostgreSQL's SQL (the clinic benchmark measures the
    /// scaled mode).
    fn synthetic_pool(&self) -> Result<&sqlx::PgPool, StorageError> {
        self.pg_pool().ok_or(StorageError::Unsupported(
            "synthetic benchmark cases need PostgreSQL",
        ))
    }

    /// Cases stored, deleted ones included.
    pub async fn count_all_cases(&self) -> Result<i64, StorageError> {
        Ok(on_db!(self, read, |pool, d| sqlx::query_scalar(
            "SELECT count(*) FROM cases"
        )
        .fetch_one(pool)
        .await?))
    }

    /// Adds `n` synthetic analysed cases (no photos, no audit events) for benchmarks.
    pub async fn seed_synthetic_cases(&self, n: i64) -> Result<(), StorageError> {
        let pool = self.synthetic_pool()?;
        let have = self.count_all_cases().await?;
        sqlx::query(SEED).bind(n).bind(have).execute(pool).await?;
        Ok(())
    }

    /// Reviews a fifth of the analysed cases as `reviewer`, unless some case has a review
    /// already (so that a rerun measures the same data).
    pub async fn seed_synthetic_reviews(&self, reviewer: Uuid) -> Result<(), StorageError> {
        let pool = self.synthetic_pool()?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM case_reviews)")
            .fetch_one(pool)
            .await?;
        if !any {
            sqlx::query(REVIEW).bind(reviewer).execute(pool).await?;
        }
        Ok(())
    }

    /// After seeding, what autovacuum does after a bulk load (a server may run without it):
    /// the planner's statistics, and the visibility map that lets a count read an index only.
    pub async fn vacuum_analyze(&self) -> Result<(), StorageError> {
        let pool = self.synthetic_pool()?;
        sqlx::raw_sql("VACUUM (ANALYZE)").execute(pool).await?;
        Ok(())
    }
}
