//! The batched writer: one task owns every write, takes whatever has queued up while the last
//! commit was in flight, and commits it as one transaction (group commit). Callers submit
//! without waiting and hold an [`Ack`] that resolves once their write is committed, so an agent
//! never waits on an fsync per step, yet nothing is *acknowledged* before it is durable.
//!
//! If a batch fails, its writes are retried one transaction each, so a bad write (a dangling
//! foreign key, say) fails alone and the others still commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::index::{IndexDoc, Indexer};
use crate::types::*;
use crate::{Error, Result, new_id, now_ms};

/// Rows per multi-row `INSERT` of steps (14 columns each: 3,584 parameters, well under
/// SQLite's 32,766 and PostgreSQL's 65,535).
const STEP_CHUNK: usize = 256;

/// One write, as queued.
pub(crate) enum Op {
    Task {
        id: String,
        task: NewTask,
    },
    BeginRun {
        id: String,
        run: NewRun,
        at: i64,
    },
    Step {
        run_id: String,
        idx: u64,
        step: NewStep,
        at: i64,
    },
    FinishRun {
        run_id: String,
        end: RunEnd,
        at: i64,
    },
    Warning {
        run_id: String,
        idx: u64,
        source: String,
        message: String,
        at: i64,
    },
    Group {
        id: String,
        task_id: String,
        adapter_id: Option<String>,
        run_ids: Vec<String>,
    },
    MarkTrained {
        group_ids: Vec<String>,
        adapter_id: Option<String>,
    },
    Adapter {
        id: String,
        adapter: NewAdapter,
    },
    AdapterStatus {
        id: String,
        status: AdapterStatus,
    },
    Eval {
        id: String,
        eval: EvalRecord,
    },
    Experience {
        id: String,
        experience: NewExperience,
    },
    Night {
        id: String,
        plan: serde_json::Value,
    },
    Stage {
        night_id: String,
        stage: String,
        started_ms: i64,
        output: serde_json::Value,
    },
    EndNight {
        id: String,
        status: crate::NightStatus,
        summary: serde_json::Value,
    },
    /// Writes nothing; its ack means that everything before it is committed.
    Barrier,
}

struct Job {
    op: Op,
    ack: oneshot::Sender<Result<()>>,
}

/// Resolves once a write is committed. Dropping it does not cancel the write.
#[must_use = "an Ack tells whether the write was committed"]
pub struct Ack(oneshot::Receiver<Result<()>>);

impl Ack {
    /// Waits for the commit; an error means the write was not stored.
    pub async fn committed(self) -> Result<()> {
        self.0.await.map_err(|_| Error::WriterClosed)?
    }
}

/// A write that has been queued, with the id the store gave the new row.
#[must_use = "a Submitted write tells whether it was committed"]
pub struct Submitted {
    /// The new row's id.
    pub id: String,
    /// Resolves once it is committed.
    pub ack: Ack,
}

impl Submitted {
    /// Waits for the commit and returns the id.
    pub async fn committed(self) -> Result<String> {
        self.ack.committed().await?;
        Ok(self.id)
    }
}

