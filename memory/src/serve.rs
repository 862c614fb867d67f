//! What `autodidact serve` keeps: named agents and the durable queue of submitted runs
//! (migration 3).
//!
//! These writes bypass the batched [`Writer`](crate::Writer): a submission must be committed
//! before the server answers 202, and each state change is one small autocommitted statement.
//! State changes are conditional (`... WHERE status = 'queued'`), so a cancel racing the
//! dispatcher has exactly one winner.

use sqlx::AnyPool;

use crate::{Error, Result, Store, new_id, now_ms};

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubmissionStatus {
    /// Acknowledged, waiting for a free slot.
    Queued,
    /// Running now.
    Running,
    /// Finished (with or without an answer; see `stop`).
    Done,
    /// The host failed to run it (see `error`).
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// In flight when the server stopped; it can be re-queued.
    Interrupted,
}

impl SubmissionStatus {
    /// Every value.
    pub const ALL: &'static [SubmissionStatus] = &[
        SubmissionStatus::Queued,
        SubmissionStatus::Running,
        SubmissionStatus::Done,
        SubmissionStatus::Failed,
        SubmissionStatus::Cancelled,
        SubmissionStatus::Interrupted,
    ];

    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Queued => "queued",
            SubmissionStatus::Running => "running",
            SubmissionStatus::Done => "done",
            SubmissionStatus::Failed => "failed",
            SubmissionStatus::Cancelled => "cancelled",
            SubmissionStatus::Interrupted => "interrupted",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Result<SubmissionStatus> {
        SubmissionStatus::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| Error::Invalid {
            what: "submission status",
            detail: format!("unknown value {s:?}"),
        })
    }

    /// Whether the submission will not change again by itself.
    pub fn is_final(self) -> bool {
        !matches!(self, SubmissionStatus::Queued | SubmissionStatus::Running)
    }
}

/// A named agent: the model, policy and tools its runs use.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeAgent {
    /// Its name (unique).
    pub name: String,
    /// A model spec (`smollm2`, `scripted:PATH`...); empty: the model the server serves.
    pub model: String,
    /// Policy TOML; empty: the server's policy.
    pub policy: String,
    /// Names of the tools its runs may use (the policy's allow list still applies).
    pub tools: Vec<String>,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// When it was last changed.
    pub updated_ms: i64,
}

/// A submitted run.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Its id (a UUID): the run id of the serve API.
    pub id: String,
    /// The agent it was submitted to.
    pub agent: String,
    /// The task.
    pub task: String,
    /// The context, as JSON (null, a string or a list of strings).
    pub context: serde_json::Value,
    /// Where it stands.
    pub status: SubmissionStatus,
    /// How many times it was started.
    pub attempts: u64,
    /// The memory task it runs as, once started.
    pub task_id: Option<String>,
    /// The memory run of its last attempt, once known.
    pub run_id: Option<String>,
    /// The answer, when one was given.
    pub answer: Option<String>,
    /// How the runtime stopped (`answered`, `max_iterations`, `budget_exceeded`, `error`).
    pub stop: Option<String>,
    /// What went wrong, for `failed`, `cancelled` and `interrupted`.
    pub error: Option<String>,
    /// When it was submitted.
    pub created_ms: i64,
    /// When its last attempt started.
    pub started_ms: Option<i64>,
    /// When it finished.
    pub finished_ms: Option<i64>,
}

/// A run of a submission's tree: the root run or a child started by `rlm_query`.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRun {
    /// The memory run id.
    pub run_id: String,
    /// Its task.
    pub task_id: String,
    /// The parent task (`None` for the root).
    pub parent_task_id: Option<String>,
    /// The task's prompt.
    pub prompt: String,
    /// The run's status in memory.
    pub status: String,
    /// When it started.
    pub started_ms: i64,
}

const SUB_COLS: &str = "SELECT id, agent, task, context, status, attempts, task_id, run_id, answer, stop, error, \
                        created_ms, started_ms, finished_ms FROM serve_submissions";

type SubRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);

fn sub_from_row(r: SubRow) -> Result<Submission> {
    let context = serde_json::from_str(&r.3).map_err(|e| Error::Invalid {
        what: "submission context",
        detail: format!("submission {}: {e}", r.0),
    })?;
    Ok(Submission {
        status: SubmissionStatus::parse(&r.4)?,
        id: r.0,
        agent: r.1,
        task: r.2,
        context,
        attempts: r.5.max(0) as u64,
        task_id: r.6,
        run_id: r.7,
        answer: r.8,
        stop: r.9,
        error: r.10,
        created_ms: r.11,
        started_ms: r.12,
        finished_ms: r.13,
    })
}

type AgentRow = (String, String, String, String, i64, i64);

fn agent_from_row(r: AgentRow) -> Result<ServeAgent> {
    let tools = serde_json::from_str(&r.3).map_err(|e| Error::Invalid {
        what: "agent tools",
        detail: format!("agent {}: {e}", r.0),
    })?;
    Ok(ServeAgent { name: r.0, model: r.1, policy: r.2, tools, created_ms: r.4, updated_ms: r.5 })
}

async fn exec(pool: &AnyPool, what: &str, q: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>) -> Result<u64> {
    Ok(q.execute(pool).await.map_err(|e| Error::query(what.to_owned(), e))?.rows_affected())
}

impl Store {
    /// Creates or replaces the agent `name`; returns it as stored.
    pub async fn put_agent(&self, name: &str, model: &str, policy: &str, tools: &[String]) -> Result<ServeAgent> {
        let now = now_ms();
        let tools = serde_json::to_string(tools).map_err(|e| Error::Invalid { what: "agent tools", detail: e.to_string() })?;
        let q = sqlx::query(
            "INSERT INTO serve_agents (name, model, policy, tools, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET model = $2, policy = $3, tools = $4, updated_ms = $6",
        )
        .bind(name)
        .bind(model)
        .bind(policy)
        .bind(tools)
        .bind(now)
        .bind(now);
        exec(self.pool(), "saving an agent", q).await?;
        self.agent(name).await?.ok_or_else(|| Error::NotFound { what: "agent", id: name.to_owned() })
    }

    /// The agent `name`, if it exists.
    pub async fn agent(&self, name: &str) -> Result<Option<ServeAgent>> {
        let row: Option<AgentRow> =
            sqlx::query_as("SELECT name, model, policy, tools, created_ms, updated_ms FROM serve_agents WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| Error::query("reading an agent", e))?;
        row.map(agent_from_row).transpose()
    }

    /// Every agent, by name.
    pub async fn agents(&self) -> Result<Vec<ServeAgent>> {
        let rows: Vec<AgentRow> =
            sqlx::query_as("SELECT name, model, policy, tools, created_ms, updated_ms FROM serve_agents ORDER BY name")
                .fetch_all(self.pool())
                .await
                .map_err(|e| Error::query("listing agents", e))?;
        rows.into_iter().map(agent_from_row).collect()
    }

    /// Deletes the agent `name`; false if there was none. Its past submissions stay.
    pub async fn delete_agent(&self, name: &str) -> Result<bool> {
        let q = sqlx::query("DELETE FROM serve_agents WHERE name = $1").bind(name);
        Ok(exec(self.pool(), "deleting an agent", q).await? > 0)
    }

    /// Queues a task for `agent`, to run as the memory task `task_id` when given (a task that
    /// carries its verifier). When this returns, the submission is committed.
    pub async fn submit(&self, agent: &str, task: &str, context: &serde_json::Value, task_id: Option<&str>) -> Result<Submission> {
        let id = new_id();
        let q = sqlx::query(
            "INSERT INTO serve_submissions (id, agent, task, context, status, attempts, created_ms, task_id) \
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6)",
        )
        .bind(&id)
        .bind(agent)
        .bind(task)
        .bind(context.to_string())
        .bind(now_ms())
        .bind(task_id);
        exec(self.pool(), "queueing a submission", q).await?;
        self.submission(&id).await?.ok_or_else(|| Error::NotFound { what: "submission", id })
    }

    /// The submission `id`, if it exists.
    pub async fn submission(&self, id: &str) -> Result<Option<Submission>> {
        let row: Option<SubRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SUB_COLS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| Error::query("reading a submission", e))?;
        row.map(sub_from_row).transpose()
    }

