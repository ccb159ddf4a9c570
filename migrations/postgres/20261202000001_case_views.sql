-- Views are recorded at most once per viewer per case within a window (MOLE_VIEW_WINDOW_SECS): the
-- page of a case refreshes itself every few seconds without JavaScript, and case_events can never
-- be pruned. One row per (case, viewer) says when that viewer's last `viewed` event was written;
-- an upsert that only succeeds once the window has passed decides, atomically, whether to write
-- another. Removed with the case's photo when the case is deleted.
CREATE TABLE case_views (
    case_id         uuid        NOT NULL REFERENCES cases (id),
    -- The actor as written in case_events ('uploader:…', 'visitor:…', 'visitor').
    viewer          text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, viewer)
);
