-- mole's schema in SQLite (the embedded mode): the same tables, columns and rules as PostgreSQL's
-- migrations up to 20261206000001, in SQLite's types. Kept apart from migrations/postgres/ because
-- the two databases spell the same schema differently; the storage contract tests
-- (crates/storage/tests/contract.rs) run the same cases against both, so the two cannot drift.
--
-- Types: ids are uuid BLOBs (sqlx's encoding), times are RFC 3339 text in UTC with the +00:00
-- offset (sqlx's encoding of a DateTime<Utc>, and `now` below), so comparing and ordering them as
-- text compares and orders the times. JSON is text. Booleans are integers.

CREATE TABLE cases (
    id              BLOB    PRIMARY KEY,
    status          TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'done', 'failed', 'refused')),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    request_id      TEXT    NOT NULL,
    uploader        TEXT    NOT NULL,
    owner_account   BLOB,
    image_sha256    TEXT    NOT NULL,
    enqueued_at     TEXT,
    enqueue_count   INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    lease_until     TEXT,
    started_at      TEXT,
    finished_at     TEXT,
    error_code      TEXT,
    error           TEXT,
    model_version   TEXT,
    queue_ms        INTEGER,
    inference_ms    INTEGER,
    batch_size      INTEGER,
    deleted_at      TEXT,
    review_version  INTEGER
);
CREATE UNIQUE INDEX cases_resubmission ON cases (uploader, image_sha256) WHERE deleted_at IS NULL;
CREATE INDEX cases_unfinished ON cases (created_at)
    WHERE status IN ('queued', 'processing') AND deleted_at IS NULL;
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_status ON cases (status, created_at);
CREATE INDEX cases_by_model ON cases (model_version, created_at);
CREATE INDEX cases_waiting_review ON cases (created_at)
    WHERE status = 'done' AND deleted_at IS NULL AND review_version IS NULL;
CREATE INDEX cases_live ON cases (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX cases_reviewed ON cases (id, review_version)
    WHERE review_version IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX cases_by_uploader ON cases (uploader, created_at DESC) WHERE deleted_at IS NULL;

CREATE TABLE case_images (
    case_id          BLOB    PRIMARY KEY REFERENCES cases (id),
    content_type     TEXT    NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    bytes            BLOB    NOT NULL,
    model_input      BLOB,
    model_input_side INTEGER,
    CHECK ((model_input IS NULL) = (model_input_side IS NULL))
);

CREATE TABLE predictions (
    case_id         BLOB    PRIMARY KEY REFERENCES cases (id),
    model_version   TEXT    NOT NULL,
    verdict         TEXT    NOT NULL,
    p_malignant     REAL    NOT NULL,
    threshold       REAL    NOT NULL,
    top_class       TEXT    NOT NULL,
    classes         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX predictions_by_top_class ON predictions (top_class);
CREATE INDEX predictions_by_p_malignant ON predictions (p_malignant);
CREATE INDEX predictions_list ON predictions (case_id, verdict, top_class, p_malignant);

-- AUTOINCREMENT: ids only grow and are never reused, so "events after id N" is exact (the
-- embedded listener reads them so).
CREATE TABLE case_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id         BLOB    NOT NULL REFERENCES cases (id),
    kind            TEXT    NOT NULL CHECK (kind IN (
                        'created', 'queued', 'requeued', 'started', 'retrying',
                        'completed', 'failed', 'viewed', 'deleted', 'reviewed', 'refused',
                        'explained')),
    actor           TEXT    NOT NULL,
    at              TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    request_id      TEXT,
    detail          TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_by_case ON case_events (case_id, id);
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only (UPDATE refused)'); END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only (DELETE refused)'); END;

CREATE TABLE case_views (
    case_id         BLOB    NOT NULL REFERENCES cases (id),
    viewer          TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (case_id, viewer)
);

CREATE TABLE staff_accounts (
    id                  BLOB    PRIMARY KEY,
    username            TEXT    NOT NULL UNIQUE CHECK (
                            length(username) BETWEEN 2 AND 64
                            AND substr(username, 1, 1) GLOB '[a-z0-9]'
                            AND username NOT GLOB '*[^a-z0-9._-]*'),
    role                TEXT    NOT NULL CHECK (role IN ('reviewer', 'admin')),
    password_hash       TEXT    NOT NULL,
    session_epoch       INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    password_changed_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    last_sign_in_at     TEXT,
    disabled_at         TEXT
);

CREATE TABLE staff_sessions (
    id_hash     TEXT    PRIMARY KEY,
    data        TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL
);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);

CREATE TABLE sign_in_throttle (
    key             TEXT    PRIMARY KEY,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at TEXT
);

CREATE TABLE case_reviews (
    case_id         BLOB    NOT NULL REFERENCES cases (id),
    version         INTEGER NOT NULL CHECK (version >= 1),
    reviewer        BLOB    NOT NULL REFERENCES staff_accounts (id),
    reviewer_name   TEXT    NOT NULL,
    diagnosis       TEXT    NOT NULL,
    model_diagnosis TEXT,
    verdict         TEXT    NOT NULL CHECK (verdict IN ('see_a_doctor', 'looks_benign')),
    at              TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    request_id      TEXT,
    PRIMARY KEY (case_id, version)
);
CREATE TRIGGER case_reviews_no_update BEFORE UPDATE ON case_reviews
BEGIN SELECT RAISE(ABORT, 'case_reviews is append-only (UPDATE refused)'); END;
CREATE TRIGGER case_reviews_no_delete BEFORE DELETE ON case_reviews
BEGIN SELECT RAISE(ABORT, 'case_reviews is append-only (DELETE refused)'); END;

CREATE TABLE case_review_notes (
    case_id     BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    PRIMARY KEY (case_id, version),
    FOREIGN KEY (case_id, version) REFERENCES case_reviews (case_id, version)
);

CREATE TABLE staff_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    request_id  TEXT,
    detail      TEXT    NOT NULL DEFAULT '{}'
);
CREATE TRIGGER staff_events_no_update BEFORE UPDATE ON staff_events
BEGIN SELECT RAISE(ABORT, 'staff_events is append-only (UPDATE refused)'); END;
CREATE TRIGGER staff_events_no_delete BEFORE DELETE ON staff_events
BEGIN SELECT RAISE(ABORT, 'staff_events is append-only (DELETE refused)'); END;

CREATE TABLE refusals (
    case_id         BLOB    PRIMARY KEY REFERENCES cases (id),
    model_version   TEXT    NOT NULL,
    reason          TEXT    NOT NULL CHECK (reason IN (
                        'too_small', 'too_dark', 'overexposed', 'too_blurry', 'not_a_lesion')),
    detail          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE case_explanations (
    case_id         BLOB    PRIMARY KEY REFERENCES cases (id),
    model_version   TEXT    NOT NULL,
    method          TEXT    NOT NULL CHECK (method IN ('occlusion')),
    map             TEXT    NOT NULL,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
