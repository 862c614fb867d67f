//! Embedding autodidact in a Rust program: the agent with a domain tool written in Rust, one
//! task that carries its own verifier, then one small night of self-improvement run
//! programmatically over the same store. Real model (SmolLM2 through llama.cpp), real sandbox,
//! real SQLite, all in a temporary folder (or the store `AUTODIDACT_DB` names).
//!
//! `cargo run --example embed` (`make test` runs it). It takes a few minutes on 2 cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use autodidact_memory::Store;
use autodidact_nightly::{Night, NightEvent, NightOptions, Outcome};
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, ModelSpec, OpenOptions};
use autodidact_runtime::rlm::{Agent, MemoryLog, Reward, TaskInput};
use autodidact_runtime::tools::{Tool, ToolError};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// A domain tool: `tools.multiply(a, b)` in the agent's Python. It counts its calls.
#[derive(Default)]
struct Multiply {
    calls: AtomicUsize,
}

#[async_trait]
impl Tool for Multiply {
    fn name(&self) -> &str {
        "multiply"
    }
    fn description(&self) -> &str {
        "multiply(a, b): the exact product of two integers."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false})
    }
    async fn call(&self, args: Value) -> Result<Value, ToolError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (Some(a), Some(b)) = (args["a"].as_i64(), args["b"].as_i64()) else {
            return Err(ToolError::InvalidArguments("a and b must be integers".into()));
        };
        a.checked_mul(b).map(Value::from).ok_or_else(|| ToolError::Failed("the product overflows 64 bits".into()))
    }
}

/// The task's verifier: the answer must be 1517. A task that carries one is rewarded in
/// memory, so a night can train on it.
struct Is1517;

#[async_trait]
impl Reward for Is1517 {
    async fn reward(&self, answer: Option<&str>) -> f64 {
        f64::from(answer.map(str::trim) == Some("1517"))
    }
}

/// A night small enough for an example: one suite, two eval items, two train tasks.
const TINY_NIGHT: &str = r#"
[nightly]
suites = ["toy"]
eval_items = 2
train_tasks = 2
curriculum_tasks = 0
group_size = 2
rollout_turns = 1
sft_steps = 1
train_steps = 1
"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = std::env::var("AUTODIDACT_DB").unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("memory.db").display()));
    let store = Arc::new(Store::open(&url).await.with_context(|| format!("opening the store {url}"))?);

    // 1. The agent, with the Rust tool allowed by its policy (tools are denied by default).
    let mut policy = Policy::preset_eval();
    policy.tools.allow.push("multiply".into());
    let tool = Arc::new(Multiply::default());
    let model = model::open(&ModelSpec::parse("smollm2")?, &OpenOptions::default()).await?;
    let agent = Arc::new(
        Agent::new(model, Sandbox::open(&SandboxConfig::from_env())?, policy)?
            .with_tools(vec![tool.clone() as Arc<dyn Tool>])
            .with_memory(MemoryLog { writer: store.writer(), store: store.clone() }),
    );
    let mut task = TaskInput::new("What is 37 * 41? Use tools.multiply, then answer with FINAL.", Value::Null);
    task.reward = Some(Arc::new(Is1517));
    // A small model follows the REPL protocol more often when its first reply is started for it.
    task.reply_prefix = Some("```repl\nx = tools.multiply(37, 41)\n".into());
    let outcome = agent.run(task).await?;
    println!(
        "run {}: {} after {} turns; answer {:?}; tools.multiply called {} time(s)",
        outcome.run_id.as_deref().unwrap_or("-"),
        outcome.stop.name(),
        outcome.turns,
        outcome.answer,
        tool.calls.load(Ordering::Relaxed)
    );
    ensure!(tool.calls.load(Ordering::Relaxed) >= 1, "the Rust tool was never called");
    drop(agent);

    // 2. One night over the same store: rollouts, training, evals, the gate, the report.
    let mut options = NightOptions::new(Policy::parse(TINY_NIGHT, std::path::Path::new("TINY_NIGHT"))?);
    options.quick = true;
    options.out = Some(dir.path().join("nights"));
    let mut night = Night::open(store.clone(), options, |event| match event {
        NightEvent::Note(m) | NightEvent::Progress(m) => eprintln!("night: {m}"),
    })
    .await?;
    let Outcome::Finished(summary) = night.run().await? else {
        anyhow::bail!("the night stopped before its last stage");
    };
    println!(
        "night {}: toy pass@1 {} -> {}, {} ({})",
        summary["night"].as_str().unwrap_or("-"),
        summary["before"]["pass_at_1"],
        summary["after"]["pass_at_1"],
        summary["decision"].as_str().unwrap_or("-"),
        summary["reason"].as_str().unwrap_or("")
    );
    ensure!(summary["decision"].is_string(), "the night made no decision: {summary}");
    store.flush().await?;
    Ok(())
}
