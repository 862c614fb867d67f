//! The host side of the guest's helpers: `llm_query`, `llm_query_batched`, `rlm_query`, and
//! the domain tools, as one [`ToolSet`] per session.
//!
//! Sub-calls share the tree's budgets: `recursion.max_subcalls` counts every sub-call of the
//! tree, `recursion.max_concurrent_subcalls` bounds how many model calls run at once, and at
//! `recursion.max_depth` an `rlm_query` falls back to `llm_query`. Domain tools sit behind
//! the `[tools]` gate: the allow list, `tools.max_calls` per tool per run, `tools.timeout_ms`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodidact_memory::{NewStep, RunHandle, StepKind};
use autodidact_sandbox::{ToolError, ToolSet};
use serde_json::{Value, json};

use super::{Agent, Event, Stop, TaskInput, Tree};
use crate::model::{Message, Sampling};

/// The helpers the scaffold binds; they are part of the protocol, not domain tools.
pub(crate) const PROTOCOL_TOOLS: &[&str] = &["llm_query", "llm_query_batched", "rlm_query"];

type Parent = Option<(RunHandle, String)>;

#[derive(Clone)]
struct Ctx {
    agent: Arc<Agent>,
    tree: Arc<Tree>,
    depth: u32,
    parent: Parent,
    mine: Arc<AtomicU32>,
    warnings: super::Warnings,
}

pub(crate) fn tool_set(agent: &Arc<Agent>, depth: u32, tree: &Arc<Tree>, parent: Parent, mine: Arc<AtomicU32>, warnings: super::Warnings) -> ToolSet {
    let cx = Ctx { agent: agent.clone(), tree: tree.clone(), depth, parent, mine, warnings };
    let mut set = ToolSet::new();
    let c = cx.clone();
    set.add(
        "llm_query",
        "Ask a language model one question.",
        json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}),
        move |args: Value| {
            let c = c.clone();
            async move { c.llm(args["prompt"].as_str().unwrap_or_default().to_owned()).await.map(Value::String) }
        },
    );
    let c = cx.clone();
    set.add(
        "llm_query_batched",
        "Ask several questions concurrently.",
        json!({"type": "object", "properties": {"prompts": {"type": "array"}}, "required": ["prompts"]}),
        move |args: Value| {
            let c = c.clone();
            async move {
                let prompts: Vec<String> = args["prompts"].as_array().into_iter().flatten().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect();
                let calls = prompts.into_iter().map(|p| {
                    let c = c.clone();
                    async move { c.llm(p).await }
                });
                let replies = futures::future::join_all(calls).await;
                // One failed question does not sink the batch: its slot holds the error.
                Ok(Value::Array(replies.into_iter().map(|r| match r {
                    Ok(text) => Value::String(text),
                    Err(e) => Value::String(format!("(error: {})", tool_error_text(&e))),
                }).collect()))
            }
        },
    );
    let c = cx.clone();
    set.add(
        "rlm_query",
        "Give a sub-task to a child agent with its own REPL.",
        json!({"type": "object", "properties": {"prompt": {"type": "string"}, "context": {}}, "required": ["prompt"]}),
        move |args: Value| {
            let c = c.clone();
            async move { c.rlm(args["prompt"].as_str().unwrap_or_default().to_owned(), args["context"].clone()).await.map(Value::String) }
        },
    );
    let timeout = Duration::from_millis(agent.policy.tools.timeout_ms);
    for tool in agent.tools.iter() {
        let (name, description, schema) = (tool.name().to_owned(), tool.description().to_owned(), tool.schema());
        let (tool, c) = (tool.clone(), cx.clone());
        set.add(&name, &description, schema, move |args: Value| {
            let (tool, c) = (tool.clone(), c.clone());
            async move {
                let started = Instant::now();
                let result = match tokio::time::timeout(timeout, tool.call(args.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(ToolError::Failed(format!("{} did not answer within {} ms (tools.timeout_ms)", tool.name(), timeout.as_millis()))),
                };
                let output = match &result {
                    Ok(v) => v.to_string(),
                    Err(e) => tool_error_text(e),
                };
                c.log(StepKind::ToolCall, format!("{}({args})", tool.name()), output, result.as_ref().err().map(tool_error_text), started, 0, 0).await;
                result
            }
        });
    }
    let allow = agent.policy.tools.allow.clone();
    let max_calls = agent.policy.tools.max_calls;
    let counts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    set.gate(move |name, _args| {
        if PROTOCOL_TOOLS.contains(&name) {
            return Ok(());
        }
        if !allow.iter().any(|a| a == "*" || a == name) {
            return Err("not in the policy's [tools] allow list".into());
        }
        let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(name.to_owned()).or_default();
        if *n >= max_calls {
            return Err(format!("the policy allows {max_calls} calls per run (tools.max_calls)"));
        }
        *n += 1;
        Ok(())
    });
    set
}

