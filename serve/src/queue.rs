//! The durable run queue.
//!
//! Submissions live in memory (`serve_submissions`), committed before the server acknowledges
//! them. One dispatcher task takes a permit (at most `max_concurrent_runs`), claims the oldest
//! queued submission and runs it on its own task through the runtime's `Agent`. The run is
//! attached to a memory task created for the submission, so the trajectory (turns, cells,
//! sub-calls) is found from the submission while it runs and after.
//!
//! Cancelling marks the submission first (a conditional update, so a run finishing at the same
//! moment has one winner), then fires the run's [`Cancel`]: the turn in flight is dropped, a
//! running cell is interrupted within milliseconds, and the run ends itself, logged with its
//! steps so far. A run that has not ended [`CANCEL_GRACE`] later is aborted. Draining (SIGTERM) stops claiming, waits
//! up to `drain_seconds` for running runs, then aborts the rest and marks them `interrupted`;
//! queued ones stay queued for the next start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use autodidact_memory::{NewTask, Split, Submission, SubmissionStatus};
use autodidact_policies::Policy;
use autodidact_runtime::rlm::{Agent, Cancel, MemoryLog, Stop, TaskInput};
use tokio::sync::{Notify, Semaphore};

use super::App;

/// Queue state held in the process: the permits and the running tasks.
pub struct Queue {
    permits: Arc<Semaphore>,
    notify: Notify,
    running: Mutex<HashMap<String, (tokio::task::AbortHandle, Cancel)>>,
}

/// How long a cancelled run may take to end itself before its task is aborted.
pub const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Queue {
    /// A queue running at most `concurrency` runs at once.
    pub fn new(concurrency: usize) -> Self {
        Queue { permits: Arc::new(Semaphore::new(concurrency)), notify: Notify::new(), running: Mutex::new(HashMap::new()) }
    }

    /// Tells the dispatcher something changed (a submission, a finished run, a shutdown).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// How many runs execute now.
    pub fn running(&self) -> usize {
        self.running.lock().expect("queue lock").len()
    }

    /// Aborts the task of a running submission; false if it was not running here.
    pub fn abort(&self, id: &str) -> bool {
        match self.running.lock().expect("queue lock").remove(id) {
            Some((h, cancel)) => {
                cancel.cancel();
                h.abort();
                true
            }
            None => false,
        }
    }

    /// Cancels a running submission's run; it ends itself, or is aborted after
    /// [`CANCEL_GRACE`]. False if it was not running here.
    pub fn cancel(app: &Arc<App>, id: &str) -> bool {
        let Some(cancel) = app.queue.running.lock().expect("queue lock").get(id).map(|(_, c)| c.clone()) else { return false };
        cancel.cancel();
        let (app, id) = (app.clone(), id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(CANCEL_GRACE).await;
            if app.queue.abort(&id) {
                eprintln!("serve: run {id} did not stop within {CANCEL_GRACE:?} of its cancel and was aborted");
            }
        });
        true
    }
}

