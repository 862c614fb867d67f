-- Warnings a run recorded: a fallback it took instead of failing (experience retrieval that
-- failed, a step that could not be logged, an unreadable answer check). They are shown with
-- the run (`memory show`, the viewer) and counted in the night's report, so no fallback is
-- silent. Numbered per run, in the order the run recorded them.

CREATE TABLE run_warnings (
    run_id     TEXT NOT NULL REFERENCES runs (id),
    idx        BIGINT NOT NULL,
    source     TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX run_warnings_created ON run_warnings (created_ms);
