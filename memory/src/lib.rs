//! The trajectory store: everything the agent did, kept for training, evaluation and recall.
//!
//! Every turn of the model, every code cell, sub-call and tool call of a run is written here,
//! with its tokens, timings and (when sampled) log-probabilities. The trainer reads GRPO groups
//! back from here, the evaluator records its verdicts here, and the adapter registry that
//! decides which LoRA adapter the runtime serves lives here. This is the only crate of the
//! workspace that speaks SQL, and it depends on no other workspace crate.
//!
//! # Main types
//!
//! - [`Store`] opens a database by URL — `sqlite://PATH` (the default is
//!   `sqlite://$AUTODIDACT_HOME/memory.db`, see [`default_url`]) or `postgres://...` — applies
//!   the versioned migrations, and answers every read: [`Store::transcript`],
//!   [`Store::untrained_groups`], [`Store::promoted_adapter`], [`Store::search`],
//!   [`Store::export`], [`Store::verify`]...
//! - [`Writer`] is the cloneable handle every write goes through, and [`RunHandle`] writes the
//!   steps of one run (from any number of tasks at once). Each write returns an [`Ack`] that
//!   resolves once the write is **committed**.
//! - [`Error`] is the one error type; a model's mistakes are data (a step's `error`), never
//!   an `Error`.
//! - [`load`] holds the synthetic workloads of `memory bench` (ingest, then search) and
//!   `memory stress` (acknowledged runs a kill must not lose).
//!
//! # Why it is built this way
//!
//! *One writer, group commit.* An agent writes a step every few milliseconds and must never
//! wait on a disk flush per step. So writes are queued on a channel to one writer task, which
//! takes everything that queued up while its last commit was in flight and commits it as one
//! transaction. The cost of an fsync is shared by the whole batch; a write is acknowledged only
//! after the commit that holds it, so an acknowledged write survives `kill -9` (SQLite runs in
//! WAL mode with `synchronous = FULL`). Steps are inserted with multi-row `INSERT`s.
//!
//! *sqlx's `Any` driver, one schema.* The same runtime queries run on SQLite and PostgreSQL,
//! and one set of migrations (`memory/migrations/`) creates the same schema on both. The price
//! is a plain type vocabulary: ids are UUIDs (v7, so they sort by time) stored as `TEXT`, JSON
//! is `TEXT`, times are `BIGINT` milliseconds since the Unix epoch, and aggregate results are
//! kept to `COUNT` and `MAX`, which both engines type alike. sqlx records the applied migrations
//! in `_sqlx_migrations`; [`Store::schema_version`] reads the highest.
//!
//! *The database is the truth; the index is a cache.* A tantivy index over task prompts, steps
//! and experiences answers [`Store::search`]. Each row the index mirrors carries the number of
//! the writer batch that inserted it, and each index commit records the last batch it holds,
//! so opening a store indexes only what is new. A missing, unreadable or stale index is rebuilt
//! from the database, and the rebuild is reported in [`Store::warnings`].
//!
//! # Schema (migration 1)
//!
//! | table | columns | notes |
//! |---|---|---|
//! | `store_meta` | `key`, `value` | `batch`: the last writer batch number |
//! | `tasks` | `id`, `family`, `prompt`, `context_ref`, `answer_spec` (JSON), `split` (`train`/`eval`), `parent_id` (LADDER parent), `difficulty`, `source`, `created_ms`, `batch` | |
//! | `runs` | `id`, `task_id`, `agent`, `model_id`, `adapter_id`, `policy_hash`, `started_ms`, `finished_ms`, `status` (`running`/`answered`/`budget_exhausted`/`failed`), `end_reason`, `final_answer`, `reward`, `prompt_tokens`, `completion_tokens`, `step_count` | `step_count` is set when the run finishes |
//! | `steps` | `run_id`, `idx`, `kind` (`model_turn`/`code_cell`/`subcall`/`tool_call`), `input`, `output`, `stdout`, `stderr`, `error`, `prompt_tokens`, `completion_tokens`, `latency_us`, `logprobs` (JSON array), `created_ms`, `batch` | key (`run_id`, `idx`) |
//! | `rollout_groups` | `id`, `task_id`, `adapter_id`, `created_ms`, `trained_ms`, `trained_adapter_id` | GRPO groups (`groups` is an SQL keyword) |
//! | `group_members` | `group_id`, `position`, `run_id` | |
//! | `adapters` | `id`, `parent_id`, `path`, `sha256`, `status` (`candidate`/`promoted`/`rejected`/`retired`), `metrics` (JSON), `created_ms`, `updated_ms` | at most one `promoted` |
//! | `evals` | `id`, `adapter_id` (null: base model), `suite`, `n`, `passed`, `pass_at_k` (JSON), `started_ms`, `finished_ms` | |
//! | `experiences` | `id`, `text`, `score`, `created_ms`, `batch` | lessons as text |
//! | `experience_sources` | `experience_id`, `run_id` | the runs a lesson came from |
//!
//! Migration 3 adds what `autodidact serve` keeps (`serve.rs`): `serve_agents` (`name`,
//! `model`, `policy` TOML, `tools` JSON) and `serve_submissions`, the durable run queue
//! (`status` `queued`/`running`/`done`/`failed`/`cancelled`/`interrupted`, linked to the
//! memory `task_id` and `run_id` once started). Version 2 is reserved for the nightly tables.
//!
//! Foreign keys tie them together (steps to runs, runs to tasks and adapters, ...), and CHECK
//! constraints hold the closed sets of values. Trainers only ever see `train` tasks:
//! [`Store::untrained_groups`] and the exports filter on the split.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod export;
mod index;
pub mod load;
mod nightly;
mod serve;
mod storage;
mod store;
mod types;
mod writer;

use std::path::PathBuf;

pub use error::{Error, Result};
pub use export::{ExportFormat, completion_text, iso8601};
pub use nightly::{Night, NightStage, NightStatus};
pub use serve::{ServeAgent, Submission, SubmissionStatus, TreeRun};
pub use store::{Store, StoreOptions};
pub use types::*;
pub use writer::{Ack, RunHandle, Submitted, Writer};

/// `$AUTODIDACT_HOME`, or `~/.cache/autodidact` when it is unset.
pub fn home_dir() -> PathBuf {
    match std::env::var_os("AUTODIDACT_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| ".".into());
            home.join(".cache").join("autodidact")
        }
    }
}

/// The default store: `$AUTODIDACT_DB` when set, else `sqlite://$AUTODIDACT_HOME/memory.db`.
pub fn default_url() -> String {
    match std::env::var("AUTODIDACT_DB") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("sqlite://{}", home_dir().join("memory.db").display()),
    }
}

/// Milliseconds since the Unix epoch: the unit of every time the store records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new time-ordered id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