/// A cheap, cloneable handle that queues writes for the store's writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    async fn submit(&self, op: Op) -> Result<Ack> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Job { op, ack })
            .await
            .map_err(|_| Error::WriterClosed)?;
        Ok(Ack(rx))
    }

    /// Queues a task.
    pub async fn add_task(&self, task: NewTask) -> Result<Submitted> {
        let id = new_id();
        let ack = self
            .submit(Op::Task {
                id: id.clone(),
                task,
            })
            .await?;
        Ok(Submitted { id, ack })
    }

    /// Queues the start of a run and returns the handle its steps are written through.
    pub async fn begin_run(&self, run: NewRun) -> Result<(RunHandle, Ack)> {
        let id = new_id();
        let ack = self
            .submit(Op::BeginRun {
                id: id.clone(),
                run,
                at: now_ms(),
            })
            .await?;
        let handle = RunHandle {
            id: Arc::from(id.as_str()),
            next: Arc::new(AtomicU64::new(0)),
            warned: Arc::new(AtomicU64::new(0)),
            writer: self.clone(),
        };
        Ok((handle, ack))
    }

    /// Queues a GRPO group of runs of one task.
    pub async fn add_group(
        &self,
        task_id: &str,
        adapter_id: Option<&str>,
        run_ids: &[String],
    ) -> Result<Submitted> {
        let id = new_id();
        let op = Op::Group {
            id: id.clone(),
            task_id: task_id.to_owned(),
            adapter_id: adapter_id.map(str::to_owned),
            run_ids: run_ids.to_vec(),
        };
        let ack = self.submit(op).await?;
        Ok(Submitted { id, ack })
    }

    /// Queues marking groups as trained on, by the training that produced `adapter_id`.
    pub async fn mark_trained(
        &self,
        group_ids: &[String],
        adapter_id: Option<&str>,
    ) -> Result<Ack> {
        self.submit(Op::MarkTrained {
            group_ids: group_ids.to_vec(),
            adapter_id: adapter_id.map(str::to_owned),
        })
        .await
    }

    /// Queues registering an adapter as a candidate.
    pub async fn register_adapter(&self, adapter: NewAdapter) -> Result<Submitted> {
        let id = new_id();
        let ack = self
            .submit(Op::Adapter {
                id: id.clone(),
                adapter,
            })
            .await?;
        Ok(Submitted { id, ack })
    }

    /// Queues a status change. Promoting an adapter retires the one promoted before it, in
    /// the same transaction, so at most one adapter is ever promoted.
    pub async fn set_adapter_status(&self, id: &str, status: AdapterStatus) -> Result<Ack> {
        self.submit(Op::AdapterStatus {
            id: id.to_owned(),
            status,
        })
        .await
    }

    /// Queues an evaluation record.
    pub async fn record_eval(&self, eval: EvalRecord) -> Result<Submitted> {
        let id = new_id();
        let ack = self
            .submit(Op::Eval {
                id: id.clone(),
                eval,
            })
            .await?;
        Ok(Submitted { id, ack })
    }

    /// Queues an experience.
    pub async fn add_experience(&self, experience: NewExperience) -> Result<Submitted> {
        let id = new_id();
        let ack = self
            .submit(Op::Experience {
                id: id.clone(),
                experience,
            })
            .await?;
        Ok(Submitted { id, ack })
    }

    /// Queues a new night of the nightly loop, running `plan`.
    pub async fn begin_night(&self, plan: serde_json::Value) -> Result<Submitted> {
        let id = new_id();
        let ack = self.submit(Op::Night { id: id.clone(), plan }).await?;
        Ok(Submitted { id, ack })
    }

    /// Queues a finished stage of a night with its output. A stage is recorded once: a
    /// second record of the same stage is an error.
    pub async fn record_stage(&self, night_id: &str, stage: &str, started_ms: i64, output: serde_json::Value) -> Result<Ack> {
        self.submit(Op::Stage { night_id: night_id.to_owned(), stage: stage.to_owned(), started_ms, output }).await
    }

    /// Queues the end of a night (`Finished` or `Failed`) with its summary.
    pub async fn end_night(&self, id: &str, status: crate::NightStatus, summary: serde_json::Value) -> Result<Ack> {
        self.submit(Op::EndNight { id: id.to_owned(), status, summary }).await
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<()> {
        self.submit(Op::Barrier).await?.committed().await
    }
}

/// The handle of one run. Clone it to write steps from several tasks at once: step indices
/// are given in the order steps are submitted.
#[derive(Clone)]
pub struct RunHandle {
    id: Arc<str>,
    next: Arc<AtomicU64>,
    warned: Arc<AtomicU64>,
    writer: Writer,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a step and returns its ack. The step's index is the next free one.
    pub async fn step(&self, step: NewStep) -> Result<Ack> {
        let idx = self.next.fetch_add(1, Ordering::SeqCst);
        let op = Op::Step {
            run_id: self.id.to_string(),
            idx,
            step,
            at: now_ms(),
        };
        self.writer.submit(op).await
    }

    /// Queues a warning: a fallback the run took instead of failing (`source` names what fell
    /// back). It is shown with the run and counted in the night's report.
    pub async fn warn(&self, source: &str, message: &str) -> Result<Ack> {
        let idx = self.warned.fetch_add(1, Ordering::SeqCst);
        let op = Op::Warning {
            run_id: self.id.to_string(),
            idx,
            source: source.to_owned(),
            message: message.to_owned(),
            at: now_ms(),
        };
        self.writer.submit(op).await
    }

    /// Queues the end of the run. Its ack means the run and every step submitted before it
    /// are committed.
    pub async fn finish(&self, end: RunEnd) -> Result<Ack> {
        if end.status == RunStatus::Running {
            return Err(Error::Invalid {
                what: "run end",
                detail: "a run cannot finish with status `running`".into(),
            });
        }
        self.writer
            .submit(Op::FinishRun {
                run_id: self.id.to_string(),
                end,
                at: now_ms(),
            })
            .await
    }
}