    /// The newest submissions, of one agent or of all.
    pub async fn submissions(&self, agent: Option<&str>, limit: u64) -> Result<Vec<Submission>> {
        let rows: Vec<SubRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SUB_COLS} WHERE ($1 = '' OR agent = $1) ORDER BY created_ms DESC, id DESC LIMIT $2"
        )))
        .bind(agent.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await
        .map_err(|e| Error::query("listing submissions", e))?;
        rows.into_iter().map(sub_from_row).collect()
    }

    /// Takes the oldest queued submission and marks it running (attempts + 1).
    pub async fn claim_next(&self) -> Result<Option<Submission>> {
        loop {
            let next: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM serve_submissions WHERE status = 'queued' ORDER BY created_ms, id LIMIT 1",
            )
            .fetch_optional(self.pool())
            .await
            .map_err(|e| Error::query("reading the queue", e))?;
            let Some((id,)) = next else { return Ok(None) };
            let q = sqlx::query(
                "UPDATE serve_submissions SET status = 'running', attempts = attempts + 1, started_ms = $1, \
                 finished_ms = NULL, error = NULL WHERE id = $2 AND status = 'queued'",
            )
            .bind(now_ms())
            .bind(&id);
            if exec(self.pool(), "claiming a submission", q).await? == 1 {
                return self.submission(&id).await;
            }
            // Cancelled between the read and the claim: take the next one.
        }
    }

    /// Links a running submission to the memory task it runs as.
    pub async fn set_submission_task(&self, id: &str, task_id: &str) -> Result<()> {
        let q = sqlx::query("UPDATE serve_submissions SET task_id = $1 WHERE id = $2").bind(task_id).bind(id);
        exec(self.pool(), "linking a submission to its task", q).await?;
        Ok(())
    }

    /// Ends a running submission. False when it was not running any more (cancelled meanwhile).
    pub async fn finish_submission(
        &self,
        id: &str,
        status: SubmissionStatus,
        run_id: Option<&str>,
        answer: Option<&str>,
        stop: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE serve_submissions SET status = $1, run_id = COALESCE($2, run_id), answer = $3, stop = $4, error = $5, \
             finished_ms = $6 WHERE id = $7 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(run_id)
        .bind(answer)
        .bind(stop)
        .bind(error)
        .bind(now_ms())
        .bind(id);
        Ok(exec(self.pool(), "finishing a submission", q).await? == 1)
    }

    /// Cancels a queued or running submission, ending its memory runs still marked running.
    /// Returns the status it had, or `None` if it was already final (or does not exist).
    pub async fn cancel_submission(&self, id: &str) -> Result<Option<SubmissionStatus>> {
        let Some(sub) = self.submission(id).await? else { return Ok(None) };
        if sub.status.is_final() {
            return Ok(None);
        }
        let q = sqlx::query(
            "UPDATE serve_submissions SET status = 'cancelled', error = 'cancelled by a user', finished_ms = $1 \
             WHERE id = $2 AND status = $3",
        )
        .bind(now_ms())
        .bind(id)
        .bind(sub.status.as_str());
        if exec(self.pool(), "cancelling a submission", q).await? != 1 {
            return Ok(None);
        }
        if let Some(task_id) = &sub.task_id {
            self.end_orphan_runs(task_id, "cancelled").await?;
        }
        Ok(Some(sub.status))
    }

    /// Marks every running submission `interrupted` (at start-up, after a crash, or when a
    /// drain times out) and ends its memory runs; returns how many there were.
    pub async fn interrupt_running(&self, reason: &str) -> Result<u64> {
        let running: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, task_id FROM serve_submissions WHERE status = 'running'")
                .fetch_all(self.pool())
                .await
                .map_err(|e| Error::query("listing running submissions", e))?;
        let mut n = 0;
        for (id, task_id) in running {
            let q = sqlx::query(
                "UPDATE serve_submissions SET status = 'interrupted', error = $1, finished_ms = $2 \
                 WHERE id = $3 AND status = 'running'",
            )
            .bind(reason)
            .bind(now_ms())
            .bind(&id);
            n += exec(self.pool(), "interrupting a submission", q).await?;
            if let Some(t) = task_id {
                self.end_orphan_runs(&t, reason).await?;
            }
        }
        Ok(n)
    }

    /// Puts an interrupted, failed or cancelled submission back in the queue. False when it
    /// is in another state.
    pub async fn requeue(&self, id: &str) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE serve_submissions SET status = 'queued', answer = NULL, stop = NULL, error = NULL, \
             finished_ms = NULL WHERE id = $1 AND status IN ('interrupted', 'failed', 'cancelled')",
        )
        .bind(id);
        Ok(exec(self.pool(), "re-queueing a submission", q).await? == 1)
    }

    /// Re-queues every interrupted submission; returns how many.
    pub async fn requeue_interrupted(&self) -> Result<u64> {
        let q = sqlx::query(
            "UPDATE serve_submissions SET status = 'queued', answer = NULL, stop = NULL, error = NULL, \
             finished_ms = NULL WHERE status = 'interrupted'",
        );
        exec(self.pool(), "re-queueing interrupted submissions", q).await
    }

    /// How many submissions are in each state.
    pub async fn submission_counts(&self) -> Result<Vec<(SubmissionStatus, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM serve_submissions GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await
                .map_err(|e| Error::query("counting submissions", e))?;
        rows.into_iter().map(|(s, n)| Ok((SubmissionStatus::parse(&s)?, n.max(0) as u64))).collect()
    }

    /// The newest memory run of `task_id`: the root run of a submission's latest attempt.
    pub async fn latest_run_of_task(&self, task_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM runs WHERE task_id = $1 ORDER BY started_ms DESC, id DESC LIMIT 1")
                .bind(task_id)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| Error::query("finding a task's run", e))?;
        Ok(row.map(|r| r.0))
    }

    /// The runs under `task_id` started by `rlm_query` (the children's tasks name their
    /// parent), breadth first, down to `max_depth` levels.
    pub async fn child_runs(&self, task_id: &str, max_depth: usize) -> Result<Vec<TreeRun>> {
        let mut out = Vec::new();
        let mut frontier = vec![task_id.to_owned()];
        for _ in 0..max_depth {
            let mut next = Vec::new();
            for parent in &frontier {
                let rows: Vec<(String, String, Option<String>, String, String, i64)> = sqlx::query_as(
                    "SELECT r.id, r.task_id, t.parent_id, t.prompt, r.status, r.started_ms FROM runs r \
                     JOIN tasks t ON t.id = r.task_id WHERE t.parent_id = $1 ORDER BY r.started_ms, r.id",
                )
                .bind(parent)
                .fetch_all(self.pool())
                .await
                .map_err(|e| Error::query("listing child runs", e))?;
                for (run_id, task_id, parent_task_id, prompt, status, started_ms) in rows {
                    next.push(task_id.clone());
                    out.push(TreeRun { run_id, task_id, parent_task_id, prompt, status, started_ms });
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(out)
    }

    /// Ends the memory runs of `task_id` still marked running (their process stopped, or they
    /// were cancelled): status `failed`, with `reason` as the end reason.
    pub async fn end_orphan_runs(&self, task_id: &str, reason: &str) -> Result<u64> {
        let q = sqlx::query(
            "UPDATE runs SET status = 'failed', end_reason = $1, finished_ms = $2 WHERE task_id = $3 AND status = 'running'",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(task_id);
        exec(self.pool(), "ending orphaned runs", q).await
    }
}
