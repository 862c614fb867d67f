-- The nightly loop's record: one row per night, one row per finished stage. A stage's row is
-- written once, when the stage has finished, with everything later stages need in `output`
-- (JSON), so a killed night resumes after its last recorded stage and never repeats one.

CREATE TABLE nights (
    id          TEXT PRIMARY KEY,
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    plan        TEXT NOT NULL,
    summary     TEXT
);
CREATE INDEX nights_started ON nights (started_ms);

CREATE TABLE night_stages (
    night_id    TEXT NOT NULL REFERENCES nights (id),
    stage       TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL,
    output      TEXT NOT NULL,
    PRIMARY KEY (night_id, stage)
);
