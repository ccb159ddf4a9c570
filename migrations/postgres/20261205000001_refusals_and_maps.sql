-- Refusals and occlusion maps.
--
-- Refusals: a photo the model cannot judge (not a skin lesion, too dark, overexposed, too blurry,
-- too small) ends as its own final outcome, `refused`: not a failure (nothing went wrong) and not a
-- diagnosis (no probabilities are shown for it). The reason and what the model measured are kept.

ALTER TABLE cases DROP CONSTRAINT cases_status_check;
ALTER TABLE cases ADD CONSTRAINT cases_status_check
    CHECK (status IN ('queued', 'processing', 'done', 'failed', 'refused'));

ALTER TABLE case_events DROP CONSTRAINT case_events_kind_check;
ALTER TABLE case_events ADD CONSTRAINT case_events_kind_check CHECK (kind IN (
    'created', 'queued', 'requeued', 'started', 'retrying',
    'completed', 'failed', 'viewed', 'deleted', 'reviewed', 'refused', 'explained'));

CREATE TABLE refusals (
    case_id         uuid        PRIMARY KEY REFERENCES cases (id),
    model_version   text        NOT NULL,
    reason          text        NOT NULL CHECK (reason IN (
                        'too_small', 'too_dark', 'overexposed', 'too_blurry', 'not_a_lesion')),
    -- What the model measured ({"ood": .., "luma": .., "sharpness": .., "min_side": ..}) and the
    -- card's limits it was compared with, for the clinic's audit.
    detail          jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- What the model looked at: an occlusion-sensitivity map, drawn by the worker after the verdict was
-- written (never before: the verdict does not wait for it), when it had nothing more urgent to do.
-- `map` is {"grid": g, "base": P(malignant), "cells": [g*g changes of P(malignant)], "view": [left,
-- top, width, height] of the model's view in the photo, as fractions}. Deleted with the case.
CREATE TABLE case_explanations (
    case_id         uuid        PRIMARY KEY REFERENCES cases (id),
    model_version   text        NOT NULL,
    method          text        NOT NULL CHECK (method IN ('occlusion')),
    map             jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
