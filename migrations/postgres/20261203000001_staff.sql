-- Clinic staff: accounts, their sessions, sign-in throttling, reviews of cases and the staff's own
-- append-only trail (sign-ins, exports, account changes).

-- One function refuses every change of an append-only table, naming the table.
CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TABLE staff_accounts (
    id                  uuid        PRIMARY KEY,
    -- Lower case; what staff type to sign in and what the audit trail names ('staff:<username>').
    username            text        NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    -- reviewer: reads and reviews cases; admin: also manages accounts and deletes cases.
    role                text        NOT NULL CHECK (role IN ('reviewer', 'admin')),
    -- PHC string of argon2id (salt and parameters inside). Never the password.
    password_hash       text        NOT NULL,
    -- Bumped when the password is reset or the account disabled: every session signed in before
    -- then carries the old value and is refused.
    session_epoch       integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at     timestamptz,
    disabled_at         timestamptz
);

-- tower-sessions records. The key is the sha256 of the session id, so a copy of this table
-- holds no cookie that would sign anyone in.
CREATE TABLE staff_sessions (
    id_hash     text        PRIMARY KEY,
    data        jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);

-- Failed sign-ins per key ('account:<username>' whether or not it exists, 'address:<ip>'). A key
-- with `failures` at its limit whose last failure is within the lockout is refused without the
-- password being checked; a quiet lockout period starts the count again.
CREATE TABLE sign_in_throttle (
    key             text        PRIMARY KEY,
    failures        integer     NOT NULL DEFAULT 0,
    last_failure_at timestamptz
);

-- Reviews: one row per version, never changed. The latest version of a case is
-- `cases.review_version` (NULL: not reviewed), bumped in the same transaction as the insert, which
-- also serialises two reviewers amending at once.
CREATE TABLE case_reviews (
    case_id         uuid        NOT NULL REFERENCES cases (id),
    version         integer     NOT NULL CHECK (version >= 1),
    reviewer        uuid        NOT NULL REFERENCES staff_accounts (id),
    reviewer_name   text        NOT NULL,
    -- The reviewer's diagnosis (HAM10000 code) and the model's top class when it was reviewed.
    diagnosis       text        NOT NULL,
    model_diagnosis text,
    -- The verdict the clinician reached.
    verdict         text        NOT NULL CHECK (verdict IN ('see_a_doctor', 'looks_benign')),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id      text,
    PRIMARY KEY (case_id, version)
);
CREATE TRIGGER case_reviews_no_update_or_delete
    BEFORE UPDATE OR DELETE ON case_reviews
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER case_reviews_no_truncate
    BEFORE TRUNCATE ON case_reviews
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A review's free-text note may name the patient: it is kept apart from the immutable review so
-- that deleting the case can remove it (and nothing else of the review).
CREATE TABLE case_review_notes (
    case_id     uuid        NOT NULL,
    version     integer     NOT NULL,
    note        text        NOT NULL,
    PRIMARY KEY (case_id, version),
    FOREIGN KEY (case_id, version) REFERENCES case_reviews (case_id, version)
);

ALTER TABLE cases ADD COLUMN review_version integer;

ALTER TABLE case_events DROP CONSTRAINT case_events_kind_check;
ALTER TABLE case_events ADD CONSTRAINT case_events_kind_check CHECK (kind IN (
    'created', 'queued', 'requeued', 'started', 'retrying',
    'completed', 'failed', 'viewed', 'deleted', 'reviewed'));

-- What staff did that is not about one case: sign-ins, sign-outs, exports, account changes.
CREATE TABLE staff_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    request_id  text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE TRIGGER staff_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON staff_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER staff_events_no_truncate
    BEFORE TRUNCATE ON staff_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The past-cases list: newest first by default, filtered by status or model version; the summary
-- strip's "waiting for review" counts the partial index alone.
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_status ON cases (status, created_at);
CREATE INDEX cases_by_model ON cases (model_version, created_at);
CREATE INDEX cases_waiting_review ON cases (created_at)
    WHERE status = 'done' AND deleted_at IS NULL AND review_version IS NULL;
CREATE INDEX predictions_by_top_class ON predictions (top_class);
CREATE INDEX predictions_by_p_malignant ON predictions (p_malignant);