/// Settings of the writer task.
pub(crate) struct WriterConfig {
    /// The folder holding the store, whose filesystem explains failed writes.
    pub dir: Option<std::path::PathBuf>,
    pub max_batch: usize,
    pub queue: usize,
    /// SQLite binds anonymous `?` parameters much faster than numbered ones, which it looks
    /// up by name; PostgreSQL only knows `$N`.
    pub anonymous_params: bool,
}

/// Starts the writer task and returns the handle that feeds it.
pub(crate) fn spawn(
    pool: AnyPool,
    indexer: Option<Indexer>,
    cfg: WriterConfig,
) -> (Writer, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.queue);
    let task = tokio::spawn(run_writer(
        pool,
        indexer,
        rx,
        cfg.max_batch,
        cfg.anonymous_params,
        cfg.dir,
    ));
    (Writer { tx }, task)
}

/// The family and split of a run's task, cached while the run is live so that step documents
/// can be filtered like their task.
struct TaskMeta {
    task_id: String,
    family: String,
    split: String,
}

/// Task metadata by run (live runs only) and by task (bounded), so that most steps need no
/// lookup at all.
#[derive(Default)]
struct MetaCache {
    runs: HashMap<String, Arc<TaskMeta>>,
    tasks: HashMap<String, Arc<TaskMeta>>,
}

impl MetaCache {
    fn remember_task(&mut self, meta: Arc<TaskMeta>) {
        if self.tasks.len() >= 100_000 {
            self.tasks.clear();
        }
        self.tasks.insert(meta.task_id.clone(), meta);
    }
}

async fn run_writer(
    pool: AnyPool,
    mut indexer: Option<Indexer>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    anon: bool,
    dir: Option<std::path::PathBuf>,
) {
    let mut cache = MetaCache::default();
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            break;
        }
        let mut docs = Vec::new();
        let want_docs = indexer.is_some();
        let outcome = write_batch(
            &pool,
            &jobs,
            &mut cache,
            want_docs.then_some(&mut docs),
            anon,
        )
        .await;
        match outcome {
            Ok(batch) => {
                if let (Some(ix), Some(batch)) = (indexer.as_mut(), batch)
                    && !docs.is_empty()
                {
                    ix.send_docs(batch, std::mem::take(&mut docs)).await;
                }
                for job in jobs.drain(..) {
                    let _ = job.ack.send(Ok(()));
                }
            }
            Err(_) => {
                // Retry one write per transaction so that only the bad ones fail.
                for job in jobs.drain(..) {
                    let mut docs = Vec::new();
                    let one = std::slice::from_ref(&job);
                    let res =
                        write_batch(&pool, one, &mut cache, want_docs.then_some(&mut docs), anon)
                            .await;
                    let res = match res {
                        Ok(batch) => {
                            if let (Some(ix), Some(batch)) = (indexer.as_mut(), batch)
                                && !docs.is_empty()
                            {
                                ix.send_docs(batch, docs).await;
                            }
                            Ok(())
                        }
                        Err(e) => Err(crate::storage::explain(dir.as_deref(), e)),
                    };
                    let _ = job.ack.send(res);
                }
            }
        }
    }
}