fn tool_error_text(e: &ToolError) -> String {
    match e {
        ToolError::Failed(m) | ToolError::InvalidArguments(m) | ToolError::Denied(m) | ToolError::BudgetExceeded(m) => m.clone(),
    }
}

impl Ctx {
    /// Counts one sub-call against the tree's budget.
    fn take_subcall(&self) -> Result<(), ToolError> {
        let max = self.agent.policy.recursion.max_subcalls;
        let n = self.tree.subcalls.fetch_add(1, Ordering::Relaxed);
        if n >= max {
            return Err(ToolError::BudgetExceeded(format!("this task may make {max} sub-calls in all (recursion.max_subcalls)")));
        }
        if let Some(Stop::BudgetExceeded(what)) = self.agent.over_budget(&self.tree) {
            return Err(ToolError::BudgetExceeded(format!("the run's budget is spent ({what})")));
        }
        self.mine.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn llm(&self, prompt: String) -> Result<String, ToolError> {
        self.take_subcall()?;
        self.agent.emit(Event::Subcall { depth: self.depth, kind: "llm_query" });
        let _permit = self.tree.concurrent.acquire().await.map_err(|_| ToolError::Failed("shutting down".into()))?;
        let started = Instant::now();
        let sampling = Sampling { max_new_tokens: self.agent.policy.budget.turn_tokens as usize, temperature: self.agent.policy.budget.temperature, ..Sampling::default() };
        let remaining = self.tree.deadline.saturating_duration_since(started);
        let reply = tokio::time::timeout(remaining, self.agent.sub_model.chat(&[Message::user(prompt.clone())], &sampling)).await;
        let completion = match reply {
            Err(_) => return Err(ToolError::BudgetExceeded("the run's wall clock ran out (budget.wall_clock_ms)".into())),
            Ok(Err(e)) => return Err(ToolError::Failed(format!("the sub-model failed: {e}"))),
            Ok(Ok(c)) => c,
        };
        let (p, c) = (completion.usage.prompt_tokens as u64, completion.usage.completion_tokens as u64);
        self.tree.tokens.fetch_add(p + c, Ordering::Relaxed);
        self.log(StepKind::Subcall, format!("llm_query: {prompt}"), completion.text.clone(), None, started, p, c).await;
        Ok(completion.text)
    }

    async fn rlm(&self, prompt: String, context: Value) -> Result<String, ToolError> {
        if self.depth + 1 > self.agent.policy.recursion.max_depth {
            // At the maximum depth a child agent would be too deep: answer with a plain call.
            return self.llm(prompt).await;
        }
        self.take_subcall()?;
        self.agent.emit(Event::Subcall { depth: self.depth, kind: "rlm_query" });
        let started = Instant::now();
        let task = TaskInput { family: "subtask".into(), source: "rlm_query".into(), ..TaskInput::new(prompt.clone(), context) };
        let parent_task = self.parent.as_ref().map(|(_, t)| t.clone());
        let outcome = self.agent.clone().run_at(task, self.depth + 1, self.tree.clone(), parent_task).await.map_err(|e| ToolError::Failed(format!("the sub-agent could not run: {e}")))?;
        let text = match (&outcome.stop, &outcome.answer) {
            (Stop::Answered, Some(a)) => a.clone(),
            (stop, _) => format!("(the sub-agent gave no answer: {})", stop.name()),
        };
        let note = format!("rlm_query -> run {}: {prompt}", outcome.run_id.as_deref().unwrap_or("-"));
        self.log(StepKind::Subcall, note, text.clone(), None, started, 0, outcome.tokens).await;
        Ok(text)
    }

    #[allow(clippy::too_many_arguments)]
    async fn log(&self, kind: StepKind, input: String, output: String, error: Option<String>, started: Instant, prompt_tokens: u64, completion_tokens: u64) {
        let Some((handle, _)) = &self.parent else { return };
        let mut step = NewStep::new(kind, input, output);
        step.error = error;
        step.prompt_tokens = prompt_tokens;
        step.completion_tokens = completion_tokens;
        step.latency_us = started.elapsed().as_micros() as u64;
        if let Err(e) = handle.step(step).await {
            super::warn(Some(handle), &self.warnings, "memory", format!("a sub-call could not be logged: {e}")).await;
        }
    }
}
