-- The first schema of the trajectory store. It runs unchanged on SQLite and PostgreSQL, so it
-- uses only the types both understand: TEXT (ids are UUIDs as text, JSON is text), BIGINT
-- (times are milliseconds since the Unix epoch), DOUBLE PRECISION. Every table that the search
-- index mirrors carries `batch`, the number of the writer's commit that inserted the row; the
-- index remembers the last batch it holds and catches up from there.

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('batch', 0);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    context_ref TEXT,
    answer_spec TEXT NOT NULL,
    split       TEXT NOT NULL CHECK (split IN ('train', 'eval')),
    parent_id   TEXT REFERENCES tasks (id),
    difficulty  DOUBLE PRECISION,
    source      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    batch       BIGINT NOT NULL
);
CREATE INDEX tasks_parent ON tasks (parent_id);
CREATE INDEX tasks_batch ON tasks (batch);

CREATE TABLE adapters (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT REFERENCES adapters (id),
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('candidate', 'promoted', 'rejected', 'retired')),
    metrics    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    task_id           TEXT NOT NULL REFERENCES tasks (id),
    agent             TEXT NOT NULL,
    model_id          TEXT NOT NULL,
    adapter_id        TEXT REFERENCES adapters (id),
    policy_hash       TEXT NOT NULL,
    started_ms        BIGINT NOT NULL,
    finished_ms       BIGINT,
    status            TEXT NOT NULL
                      CHECK (status IN ('running', 'answered', 'budget_exhausted', 'failed')),
    end_reason        TEXT,
    final_answer      TEXT,
    reward            DOUBLE PRECISION,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    step_count        BIGINT NOT NULL
);
CREATE INDEX runs_task ON runs (task_id);
CREATE INDEX runs_started ON runs (started_ms);

CREATE TABLE steps (
    run_id            TEXT NOT NULL REFERENCES runs (id),
    idx               BIGINT NOT NULL,
    kind              TEXT NOT NULL
                      CHECK (kind IN ('model_turn', 'code_cell', 'subcall', 'tool_call')),
    input             TEXT NOT NULL,
    output            TEXT NOT NULL,
    stdout            TEXT NOT NULL,
    stderr            TEXT NOT NULL,
    error             TEXT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    latency_us        BIGINT NOT NULL,
    logprobs          TEXT,
    created_ms        BIGINT NOT NULL,
    batch             BIGINT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX steps_batch ON steps (batch);

CREATE TABLE rollout_groups (
    id                 TEXT PRIMARY KEY,
    task_id            TEXT NOT NULL REFERENCES tasks (id),
    adapter_id         TEXT REFERENCES adapters (id),
    created_ms         BIGINT NOT NULL,
    trained_ms         BIGINT,
    trained_adapter_id TEXT REFERENCES adapters (id)
);
CREATE INDEX rollout_groups_untrained ON rollout_groups (trained_ms);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES rollout_groups (id),
    position BIGINT NOT NULL,
    run_id   TEXT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (group_id, position)
);

CREATE TABLE evals (
    id          TEXT PRIMARY KEY,
    adapter_id  TEXT REFERENCES adapters (id),
    suite       TEXT NOT NULL,
    n           BIGINT NOT NULL,
    passed      BIGINT NOT NULL,
    pass_at_k   TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL
);
CREATE INDEX evals_adapter ON evals (adapter_id);

CREATE TABLE experiences (
    id         TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    created_ms BIGINT NOT NULL,
    batch      BIGINT NOT NULL
);
CREATE INDEX experiences_batch ON experiences (batch);

CREATE TABLE experience_sources (
    experience_id TEXT NOT NULL REFERENCES experiences (id),
    run_id        TEXT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (experience_id, run_id)
);
