-- "My cases": an uploader's live cases, newest first, read off one index.
CREATE INDEX cases_by_uploader ON cases (uploader, created_at DESC) WHERE deleted_at IS NULL;