/// Writes `jobs` in one transaction. Returns the batch number, or `None` if nothing needed one.
async fn write_batch(
    pool: &AnyPool,
    jobs: &[Job],
    cache: &mut MetaCache,
    mut docs: Option<&mut Vec<IndexDoc>>,
    anon: bool,
) -> Result<Option<i64>> {
    if jobs.iter().all(|j| matches!(j.op, Op::Barrier)) {
        return Ok(None);
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| Error::query("beginning a write batch", e))?;
    let batch: i64 = sqlx::query_scalar(
        "UPDATE store_meta SET value = value + 1 WHERE key = 'batch' RETURNING value",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| Error::query("numbering a write batch", e))?;

    // One transaction, so the order of kinds inside it is free as long as references point
    // backwards: tasks and adapters, then runs, steps, run ends, then everything that refers
    // to runs. Runs, steps and run ends go in multi-row statements.
    let mut begins: Vec<(&str, &NewRun, i64)> = Vec::new();
    let mut steps: Vec<(&str, u64, &NewStep, i64)> = Vec::new();
    let mut ends: Vec<(&str, &RunEnd, i64)> = Vec::new();
    let mut later: Vec<&Op> = Vec::new();
    for job in jobs {
        match &job.op {
            Op::Task { .. } | Op::Adapter { .. } => {
                apply(&mut tx, &job.op, batch, cache, docs.as_deref_mut()).await?
            }
            Op::BeginRun { id, run, at } => begins.push((id, run, *at)),
            Op::Step {
                run_id,
                idx,
                step,
                at,
            } => steps.push((run_id, *idx, step, *at)),
            Op::FinishRun { run_id, end, at } => ends.push((run_id, end, *at)),
            Op::Barrier => {}
            other => later.push(other),
        }
    }
    for chunk in begins.chunks(STEP_CHUNK) {
        insert_runs(&mut tx, chunk, anon).await?;
        for (id, run, _) in chunk {
            if let Some(meta) = cache.tasks.get(&run.task_id) {
                cache.runs.insert((*id).to_owned(), meta.clone());
            }
        }
    }
    for chunk in steps.chunks(STEP_CHUNK) {
        insert_steps(&mut tx, chunk, batch, anon).await?;
        if let Some(docs) = docs.as_deref_mut() {
            for (run_id, idx, step, _) in chunk {
                let meta = task_meta(&mut tx, cache, run_id).await?;
                docs.push(IndexDoc::step(
                    run_id,
                    *idx,
                    step,
                    &meta.task_id,
                    &meta.family,
                    &meta.split,
                ));
            }
        }
    }
    for chunk in ends.chunks(STEP_CHUNK) {
        finish_runs(&mut tx, chunk, anon).await?;
        for (run_id, _, _) in chunk {
            cache.runs.remove(*run_id);
        }
    }
    for op in later {
        apply(&mut tx, op, batch, cache, docs.as_deref_mut()).await?;
    }
    tx.commit()
        .await
        .map_err(|e| Error::query("committing a write batch", e))?;
    Ok(Some(batch))
}

async fn task_meta(
    tx: &mut Transaction<'static, Any>,
    cache: &mut MetaCache,
    run_id: &str,
) -> Result<Arc<TaskMeta>> {
    if let Some(m) = cache.runs.get(run_id) {
        return Ok(m.clone());
    }
    {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT t.id, t.family, t.split FROM runs r JOIN tasks t ON t.id = r.task_id \
             WHERE r.id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| Error::query("looking up a run's task", e))?;
        let (task_id, family, split) = row.ok_or_else(|| Error::NotFound {
            what: "run",
            id: run_id.to_owned(),
        })?;
        let meta = Arc::new(TaskMeta {
            task_id,
            family,
            split,
        });
        cache.runs.insert(run_id.to_owned(), meta.clone());
        cache.remember_task(meta.clone());
        Ok(meta)
    }
}

async fn insert_steps(
    tx: &mut Transaction<'static, Any>,
    steps: &[(&str, u64, &NewStep, i64)],
    batch: i64,
    anon: bool,
) -> Result<()> {
    const COLS: usize = 14;
    let mut sql = String::from(
        "INSERT INTO steps (run_id, idx, kind, input, output, stdout, stderr, error, \
         prompt_tokens, completion_tokens, latency_us, logprobs, created_ms, batch) VALUES ",
    );
    sql.push_str(&placeholders(steps.len(), COLS, anon));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (run_id, idx, s, at) in steps {
        let logprobs = s
            .logprobs
            .as_ref()
            .map(|lp| serde_json::to_string(lp).unwrap_or_default());
        q = q
            .bind(run_id.to_string())
            .bind(*idx as i64)
            .bind(s.kind.as_str())
            .bind(s.input.clone())
            .bind(s.output.clone())
            .bind(s.stdout.clone())
            .bind(s.stderr.clone())
            .bind(s.error.clone())
            .bind(s.prompt_tokens as i64)
            .bind(s.completion_tokens as i64)
            .bind(s.latency_us as i64)
            .bind(logprobs)
            .bind(*at)
            .bind(batch);
    }
    q.execute(&mut **tx)
        .await
        .map_err(|e| Error::query("inserting steps", e))?;
    Ok(())
}

/// `(p, p, ...), (p, p, ...)`: `rows` groups of `cols` placeholders.
fn placeholders(rows: usize, cols: usize, anon: bool) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            if anon {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(i * cols + c + 1).to_string());
            }
        }
        sql.push(')');
    }
    sql
}