/// The dispatcher: claims queued submissions while permits are free, until shutdown.
pub async fn dispatch(app: Arc<App>) {
    loop {
        let permit = tokio::select! {
            p = app.queue.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = async { let mut s = app.shutdown.subscribe(); let _ = s.wait_for(|s| *s).await; } => return,
        };
        if app.draining() {
            return;
        }
        match app.store.claim_next().await {
            Ok(Some(sub)) => {
                let id = sub.id.clone();
                let key = id.clone();
                let a = app.clone();
                let cancel = Cancel::new();
                let token = cancel.clone();
                // The running map is filled before the task can finish, so it can remove itself.
                let mut running = app.queue.running.lock().expect("queue lock");
                let handle = tokio::spawn(async move {
                    execute(&a, sub, token).await;
                    a.queue.running.lock().expect("queue lock").remove(&id);
                    drop(permit);
                    a.queue.wake();
                });
                running.insert(key, (handle.abort_handle(), cancel));
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = app.queue.notify.notified() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
            Err(e) => {
                drop(permit);
                eprintln!("serve: reading the queue failed: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs one claimed submission to its end and records the outcome.
async fn execute(app: &Arc<App>, sub: Submission, cancel: Cancel) {
    let id = sub.id.clone();
    let result = run_submission(app, &sub, cancel).await;
    let store = &app.store;
    let recorded = match result {
        Ok((run_id, stop, answer)) => {
            let err = match &stop {
                Stop::Error(e) => Some(format!("the model failed: {e}")),
                Stop::BudgetExceeded(w) => Some(format!("budget exceeded: {w}")),
                _ => None,
            };
            store.finish_submission(&id, SubmissionStatus::Done, run_id.as_deref(), answer.as_deref(), Some(stop.name()), err.as_deref()).await
        }
        Err(e) => {
            let run_id = match store.submission(&id).await {
                Ok(Some(Submission { task_id: Some(t), .. })) => {
                    let _ = store.end_orphan_runs(&t, "failed: the host could not run it").await;
                    store.latest_run_of_task(&t).await.ok().flatten()
                }
                _ => None,
            };
            store.finish_submission(&id, SubmissionStatus::Failed, run_id.as_deref(), None, None, Some(&format!("{e:#}"))).await
        }
    };
    if let Err(e) = recorded {
        eprintln!("serve: recording the end of run {id} failed: {e}");
    }
}

async fn run_submission(app: &Arc<App>, sub: &Submission, cancel: Cancel) -> crate::Result<(Option<String>, Stop, Option<String>)> {
    let agent = app
        .store
        .agent(&sub.agent)
        .await?
        .ok_or_else(|| crate::Error::Invalid(format!("the agent {:?} no longer exists", sub.agent)))?;
    let policy = if agent.policy.is_empty() {
        app.policy.clone()
    } else {
        Policy::parse(&agent.policy, std::path::Path::new(&format!("agent {} policy", agent.name)))?
    };
    let model = app.model(&agent.model).await?;
    let tools = app.tools.iter().filter(|t| agent.tools.iter().any(|n| n == t.name())).cloned().collect();
    let task_id = match &sub.task_id {
        Some(t) => t.clone(),
        None => {
            let task = NewTask {
                family: "user".into(),
                prompt: sub.task.clone(),
                context_ref: None,
                answer_spec: serde_json::Value::Null,
                split: Split::Train,
                parent_id: None,
                difficulty: None,
                source: format!("serve:{}", agent.name),
            };
            let t = app.store.writer().add_task(task).await?.committed().await?;
            app.store.set_submission_task(&sub.id, &t).await?;
            t
        }
    };
    let serves_adapter = agent.model.is_empty() || agent.model == app.config.model;
    let adapter_id = if serves_adapter { app.adapter.lock().await.active.as_ref().map(|a| a.0.clone()) } else { None };
    let memory = MemoryLog { writer: app.store.writer(), store: app.store.clone() };
    let mut runner = Agent::new(model, app.sandbox.clone(), policy.clone())?.with_tools(tools).with_memory(memory).with_name(agent.name.clone());
    if !policy.recursion.sub_model.is_empty() {
        runner = runner.with_sub_model(app.model(&policy.recursion.sub_model).await?);
    }
    let runner = Arc::new(runner);
    let mut input = TaskInput::new(sub.task.clone(), sub.context.clone());
    input.task_id = Some(task_id.clone());
    input.source = format!("serve:{}", agent.name);
    input.adapter_id = adapter_id;
    // A task submitted with an expected answer is rewarded by its verifier (no sandbox: only
    // numeric, exact and contains are accepted by the API).
    if let Some(item) = autodidact_evals::Item::from_task(&app.store.task(&task_id).await?) {
        input.reward = Some(Arc::new(autodidact_evals::Verifier::new(&item, None)));
    }
    let outcome = runner.run_cancellable(input, cancel).await?;
    Ok((outcome.run_id, outcome.stop, outcome.answer))
}

/// On shutdown: waits up to `drain` for running runs, then aborts the rest and marks them
/// `interrupted` (they can be re-queued).
pub async fn drain(app: &Arc<App>) {
    let deadline = Instant::now() + app.config.drain;
    let n = app.queue.running();
    if n > 0 {
        eprintln!("serve: draining: waiting up to {:?} for {n} running run(s)", app.config.drain);
    }
    while app.queue.running() > 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let left: Vec<String> = app.queue.running.lock().expect("queue lock").keys().cloned().collect();
    for id in &left {
        app.queue.abort(id);
    }
    match app.store.interrupt_running("interrupted: the server shut down before the run finished").await {
        Ok(0) => {}
        Ok(k) => eprintln!("serve: {k} run(s) did not finish in time and were marked interrupted"),
        Err(e) => eprintln!("serve: marking runs interrupted failed: {e}"),
    }
}
