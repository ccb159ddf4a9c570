-- The clinic's past-cases page with 100,000 cases (BENCHMARKS.md): what each page reads besides its
-- 50 rows (the count of its filter's cases, the summary strip, the cases it skips) off narrow indexes.

-- Live cases in list order: counting them reads this index only, and a page far down the
-- newest-first list skips its cases here.
CREATE INDEX cases_live ON cases (created_at, id) WHERE deleted_at IS NULL;

-- Live reviewed cases: the summary strip's agreement and the `reviewed=yes` filter.
CREATE INDEX cases_reviewed ON cases (id, review_version)
    WHERE review_version IS NOT NULL AND deleted_at IS NULL;

-- The model's output the list filters and sorts by, without the wide `classes`: a filter's count or
-- a sort by diagnosis reads this instead of the table.
CREATE INDEX predictions_list ON predictions (case_id) INCLUDE (verdict, top_class, p_malignant);
