//! Cancelling a run stops it wherever it is: in a cell that loops forever (interrupted through
//! the sandbox's epoch check), in a model turn that would take minutes, or in a cell blocked on
//! a sub-call. The cancelled run is logged with its steps so far, ends `failed` / `cancelled`,
//! and the same agent (sandbox, model) answers the next task. Real sandbox, real SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use autodidact_memory::{RunStatus, StepKind, Store};
use autodidact_policies::Policy;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::model::{Completion, LanguageModel, Message, Sampling};
use autodidact_runtime::rlm::{Agent, Cancel, MemoryLog, RunOutcome, Stop, TaskInput};
use autodidact_runtime::tools::{Tool, ToolError};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// How soon after the cancel the run must have ended (the issue's bound for a running cell).
const BOUND: Duration = Duration::from_millis(100);

/// A host tool the guest calls right before it starts to loop, so the test knows the cell runs.
struct Started(Arc<Notify>);

#[async_trait]
impl Tool for Started {
    fn name(&self) -> &str {
        "started"
    }
    fn description(&self) -> &str {
        "Tells the test the cell is running."
    }
    fn schema(&self) -> Value {
        json!({"type": "object"})
    }
    async fn call(&self, _: Value) -> Result<Value, ToolError> {
        self.0.notify_one();
        Ok(Value::Null)
    }
}

/// A model that never answers in time (a turn of ten minutes), counting its calls.
struct Stuck(Arc<Notify>);

#[async_trait]
impl LanguageModel for Stuck {
    fn describe(&self) -> String {
        "stuck".into()
    }
    fn backend_name(&self) -> &'static str {
        "scripted"
    }
    async fn chat_group(&self, _: &[Message], _: usize, _: &Sampling) -> autodidact_runtime::Result<Vec<Completion>> {
        self.0.notify_one();
        tokio::time::sleep(Duration::from_secs(600)).await;
        unreachable!("the test cancels long before")
    }
}

fn scripted(replies: &[&str]) -> Arc<dyn LanguageModel> {
    Arc::new(ScriptedModel::from_text(&replies.join("\n---\n"), "test"))
}

async fn store() -> Arc<Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap())
}

fn agent(model: Arc<dyn LanguageModel>, sub: Option<Arc<dyn LanguageModel>>, started: &Arc<Notify>, store: &Arc<Store>) -> Arc<Agent> {
    let mut policy = Policy::preset_default();
    policy.tools.allow = vec!["started".into()];
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let mut a = Agent::new(model, sandbox, policy)
        .unwrap()
        .with_tools(vec![Arc::new(Started(started.clone()))])
        .with_memory(MemoryLog { writer: store.writer(), store: store.clone() });
    if let Some(s) = sub {
        a = a.with_sub_model(s);
    }
    Arc::new(a)
}

/// Starts a run, waits for `ready`, cancels, and returns the outcome with the time from the
/// cancel to the run's end.
async fn cancel_when(agent: &Arc<Agent>, ready: &Notify) -> (RunOutcome, Duration) {
    let cancel = Cancel::new();
    let run = tokio::spawn({
        let (agent, cancel) = (agent.clone(), cancel.clone());
        async move {
            let o = agent.run_cancellable(TaskInput::new("loop", Value::Null), cancel.clone()).await.unwrap();
            assert!(cancel.is_cancelled(), "the run ended before it was cancelled: {o:?}");
            o
        }
    });
    tokio::time::timeout(Duration::from_secs(120), ready.notified()).await.expect("the run reached the point to cancel");
    // Let the guest get into its loop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at = Instant::now();
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the run ended").unwrap();
    (outcome, at.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cell_that_loops_forever_stops_within_100_ms_and_the_agent_answers_the_next_task() {
    let store = store().await;
    let started = Arc::new(Notify::new());
    let looping = "```repl\nprint('looping')\ntools.started()\nwhile True:\n    pass\n```";
    let a = agent(scripted(&[looping, looping, looping, "```repl\nFINAL(6 * 7)\n```"]), None, &started, &store);
    let mut stops = Vec::new();
    for _ in 0..3 {
        let (o, stopped_in) = cancel_when(&a, &started).await;
        assert_eq!((o.stop.clone(), o.answer.clone(), o.turns), (Stop::Cancelled, None, 1), "{o:?}");
        stops.push(stopped_in);
        store.flush().await.unwrap();
        let run = store.run(o.run_id.as_deref().unwrap()).await.unwrap();
        assert_eq!((run.status, run.end_reason.as_deref()), (RunStatus::Failed, Some("cancelled")));
        let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
        let kinds: Vec<StepKind> = steps.iter().map(|s| s.data.kind).collect();
        assert_eq!(kinds, [StepKind::ModelTurn, StepKind::ToolCall, StepKind::CodeCell], "the steps so far, the interrupted cell last");
        let cell = &steps[2].data;
        assert_eq!(cell.error.as_deref(), Some("cancelled"));
        assert_eq!(cell.input, looping.trim_start_matches("```repl\n").trim_end_matches("\n```"), "the interrupted code is kept");
    }
    println!("cancel to end of run: {stops:?}");
    // The time includes the run's final commit to the store; the machine is shared, so the
    // median is held to the bound and every sample to a looser one.
    stops.sort();
    assert!(stops[1] < BOUND, "median {:?} from the cancel to the end of the run: {stops:?}", stops[1]);
    assert!(stops[2] < Duration::from_millis(500), "{stops:?}");
    // Same agent, same sandbox and model: the next task runs to its answer.
    let o = a.run(TaskInput::new("answer", Value::Null)).await.unwrap();
    assert_eq!((o.stop, o.answer.as_deref()), (Stop::Answered, Some("42")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_turn_in_flight_is_dropped() {
    let store = store().await;
    let asked = Arc::new(Notify::new());
    let a = agent(Arc::new(Stuck(asked.clone())), None, &Arc::new(Notify::new()), &store);
    let (o, stopped_in) = cancel_when(&a, &asked).await;
    assert_eq!((o.stop, o.turns), (Stop::Cancelled, 0));
    assert!(stopped_in < Duration::from_secs(2), "{stopped_in:?}");
    store.flush().await.unwrap();
    let run = store.run(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!((run.status, run.end_reason.as_deref()), (RunStatus::Failed, Some("cancelled")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cell_waiting_on_a_sub_call_is_stopped() {
    let store = store().await;
    let asked = Arc::new(Notify::new());
    let code = "```repl\nprint('asking')\nr = llm_query('never answered in time')\n```";
    let a = agent(scripted(&[code]), Some(Arc::new(Stuck(asked.clone()))), &Arc::new(Notify::new()), &store);
    let (o, stopped_in) = cancel_when(&a, &asked).await;
    assert_eq!(o.stop, Stop::Cancelled);
    assert!(stopped_in < Duration::from_secs(2), "{stopped_in:?}");
    store.flush().await.unwrap();
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    let cell = steps.iter().find(|s| s.data.kind == StepKind::CodeCell).expect("the cell is logged");
    assert_eq!(cell.data.error.as_deref(), Some("cancelled"));
}
