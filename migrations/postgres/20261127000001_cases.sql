-- Cases, their images, predictions and the append-only audit trail.
--
-- PostgreSQL is the source of truth for every case; the Redis queue only carries case ids, so a
-- lost job is found again here (see `enqueued_at`, `lease_until`). Column types stay close to
-- what SQLite can hold (text status, uuid, timestamps, JSON) so an embedded mode can mirror them.

CREATE TABLE cases (
    id              uuid PRIMARY KEY,
    -- queued -> processing -> done | failed (a transient failure sends processing back to queued)
    status          text        NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The HTTP request that created the case; it follows the case into the job's logs.
    request_id      text        NOT NULL,
    -- sha256 (hex) of the uploader's browser token: the right to delete. Never the token itself.
    uploader        text        NOT NULL,
    -- Clinic accounts come later; a case then belongs to an account as well.
    owner_account   uuid,
    -- sha256 (hex) of the uploaded bytes: the same photo sent twice by the same uploader (a double
    -- click) returns the same case instead of a second one.
    image_sha256    text        NOT NULL,
    -- Queue bookkeeping. `enqueued_at` NULL means no job was pushed yet (Redis was down).
    enqueued_at     timestamptz,
    enqueue_count   integer     NOT NULL DEFAULT 0,
    -- Claims by workers; a claim holds a lease, and an expired lease means the worker died.
    attempts        integer     NOT NULL DEFAULT 0,
    claimed_by      text,
    lease_until     timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    -- Outcome.
    error_code      text,
    error           text,
    model_version   text,
    queue_ms        integer,
    inference_ms    integer,
    batch_size      integer,
    deleted_at      timestamptz
);

-- One live case per (uploader, photo): re-submission is idempotent, a deleted case frees the slot.
CREATE UNIQUE INDEX cases_resubmission ON cases (uploader, image_sha256) WHERE deleted_at IS NULL;
-- The recovery sweep looks only at unfinished live cases.
CREATE INDEX cases_unfinished ON cases (created_at)
    WHERE status IN ('queued', 'processing') AND deleted_at IS NULL;

-- The photo as the model sees it: decoded, EXIF orientation applied, re-encoded as PNG, so no
-- EXIF/GPS or other metadata of the upload survives. Deleted with the case.
CREATE TABLE case_images (
    case_id         uuid        PRIMARY KEY REFERENCES cases (id),
    content_type    text        NOT NULL,
    width           integer     NOT NULL,
    height          integer     NOT NULL,
    bytes           bytea       NOT NULL,
    -- What the model looks at: the centre square resized to the model's input side, as PNG, made
    -- by the web process from the same decoded pixels. Preprocessing it gives the same tensor as
    -- preprocessing `bytes` (crop and resize are then identities), so a worker whose model has
    -- this input side reads a few kilobytes instead of decoding a phone photo again; any other
    -- worker uses `bytes`. NULL when the web process knew no model.
    model_input      bytea,
    model_input_side integer,
    CHECK ((model_input IS NULL) = (model_input_side IS NULL))
);
-- PNG is compressed already: store it out of line without trying to compress it again.
ALTER TABLE case_images ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- At most one result per case: the worker's write is idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE predictions (
    case_id         uuid        PRIMARY KEY REFERENCES cases (id),
    model_version   text        NOT NULL,
    verdict         text        NOT NULL,
    p_malignant     real        NOT NULL,
    -- The card's threshold the verdict was decided at (see a doctor when p_malignant >= it): the
    -- rule stays with the case when the model changes.
    threshold       real        NOT NULL,
    top_class       text        NOT NULL,
    -- [{"code", "name", "malignant", "probability"}] in the model's output order.
    classes         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every state change of a case, with time and actor. Append-only (enforced below).
CREATE TABLE case_events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id         uuid        NOT NULL REFERENCES cases (id),
    kind            text        NOT NULL CHECK (kind IN (
                        'created', 'queued', 'requeued', 'started', 'retrying',
                        'completed', 'failed', 'viewed', 'deleted')),
    -- e.g. 'uploader:1a2b3c4d', 'visitor', 'worker:<name>', 'system:recovery'
    actor           text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id      text,
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX case_events_by_case ON case_events (case_id, id);

CREATE FUNCTION case_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER case_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only();

CREATE TRIGGER case_events_no_truncate
    BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only();

-- Every state change is announced to listening web processes when its transaction commits, so a
-- result written by any worker reaches the open live pages. Views change no state: not announced.
CREATE FUNCTION case_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mole_case_events',
        json_build_object('case_id', NEW.case_id, 'kind', NEW.kind, 'event_id', NEW.id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER case_events_announce
    AFTER INSERT ON case_events
    FOR EACH ROW WHEN (NEW.kind <> 'viewed')
    EXECUTE FUNCTION case_events_notify();
