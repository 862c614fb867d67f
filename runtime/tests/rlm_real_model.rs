//! The RLM loop on the real SmolLM2: a small task runs end to end and is logged with at least
//! one code cell (correctness is recorded, not required), and a needle in a 1 MB haystack is
//! found by code, since the model only ever sees a preview of `context`.

use std::sync::Arc;

use autodidact_memory::{StepKind, Store};
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, ModelSpec, OpenOptions};
use autodidact_runtime::rlm::{Agent, MemoryLog, RunOutcome, TaskInput};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn run(task: TaskInput) -> (RunOutcome, Arc<Store>) {
    let dir = std::env::temp_dir().join(format!("autodidact-rlm-real-{}-{}", std::process::id(), task.prompt.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap());
    let model = model::open(&ModelSpec::parse("smollm2").unwrap(), &OpenOptions::default()).await.unwrap();
    let mut policy = Policy::preset_default();
    policy.recursion.max_iterations = 3;
    policy.budget.turn_tokens = 160;
    let agent = Agent::new(model, Sandbox::open(&SandboxConfig::from_env()).unwrap(), policy)
        .unwrap()
        .with_memory(MemoryLog { writer: store.writer(), store: store.clone() });
    let outcome = Arc::new(agent).run(task).await.unwrap();
    store.flush().await.unwrap();
    (outcome, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_task_runs_end_to_end_with_a_code_cell() {
    let (o, store) = run(TaskInput::new("What is 37 * 21 + 14?", Value::Null)).await;
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    let cells = steps.iter().filter(|s| s.data.kind == StepKind::CodeCell).count();
    assert!(cells >= 1, "SmolLM2 wrote no code cell: {:?}", steps.iter().map(|s| &s.data.output).collect::<Vec<_>>());
    let run = store.run(o.run_id.as_deref().unwrap()).await.unwrap();
    assert!(run.finished_ms.is_some());
    eprintln!("answer: {:?} (expected 791), status {}", o.answer, o.stop.name());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_needle_in_a_one_megabyte_haystack_is_found_by_code() {
    let filler = "The quick brown fox jumps over the lazy dog. ";
    let mut haystack = filler.repeat(1_048_576 / filler.len());
    let at = haystack.len() * 2 / 3;
    let at = haystack[..at].rfind(". ").unwrap() + 2;
    haystack.insert_str(at, "The secret code is 48213. ");
    assert!(haystack.len() >= 1_000_000);
    let task = TaskInput::new("Find the secret code in context. Answer with the number only.", json!(haystack));
    let (o, store) = run(task).await;
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    assert!(steps.iter().any(|s| s.data.kind == StepKind::CodeCell), "no code cell");
    assert_eq!(o.answer.as_deref().map(str::trim), Some("48213"), "steps: {:#?}", steps.iter().map(|s| (&s.data.input, &s.data.output)).collect::<Vec<_>>());
}