async fn insert_runs(
    tx: &mut Transaction<'static, Any>,
    runs: &[(&str, &NewRun, i64)],
    anon: bool,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO runs (id, task_id, agent, model_id, adapter_id, policy_hash, started_ms, \
         status, prompt_tokens, completion_tokens, step_count) VALUES {}",
        placeholders(runs.len(), 11, anon)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (id, run, at) in runs {
        q = q
            .bind(id.to_string())
            .bind(run.task_id.clone())
            .bind(run.agent.clone())
            .bind(run.model_id.clone())
            .bind(run.adapter_id.clone())
            .bind(run.policy_hash.clone())
            .bind(*at)
            .bind(RunStatus::Running.as_str())
            .bind(0i64)
            .bind(0i64)
            .bind(0i64);
    }
    q.execute(&mut **tx)
        .await
        .map_err(|e| Error::query("beginning runs", e))?;
    Ok(())
}

/// Ends runs with one `UPDATE ... FROM (VALUES ...)`, which both SQLite (3.33+) and
/// PostgreSQL accept; both name the columns of a bare `VALUES` list `column1`, `column2`...
async fn finish_runs(
    tx: &mut Transaction<'static, Any>,
    ends: &[(&str, &RunEnd, i64)],
    anon: bool,
) -> Result<()> {
    let sql = format!(
        "UPDATE runs SET status = v.column2, end_reason = v.column3, final_answer = v.column4, \
         reward = v.column5, prompt_tokens = v.column6, completion_tokens = v.column7, \
         finished_ms = v.column8, \
         step_count = (SELECT COUNT(*) FROM steps s WHERE s.run_id = runs.id) \
         FROM (VALUES {}) AS v WHERE runs.id = v.column1",
        placeholders(ends.len(), 8, anon)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (run_id, end, at) in ends {
        q = q
            .bind(run_id.to_string())
            .bind(end.status.as_str())
            .bind(end.end_reason.clone())
            .bind(end.final_answer.clone())
            .bind(end.reward)
            .bind(end.prompt_tokens as i64)
            .bind(end.completion_tokens as i64)
            .bind(*at);
    }
    let done = q
        .execute(&mut **tx)
        .await
        .map_err(|e| Error::query("finishing runs", e))?;
    if (done.rows_affected() as usize) < ends.len() {
        // Some run does not exist; the per-write retry finds which.
        return Err(Error::NotFound {
            what: "run",
            id: ends[0].0.to_owned(),
        });
    }
    Ok(())
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

async fn apply(
    tx: &mut Transaction<'static, Any>,
    op: &Op,
    batch: i64,
    cache: &mut MetaCache,
    docs: Option<&mut Vec<IndexDoc>>,
) -> Result<()> {
    let conn: &mut AnyConnection = tx;
    let now = now_ms();
    match op {
        Op::Task { id, task } => {
            sqlx::query(
                "INSERT INTO tasks (id, family, prompt, context_ref, answer_spec, split, \
                 parent_id, difficulty, source, created_ms, batch) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id.clone())
            .bind(task.family.clone())
            .bind(task.prompt.clone())
            .bind(task.context_ref.clone())
            .bind(json(&task.answer_spec))
            .bind(task.split.as_str())
            .bind(task.parent_id.clone())
            .bind(task.difficulty)
            .bind(task.source.clone())
            .bind(now)
            .bind(batch)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query("inserting a task", e))?;
            if let Some(docs) = docs {
                docs.push(IndexDoc::task(id, task));
                cache.remember_task(Arc::new(TaskMeta {
                    task_id: id.clone(),
                    family: task.family.clone(),
                    split: task.split.as_str().to_owned(),
                }));
            }
        }
        Op::BeginRun { .. } | Op::Step { .. } | Op::FinishRun { .. } | Op::Barrier => {}
        Op::Warning { run_id, idx, source, message, at } => {
            sqlx::query("INSERT INTO run_warnings (run_id, idx, source, message, created_ms) VALUES ($1, $2, $3, $4, $5)")
                .bind(run_id.clone())
                .bind(*idx as i64)
                .bind(source.clone())
                .bind(message.clone())
                .bind(*at)
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("recording a run warning", e))?;
        }
        Op::Group {
            id,
            task_id,
            adapter_id,
            run_ids,
        } => {
            sqlx::query(
                "INSERT INTO rollout_groups (id, task_id, adapter_id, created_ms) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id.clone())
            .bind(task_id.clone())
            .bind(adapter_id.clone())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query("inserting a group", e))?;
            for (pos, run_id) in run_ids.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO group_members (group_id, position, run_id) VALUES ($1, $2, $3)",
                )
                .bind(id.clone())
                .bind(pos as i64)
                .bind(run_id.clone())
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("inserting a group member", e))?;
            }
        }
        Op::MarkTrained {
            group_ids,
            adapter_id,
        } => {
            for gid in group_ids {
                let done = sqlx::query(
                    "UPDATE rollout_groups SET trained_ms = $2, trained_adapter_id = $3 WHERE id = $1",
                )
                .bind(gid.clone())
                .bind(now)
                .bind(adapter_id.clone())
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("marking a group trained", e))?;
                if done.rows_affected() == 0 {
                    return Err(Error::NotFound {
                        what: "group",
                        id: gid.clone(),
                    });
                }
            }
        }
        Op::Adapter { id, adapter } => {
            sqlx::query(
                "INSERT INTO adapters (id, parent_id, path, sha256, status, metrics, created_ms, \
                 updated_ms) VALUES ($1, $2, $3, $4, 'candidate', $5, $6, $6)",
            )
            .bind(id.clone())
            .bind(adapter.parent_id.clone())
            .bind(adapter.path.clone())
            .bind(adapter.sha256.clone())
            .bind(json(&adapter.metrics))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query("registering an adapter", e))?;
        }
        Op::AdapterStatus { id, status } => {
            if *status == AdapterStatus::Promoted {
                sqlx::query(
                    "UPDATE adapters SET status = 'retired', updated_ms = $2 \
                     WHERE status = 'promoted' AND id <> $1",
                )
                .bind(id.clone())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("retiring the promoted adapter", e))?;
            }
            let done =
                sqlx::query("UPDATE adapters SET status = $2, updated_ms = $3 WHERE id = $1")
                    .bind(id.clone())
                    .bind(status.as_str())
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| Error::query("changing an adapter's status", e))?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound {
                    what: "adapter",
                    id: id.clone(),
                });
            }
        }
        Op::Night { id, plan } => {
            sqlx::query("INSERT INTO nights (id, started_ms, status, plan) VALUES ($1, $2, 'running', $3)")
                .bind(id.clone())
                .bind(now)
                .bind(json(plan))
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("starting a night", e))?;
        }
        Op::Stage { night_id, stage, started_ms, output } => {
            sqlx::query(
                "INSERT INTO night_stages (night_id, stage, started_ms, finished_ms, output) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(night_id.clone())
            .bind(stage.clone())
            .bind(*started_ms)
            .bind(now)
            .bind(json(output))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query(format!("recording stage `{stage}` of night {night_id}"), e))?;
        }
        Op::EndNight { id, status, summary } => {
            let done = sqlx::query("UPDATE nights SET status = $2, finished_ms = $3, summary = $4 WHERE id = $1")
                .bind(id.clone())
                .bind(status.as_str())
                .bind(now)
                .bind(json(summary))
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("ending a night", e))?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound { what: "night", id: id.clone() });
            }
        }
        Op::Eval { id, eval } => {
            let pass_at_k: serde_json::Map<String, serde_json::Value> = eval
                .pass_at_k
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect();
            sqlx::query(
                "INSERT INTO evals (id, adapter_id, suite, n, passed, pass_at_k, started_ms, \
                 finished_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.clone())
            .bind(eval.adapter_id.clone())
            .bind(eval.suite.clone())
            .bind(eval.n as i64)
            .bind(eval.passed as i64)
            .bind(json(&pass_at_k))
            .bind(eval.started_ms)
            .bind(eval.finished_ms)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query("recording an eval", e))?;
        }
        Op::Experience { id, experience } => {
            sqlx::query(
                "INSERT INTO experiences (id, text, score, created_ms, batch) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.clone())
            .bind(experience.text.clone())
            .bind(experience.score)
            .bind(now)
            .bind(batch)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::query("inserting an experience", e))?;
            for run_id in &experience.source_runs {
                sqlx::query(
                    "INSERT INTO experience_sources (experience_id, run_id) VALUES ($1, $2)",
                )
                .bind(id.clone())
                .bind(run_id.clone())
                .execute(&mut *conn)
                .await
                .map_err(|e| Error::query("linking an experience to its runs", e))?;
            }
            if let Some(docs) = docs {
                docs.push(IndexDoc::experience(id, &experience.text));
            }
        }
    }
    Ok(())
}
