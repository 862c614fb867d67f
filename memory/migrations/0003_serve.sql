-- `autodidact serve`: named agents and the durable queue of submitted runs.
-- Version 3 (version 2 is reserved for the nightly tables); sqlx applies every migration it has
-- not applied yet, in version order, so the gap is harmless.
--
-- A submission is committed before the server acknowledges it (202), so it survives kill -9.
-- Once a submission starts it is linked to the task (and through it, the runs) it produced.

CREATE TABLE serve_agents (
    name       TEXT PRIMARY KEY,
    model      TEXT NOT NULL,   -- a model spec; '' means the model the server serves
    policy     TEXT NOT NULL,   -- policy TOML; '' means the server's policy
    tools      TEXT NOT NULL,   -- JSON array of tool names
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE serve_submissions (
    id          TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    task        TEXT NOT NULL,
    context     TEXT NOT NULL,  -- JSON: null, a string or a list of strings
    status      TEXT NOT NULL
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    attempts    BIGINT NOT NULL,
    task_id     TEXT REFERENCES tasks (id),
    run_id      TEXT REFERENCES runs (id),
    answer      TEXT,
    stop        TEXT,           -- the runtime's stop reason: answered, max_iterations, ...
    error       TEXT,
    created_ms  BIGINT NOT NULL,
    started_ms  BIGINT,
    finished_ms BIGINT
);
CREATE INDEX serve_submissions_status ON serve_submissions (status, created_ms);
CREATE INDEX serve_submissions_agent ON serve_submissions (agent, created_ms);
