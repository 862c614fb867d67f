//! `autodidact run`: one task through the RLM loop, logged to memory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use autodidact_memory::{Store, default_url};
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, ModelSpec, OpenOptions};
use autodidact_runtime::rlm::{Agent, Cancel, Event, MemoryLog, Stop, TaskInput};
use autodidact_runtime::tools::{MemorySearch, Tool};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use clap::Args;
use serde_json::{Value, json};

/// `autodidact run` arguments.
#[derive(Args)]
pub struct RunArgs {
    /// The model: `smollm2` (default), `path/to/file.gguf`, `openai:URL#MODEL` or `scripted:PATH`.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// A GGUF LoRA adapter to apply to the model.
    #[arg(long, value_name = "FILE")]
    adapter: Option<PathBuf>,
    /// A policy TOML file (default: the built-in preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A file bound as `context` in the REPL: text, or a JSON list of strings (`.json`).
    #[arg(long, value_name = "FILE")]
    context: Option<PathBuf>,
    /// A Python file whose public functions become host tools (schema from type hints,
    /// description from docstrings). They run on the host and must be allowed by the policy's
    /// `[tools] allow` list.
    #[arg(long, value_name = "FILE.py")]
    tools: Option<PathBuf>,
    /// Start the model's first reply with TEXT, as if it had written it (e.g. "```repl\n" to
    /// hold a small model to the code-block format). Recorded as part of the reply.
    #[arg(long, value_name = "TEXT")]
    reply_prefix: Option<String>,
    /// The expected answer: the run is rewarded by a verifier (1 if the answer matches) and
    /// stored as a task the next night tries again and trains on if it failed.
    #[arg(long, value_name = "ANSWER")]
    expect: Option<String>,
    /// How --expect is checked: `numeric` (the last number, within 1e-6), `exact` (after
    /// trimming and case-folding) or `contains`.
    #[arg(long, value_name = "KIND", default_value = "numeric", requires = "expect", value_parser = ["numeric", "exact", "contains"])]
    verifier: String,
    /// Print one JSON object: run_id, status, answer, turns, subcalls, tokens, duration_ms,
    /// reward (with --expect), warnings (fallbacks the run took instead of failing).
    #[arg(long)]
    json: bool,
    /// The task.
    task: String,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

fn load_context(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read context file {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        anyhow::ensure!(
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "{}: a JSON context must be a list of strings",
            path.display()
        );
        return Ok(v);
    }
    Ok(Value::String(text))
}

async fn run_async(args: RunArgs) -> Result<ExitCode> {
    anyhow::ensure!(!args.task.trim().is_empty(), "the task is empty");
    // Ctrl-C (or SIGTERM) cancels the run: a running cell stops, and the run is stored as
    // cancelled with its steps so far. A second Ctrl-C exits at once.
    let cancel = Cancel::new();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            crate::stop_signal("run: cannot listen for SIGTERM; only Ctrl-C cancels the run").await;
            cancel.cancel();
            eprintln!("cancelling the run (Ctrl-C again to quit at once)");
            crate::stop_signal("").await;
            std::process::exit(130);
        }
    });
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let context = args.context.as_ref().map(load_context).transpose()?.unwrap_or(Value::Null);
    let model = model::open(&ModelSpec::parse(&args.model)?, &OpenOptions::default()).await?;
    if let Some(path) = &args.adapter {
        let id = model.load_adapter(path).await?;
        model.set_adapter(Some((id, 1.0))).await?;
    }
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let store = Arc::new(Store::open(&default_url()).await?);
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let memory = MemoryLog { writer: store.writer(), store: store.clone() };
    let mut tools: Vec<Arc<dyn Tool>> = vec![Arc::new(MemorySearch::new(store.clone()))];
    if let Some(path) = &args.tools {
        let loaded = autodidact_runtime::pytools::load(path)?;
        for t in &loaded {
            if !policy.tools.allow.iter().any(|a| a == "*" || a == t.name()) {
                eprintln!("warning: tool `{}` from {} is not in the policy's [tools] allow list; calls to it will be refused", t.name(), path.display());
            }
        }
        tools.extend(loaded);
    }
    let mut agent = Agent::new(model.clone(), sandbox, policy.clone())?.with_tools(tools).with_memory(memory);
    if !policy.recursion.sub_model.is_empty() {
        agent = agent.with_sub_model(model::open(&ModelSpec::parse(&policy.recursion.sub_model)?, &OpenOptions::default()).await?);
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar.set_message("starting");
    let b = bar.clone();
    let agent = Arc::new(agent.with_progress(Arc::new(move |e: &Event| {
        let msg = match e {
            Event::Turn { depth, turn, tokens } => format!("{}turn {turn}: {tokens} tokens", indent(*depth)),
            Event::Cell { depth, status } => format!("{}cell: {status}", indent(*depth)),
            Event::Subcall { depth, kind } => format!("{}sub-call: {kind}", indent(*depth)),
        };
        b.println(msg.clone());
        b.set_message(msg);
    })));
    let mut task = TaskInput { reply_prefix: args.reply_prefix.clone(), ..TaskInput::new(args.task.clone(), context.clone()) };
    if let Some(expect) = &args.expect {
        // A user's task with a verifier: stored with its answer spec, so a failure is retried by
        // the next night (`nightly`'s curriculum) and trained on.
        let kind = autodidact_evals::VerifierKind::parse(&args.verifier).expect("clap allows only known verifiers");
        let item = autodidact_evals::Item::user(&args.task, expect, kind);
        task.answer_spec = item.answer_spec();
        // The context is not stored with the task: a night cannot try such a task again.
        task.answer_spec["has_context"] = json!(!context.is_null());
        task.reward = Some(Arc::new(autodidact_evals::Verifier::new(&item, None)));
    }
    let outcome = agent.run_cancellable(task, cancel).await?;
    watcher.abort();
    bar.finish_and_clear();
    store.flush().await?;
    if args.json {
        println!(
            "{}",
            json!({
                "run_id": outcome.run_id,
                "status": outcome.stop.name(),
                "answer": outcome.answer,
                "turns": outcome.turns,
                "subcalls": outcome.subcalls,
                "tokens": outcome.tokens,
                "duration_ms": outcome.duration.as_secs_f64() * 1e3,
                "reward": outcome.reward,
                "warnings": outcome.warnings.iter().map(|w| json!({"source": w.source, "message": w.message})).collect::<Vec<_>>(),
            })
        );
    } else {
        for w in &outcome.warnings {
            eprintln!("warning [{}]: {}", w.source, w.message);
        }
        match (&outcome.stop, &outcome.answer) {
            (Stop::Answered, Some(a)) => println!("{a}"),
            (stop, _) => {
                let why = match stop {
                    Stop::BudgetExceeded(w) | Stop::Error(w) => format!(" ({w})"),
                    _ => String::new(),
                };
                eprintln!("no answer: {}{why}", stop.name());
            }
        }
        if let Some(r) = outcome.reward {
            eprintln!("verified: {}", if r >= 1.0 { "correct" } else { "wrong (the next night tries it again)" });
        }
        if let Some(id) = &outcome.run_id {
            eprintln!("run {id}: {} turns, {} sub-calls, {} tokens, {:.1}s (autodidact memory show {id})", outcome.turns, outcome.subcalls, outcome.tokens, outcome.duration.as_secs_f64());
        }
    }
    Ok(if outcome.stop == Stop::Cancelled { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

fn indent(depth: u32) -> String {
    "  ".repeat(depth as usize)
}
