//! The RLM loop: a model drives a Python REPL until it answers or a budget runs out.
//!
//! One run (see [`Agent::run`]):
//! 1. open a sandbox session, bind `context` and the scaffold (`prelude.py`);
//! 2. prompt the model from `runtime/prompts/*.j2`; a turn's generation ends after the first
//!    block that calls `FINAL`, since no block after it would run;
//! 3. each turn, run every ` ```repl ` block of the reply in order and feed the outputs back,
//!    each cut to `budget.output_chars`; a reply with no block gets a short nudge;
//! 4. after every cell, restore scaffold names the code overwrote, and tell the model;
//! 5. stop when `answer["ready"]` is true or a budget runs out; at the iteration cap, ask once
//!    for a final answer.
//!
//! The model's mistakes (exceptions, bad code, malformed replies, refused tools) are fed back
//! as text; only failures of the host are `Err`s. Sub-calls (`llm_query`, `rlm_query`) reach
//! the host through the sandbox's tool bridge ([`subcalls`]) and share one budget per tree.

mod cancel;
mod code;
mod subcalls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autodidact_memory::{NewRun, NewStep, NewTask, RunEnd, RunHandle, RunStatus, Split, StepKind};
use autodidact_policies::Policy;
use autodidact_sandbox::{Cell, Limit, Limits, Sandbox, Session, Status};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use cancel::Cancel;
pub use code::{code_blocks, truncate};

use crate::model::{LanguageModel, Message, Role, Sampling};
use crate::tools::Tool;
use crate::{Error, Result};

const PRELUDE: &str = include_str!("prelude.py");
const CHECK: &str = "__import__('_autodidact').check(globals())";
/// What a block that answers calls or sets. A turn's generation ends at the closing fence of
/// the first block holding one of these ([`Sampling::stop_after_block`]): [`Agent::run`] runs no
/// block after the one that answers, and a small model otherwise repeats its answer block to the
/// turn's token cap. A block that turns out not to answer gets its feedback on the next turn.
const ANSWER_CALLS: [&str; 4] = ["FINAL(", "FINAL_VAR(", "\"ready\"]", "'ready']"];

/// A task for one run.
#[derive(Debug, Clone)]
pub struct TaskInput {
    /// What to do.
    pub prompt: String,
    /// The input bound as `context`: a string, a list of strings, or null.
    pub context: Value,
    /// The task family, for memory (`user` by default).
    pub family: String,
    /// Train or eval, for memory.
    pub split: Split,
    /// Where the task came from (`cli`, a suite name, ...).
    pub source: String,
    /// The answer and verifier, when known, stored with the task.
    pub answer_spec: Value,
    /// An existing task in memory to attach the run to, instead of adding a new task (group
    /// members and repeated eval samples share one task).
    pub task_id: Option<String>,
    /// The registered adapter the model runs with, recorded on the run.
    pub adapter_id: Option<String>,
    /// Scores the answer; the reward is stored with the run and returned in the outcome.
    pub reward: Option<Arc<dyn Reward>>,
    /// A hint (Scaf-GRPO's partial-solution prefix): the first reply starts with this text, as
    /// if the model had written it, and the model continues from there. The run's first
    /// `model_turn` step records the whole reply, prefix included, so that a trainer can learn
    /// the hinted success as the model's own answer to the unhinted prompt.
    pub reply_prefix: Option<String>,
}

/// Scores a run's final answer, from 0 (wrong or none) to 1 (right).
#[async_trait::async_trait]
pub trait Reward: Send + Sync {
    /// The reward for `answer` (`None` when the run gave none).
    async fn reward(&self, answer: Option<&str>) -> f64;
}

impl std::fmt::Debug for dyn Reward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reward")
    }
}

impl TaskInput {
    /// A user task with an optional context.
    pub fn new(prompt: impl Into<String>, context: Value) -> Self {
        TaskInput {
            prompt: prompt.into(),
            context,
            family: "user".into(),
            split: Split::Train,
            source: "cli".into(),
            answer_spec: Value::Null,
            task_id: None,
            adapter_id: None,
            reward: None,
            reply_prefix: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The guest set `answer["ready"]`.
    Answered,
    /// `recursion.max_iterations` turns, and the final-answer request, gave no answer.
    MaxIterations,
    /// A token, time or sub-call budget ran out; the string names it.
    BudgetExceeded(String),
    /// The model backend failed; the string says how.
    Error(String),
    /// The run was stopped from outside through its [`Cancel`].
    Cancelled,
}

impl Stop {
    /// `answered`, `max_iterations`, `budget_exceeded`, `error` or `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            Stop::Cancelled => "cancelled",
            Stop::Answered => "answered",
            Stop::MaxIterations => "max_iterations",
            Stop::BudgetExceeded(_) => "budget_exceeded",
            Stop::Error(_) => "error",
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run's id in memory, when it was logged.
    pub run_id: Option<String>,
    /// How it ended.
    pub stop: Stop,
    /// The answer's content, when one was given.
    pub answer: Option<String>,
    /// Model turns taken.
    pub turns: u32,
    /// Sub-calls made by this run (not its children).
    pub subcalls: u32,
    /// Tokens (prompt and completion) of this run's own turns.
    pub tokens: u64,
    /// Wall-clock time.
    pub duration: Duration,
    /// Time spent waiting for the model.
    pub model_time: Duration,
    /// Time spent running guest code (including sub-calls made from it).
    pub guest_time: Duration,
    /// The task's [`Reward`] for the answer, when the task has one.
    pub reward: Option<f64>,
    /// Fallbacks the run took instead of failing, also recorded on the run in memory.
    pub warnings: Vec<Warning>,
}

/// A fallback a run took instead of failing: experience retrieval that failed (the prompt went
/// without it), a step that could not be logged, an answer check whose output was unreadable.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// What fell back: `retrieval`, `memory` or `scaffold`.
    pub source: &'static str,
    /// What went wrong, and what the run did instead.
    pub message: String,
}

/// Warnings of one run, shared with its tool bridge.
pub(crate) type Warnings = Arc<std::sync::Mutex<Vec<Warning>>>;

/// Notes a warning on the run: kept for the outcome, and recorded in memory when it can be.
pub(crate) async fn warn(handle: Option<&RunHandle>, sink: &Warnings, source: &'static str, message: String) {
    let mut lost = None;
    if let Some(h) = handle
        && let Err(e) = h.warn(source, &message).await
    {
        lost = Some(Warning { source: "memory", message: format!("a warning could not be recorded: {e}") });
    }
    let mut all = sink.lock().expect("warnings lock");
    all.push(Warning { source, message });
    all.extend(lost);
}

/// Something worth showing a person while a run goes on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A model turn finished.
    Turn {
        /// Depth in the RLM tree (root 0).
        depth: u32,
        /// Turn number, from 1.
        turn: u32,
        /// Tokens generated.
        tokens: usize,
    },
    /// A code cell finished.
    Cell {
        /// Depth in the RLM tree.
        depth: u32,
        /// `ok`, `error`, `exited` or `trapped`.
        status: &'static str,
    },
    /// A sub-call started.
    Subcall {
        /// Depth of the caller.
        depth: u32,
        /// `llm_query` or `rlm_query`.
        kind: &'static str,
    },
}

/// A callback told about [`Event`]s.
pub type Progress = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where runs are logged.
#[derive(Clone)]
pub struct MemoryLog {
    /// The store (for retrieval).
    pub store: Arc<autodidact_memory::Store>,
    /// Its batched writer.
    pub writer: autodidact_memory::Writer,
}

/// An agent: a model, a sandbox, a policy and tools. Share it as `Arc<Agent>`.
pub struct Agent {
    model: Arc<dyn LanguageModel>,
    sub_model: Arc<dyn LanguageModel>,
    sandbox: Sandbox,
    policy: Policy,
    limits: Limits,
    tools: Vec<Arc<dyn Tool>>,
    memory: Option<MemoryLog>,
    progress: Option<Progress>,
    name: String,
    prompts: minijinja::Environment<'static>,
}

/// Budgets shared by every run of one tree.
pub(crate) struct Tree {
    subcalls: AtomicU32,
    tokens: AtomicU64,
    concurrent: Semaphore,
    deadline: Instant,
    cancel: Cancel,
}

struct RunLog {
    handle: RunHandle,
    task_id: String,
}

#[derive(Default)]
struct Tally {
    turns: u32,
    tokens: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    model_time: Duration,
    guest_time: Duration,
    subcalls: Arc<AtomicU32>,
    warnings: Warnings,
}

impl Agent {
    /// An agent with `model` for turns and sub-calls, in `sandbox`, under `policy`.
    pub fn new(model: Arc<dyn LanguageModel>, sandbox: Sandbox, policy: Policy) -> Result<Agent> {
        let mut prompts = minijinja::Environment::new();
        for (name, text) in [
            ("system", include_str!("../../prompts/system.j2")),
            ("task", include_str!("../../prompts/task.j2")),
            ("feedback", include_str!("../../prompts/feedback.j2")),
            ("nudge", include_str!("../../prompts/nudge.j2")),
            ("final", include_str!("../../prompts/final.j2")),
            ("lesson", include_str!("../../prompts/lesson.j2")),
        ] {
            prompts.add_template(name, text).map_err(|e| Error::Prompt(format!("{name}.j2: {e}")))?;
        }
        let limits = crate::sandbox_limits(&policy);
        Ok(Agent { sub_model: model.clone(), model, sandbox, policy, limits, tools: Vec::new(), memory: None, progress: None, name: "default".into(), prompts })
    }

    /// Uses `model` for `llm_query` and `rlm_query` instead of the root model.
    pub fn with_sub_model(mut self, model: Arc<dyn LanguageModel>) -> Self {
        self.sub_model = model;
        self
    }

    /// Adds domain tools (still gated by the policy's `[tools]` allow list).
    pub fn with_tools(mut self, tools: Vec<Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Logs every run, turn, cell and sub-call to memory.
    pub fn with_memory(mut self, memory: MemoryLog) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Names the agent in memory.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The policy the agent runs under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `task` to an answer or a budget.
    pub async fn run(self: &Arc<Self>, task: TaskInput) -> Result<RunOutcome> {
        self.run_cancellable(task, Cancel::new()).await
    }

    /// [`Agent::run`], stopped early when `cancel` fires: the turn in flight is dropped, a
    /// running cell is interrupted within milliseconds and logged, and the run ends with
    /// [`Stop::Cancelled`] (stored as `failed`, end reason `cancelled`). Its children stop too.
    pub async fn run_cancellable(self: &Arc<Self>, task: TaskInput, cancel: Cancel) -> Result<RunOutcome> {
        let r = &self.policy.recursion;
        let tree = Arc::new(Tree {
            subcalls: AtomicU32::new(0),
            tokens: AtomicU64::new(0),
            concurrent: Semaphore::new(r.max_concurrent_subcalls as usize),
            deadline: Instant::now() + Duration::from_millis(self.policy.budget.wall_clock_ms),
            cancel,
        });
        self.clone().run_at(task, 0, tree, None).await
    }

    /// One run of the tree at `depth`. Boxed, because `rlm_query` recurses into it.
    pub(crate) fn run_at(
        self: Arc<Self>,
        task: TaskInput,
        depth: u32,
        tree: Arc<Tree>,
        parent_task: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunOutcome>> + Send>> {
        Box::pin(async move {
            let started = Instant::now();
            let log = self.begin(&task, parent_task).await?;
            let mut tally = Tally::default();
            let mut session = self.open_session(&task, depth, &tree, &log, &mut tally).await?;
            let mut answer: Option<String> = None;
            let (mut messages, fallbacks) = self.first_messages_and_warnings(&task).await;
            for w in fallbacks {
                warn(log.as_ref().map(|l| &l.handle), &tally.warnings, w.source, w.message).await;
            }
            let max_turns = self.policy.recursion.max_iterations;
            let mut stop = loop {
                if tree.cancel.is_cancelled() {
                    break Stop::Cancelled;
                }
                if let Some(over) = self.over_budget(&tree) {
                    break over;
                }
                if tally.turns >= max_turns {
                    break Stop::MaxIterations;
                }
                let prefix = if tally.turns == 0 { task.reply_prefix.as_deref() } else { None };
                let reply = match self.turn_with_prefix(&mut messages, prefix, depth, &tree, &log, &mut tally).await {
                    Ok(text) => text,
                    Err(stop) => break stop,
                };
                messages.push(Message::assistant(reply.clone()));
                let blocks = code_blocks(&reply);
                if blocks.is_empty() {
                    messages.push(Message::user(self.render("nudge", json!({}))));
                    continue;
                }
                match self.run_cells(&mut session, &blocks, &task, depth, &tree, &log, &mut tally).await? {
                    Ok(given) => {
                        answer = Some(given);
                        break Stop::Answered;
                    }
                    Err(feedback) => messages.push(Message::user(feedback)),
                }
            };
            if stop == Stop::MaxIterations {
                // At the iteration cap the model is asked once for a final answer.
                messages.push(Message::user(self.render("final", json!({}))));
                if let Ok(reply) = self.turn(&mut messages, depth, &tree, &log, &mut tally).await {
                    let blocks = code_blocks(&reply);
                    if let Ok(given) = self.run_cells(&mut session, &blocks, &task, depth, &tree, &log, &mut tally).await? {
                        answer = Some(given);
                        stop = Stop::Answered;
                    }
                }
            }
            let reward = match &task.reward {
                Some(r) => Some(r.reward(answer.as_deref()).await),
                None => None,
            };
            let outcome = RunOutcome {
                reward,
                run_id: log.as_ref().map(|l| l.handle.id().to_owned()),
                stop,
                answer,
                turns: tally.turns,
                subcalls: tally.subcalls.load(Ordering::Relaxed),
                tokens: tally.tokens,
                duration: started.elapsed(),
                model_time: tally.model_time,
                guest_time: tally.guest_time,
                warnings: tally.warnings.lock().expect("warnings lock").clone(),
            };
            self.finish(&log, &outcome, &tally).await?;
            Ok(outcome)
        })
    }

    /// Training-free GRPO (arXiv 2510.08191): after a group of attempts at one task, compares
    /// the successful and the failed ones and stores one short lesson in `experiences`, which
    /// later runs retrieve when the policy allows. `attempts` are (run id, reward); nothing is
    /// written unless the group has both a success and a failure and the agent has memory.
    /// Returns the lesson.
    pub async fn write_lesson(&self, task: &str, attempts: &[(String, f64)]) -> Result<Option<String>> {
        let Some(memory) = &self.memory else { return Ok(None) };
        let (best, worst) = attempts.iter().fold((f64::MIN, f64::MAX), |(b, w), (_, r)| (b.max(*r), w.min(*r)));
        if attempts.len() < 2 || best <= worst {
            return Ok(None);
        }
        let mut shown = Vec::new();
        for (run_id, reward) in attempts.iter().take(4) {
            let run = memory.store.run(run_id).await?;
            let steps = memory.store.steps(run_id).await?;
            let trace = truncate(&autodidact_memory::completion_text(&steps), 600).0;
            let answer = run.final_answer.unwrap_or_else(|| "none".into());
            shown.push(json!({"correct": *reward >= best, "answer": truncate(&answer, 80).0, "trace": trace}));
        }
        let prompt = self.render("lesson", json!({"task": truncate(task, 600).0, "attempts": shown}));
        let sampling = Sampling { temperature: 0.0, max_new_tokens: 96, ..Sampling::default() };
        let reply = self.model.chat(&[Message::user(prompt)], &sampling).await?;
        let lesson = reply.text.trim().lines().take(3).collect::<Vec<_>>().join(" ");
        if lesson.is_empty() {
            return Ok(None);
        }
        let experience = autodidact_memory::NewExperience {
            text: format!("Task like: {} Lesson: {lesson}", truncate(task, 160).0),
            source_runs: attempts.iter().map(|(id, _)| id.clone()).collect(),
            score: best - worst,
        };
        memory.writer.add_experience(experience).await?.committed().await?;
        Ok(Some(lesson))
    }

    fn render(&self, template: &str, ctx: Value) -> String {
        self.prompts.get_template(template).and_then(|t| t.render(minijinja::value::Serde(&ctx))).unwrap_or_else(|e| format!("(prompt {template} failed: {e})"))
    }

    /// The messages of a run's first turn: the system prompt (with retrieved experience when
    /// the policy allows it) and the task. Trainers rebuild a rollout's prompt from this, so
    /// that what they train on is exactly what the agent was asked.
    pub async fn first_messages(&self, task: &TaskInput) -> Vec<Message> {
        self.first_messages_and_warnings(task).await.0
    }

    /// [`Agent::first_messages`], with the fallbacks taken to build them (retrieval that failed
    /// leaves the prompt without experience; the warning says so).
    pub async fn first_messages_and_warnings(&self, task: &TaskInput) -> (Vec<Message>, Vec<Warning>) {
        let tools: Vec<Value> = self.allowed_tools().map(|t| json!({"name": t.name(), "description": t.description()})).collect();
        let (experience, warnings) = self.experience(task).await;
        let system = self.render("system", json!({"context_desc": describe_context(&task.context), "tools": tools, "experience": experience, "examples": self.policy.prompt.examples}));
        (vec![Message::system(system), Message::user(self.render("task", json!({"task": task.prompt})))], warnings)
    }

    /// Condensed solved tasks and lessons similar to `task`, when the policy allows it: up to
    /// `k` tasks whose runs a verifier gave full marks (never the task itself), each with its
    /// verified answer, then up to `k` lessons.
    async fn experience(&self, task: &TaskInput) -> (Vec<String>, Vec<Warning>) {
        use autodidact_memory::{DocKind, SearchFilters};
        let (Some(memory), true) = (&self.memory, self.policy.experience.retrieve) else { return (Vec::new(), Vec::new()) };
        let mut warnings = Vec::new();
        let mut fell_back = |what: &str, e: autodidact_memory::Error| {
            warnings.push(Warning { source: "retrieval", message: format!("{what} failed, so the prompt goes without it: {e}") });
        };
        let k = self.policy.experience.k as usize;
        let tasks = SearchFilters { kinds: vec![DocKind::Task], ..Default::default() };
        // Most similar tasks are unsolved; look a little deeper than k for solved ones.
        let hits: Vec<_> = match memory.store.search(&task.prompt, &tasks, 4 * k).await {
            Ok(hits) => hits.into_iter().filter(|h| task.task_id.as_deref() != Some(h.id.as_str())).collect(),
            Err(e) => {
                fell_back("searching for similar solved tasks", e);
                Vec::new()
            }
        };
        let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        let solved = match memory.store.solved_answers(&ids).await {
            Ok(s) => s,
            Err(e) => {
                fell_back("reading the answers of similar tasks", e);
                Default::default()
            }
        };
        let mut out: Vec<String> = hits.iter().filter_map(|h| Some(format!("Solved: {} Answer: {}", truncate(&h.preview, 200).0, truncate(solved.get(&h.id)?, 80).0))).take(k).collect();
        let lessons = SearchFilters { kinds: vec![DocKind::Experience], ..Default::default() };
        match memory.store.search(&task.prompt, &lessons, k).await {
            Ok(hits) => out.extend(hits.into_iter().map(|h| truncate(&h.preview, 300).0)),
            Err(e) => fell_back("searching for lessons", e),
        }
        (out, warnings)
    }

    pub(crate) fn allowed_tools(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        let allow = &self.policy.tools.allow;
        self.tools.iter().filter(move |t| allow.iter().any(|a| a == "*" || a == t.name()))
    }

    fn over_budget(&self, tree: &Tree) -> Option<Stop> {
        if tree.tokens.load(Ordering::Relaxed) >= self.policy.budget.run_tokens {
            return Some(Stop::BudgetExceeded(format!("budget.run_tokens = {}", self.policy.budget.run_tokens)));
        }
        if Instant::now() >= tree.deadline {
            return Some(Stop::BudgetExceeded(format!("budget.wall_clock_ms = {}", self.policy.budget.wall_clock_ms)));
        }
        None
    }

    fn turn_sampling(&self) -> Sampling {
        let b = &self.policy.budget;
        Sampling {
            temperature: b.temperature,
            max_new_tokens: b.turn_tokens as usize,
            min_new_tokens: b.min_thinking_tokens as usize,
            continuations: b.continuations.clone(),
            stop_after_block: ANSWER_CALLS.iter().map(|s| (*s).to_owned()).collect(),
            ..Sampling::default()
        }
    }

    /// One model turn; a failure or a timeout ends the run with its reason.
    async fn turn(&self, messages: &mut [Message], depth: u32, tree: &Tree, log: &Option<RunLog>, tally: &mut Tally) -> std::result::Result<String, Stop> {
        self.turn_with_prefix(messages, None, depth, tree, log, tally).await
    }

    /// A turn whose reply starts with `prefix` (a trailing assistant message the model
    /// continues); the reply returned and logged includes the prefix.
    ///
    /// A conversation that no longer fits the model's context window (a cell printed more
    /// tokens than `budget.output_chars` suggests, say) has its REPL feedback shortened in
    /// place, longest message first, and the turn is asked again, up to three times; the run
    /// records a warning. What the window cannot hold even then ends the run as before.
    async fn turn_with_prefix(&self, messages: &mut [Message], prefix: Option<&str>, depth: u32, tree: &Tree, log: &Option<RunLog>, tally: &mut Tally) -> std::result::Result<String, Stop> {
        let mut attempt = 0;
        loop {
            match self.one_turn(messages, prefix, depth, tree, log, tally).await {
                Err(TurnError::Overflow { needed, n_ctx }) if attempt < 3 => {
                    attempt += 1;
                    let prompt = needed.saturating_sub(self.policy.budget.turn_tokens as usize);
                    let Some(cut) = shorten_feedback(messages, prompt, needed.saturating_sub(n_ctx as usize), attempt) else {
                        return Err(Stop::Error(format!("{needed} tokens do not fit the context window of {n_ctx}, and no REPL output is left to shorten")));
                    };
                    let why = format!("the conversation needed {needed} tokens of a {n_ctx}-token window: {cut} characters of REPL output were cut from its middle, and the turn asked again");
                    warn(log.as_ref().map(|l| &l.handle), &tally.warnings, "context", why).await;
                }
                Err(TurnError::Overflow { needed, n_ctx }) => return Err(Stop::Error(format!("{needed} tokens do not fit the context window of {n_ctx}"))),
                Err(TurnError::Stop(stop)) => return Err(stop),
                Ok(text) => return Ok(text),
            }
        }
    }

    async fn one_turn(&self, messages: &[Message], prefix: Option<&str>, depth: u32, tree: &Tree, log: &Option<RunLog>, tally: &mut Tally) -> std::result::Result<String, TurnError> {
        let started = Instant::now();
        let remaining = tree.deadline.saturating_duration_since(started);
        let prefilled: Vec<Message>;
        let asked = match prefix {
            Some(p) => {
                prefilled = messages.iter().cloned().chain([Message::assistant(p)]).collect();
                &prefilled[..]
            }
            None => messages,
        };
        let sampling = self.turn_sampling();
        let chat = tokio::time::timeout(remaining, self.model.chat(asked, &sampling));
        let reply = tokio::select! {
            r = chat => r,
            // Dropping the request ends its sequence in the engine (its reply channel closes).
            () = tree.cancel.cancelled() => {
                tally.model_time += started.elapsed();
                return Err(TurnError::Stop(Stop::Cancelled));
            }
        };
        tally.model_time += started.elapsed();
        let mut completion = match reply {
            Err(_) => return Err(TurnError::Stop(Stop::BudgetExceeded(format!("budget.wall_clock_ms = {}", self.policy.budget.wall_clock_ms)))),
            Ok(Err(Error::ContextOverflow { needed, n_ctx })) if needed > n_ctx as usize => return Err(TurnError::Overflow { needed, n_ctx }),
            Ok(Err(e)) => return Err(TurnError::Stop(Stop::Error(e.to_string()))),
            Ok(Ok(c)) => c,
        };
        if let Some(p) = prefix {
            completion.text = format!("{p}{}", completion.text);
        }
        tally.turns += 1;
        let used = (completion.usage.prompt_tokens + completion.usage.completion_tokens) as u64;
        tally.tokens += used;
        tally.prompt_tokens += completion.usage.prompt_tokens as u64;
        tally.completion_tokens += completion.usage.completion_tokens as u64;
        tree.tokens.fetch_add(used, Ordering::Relaxed);
        self.emit(Event::Turn { depth, turn: tally.turns, tokens: completion.usage.completion_tokens });
        if let Some(l) = log {
            let mut step = NewStep::new(StepKind::ModelTurn, messages.last().map(|m| m.content.clone()).unwrap_or_default(), completion.text.clone());
            step.prompt_tokens = completion.usage.prompt_tokens as u64;
            step.completion_tokens = completion.usage.completion_tokens as u64;
            step.latency_us = started.elapsed().as_micros() as u64;
            step.logprobs = (!completion.token_logprobs.is_empty()).then(|| completion.token_logprobs.clone());
            if let Err(e) = l.handle.step(step).await {
                warn(Some(&l.handle), &tally.warnings, "memory", format!("turn {} could not be logged: {e}", tally.turns)).await;
            }
        }
        Ok(completion.text)
    }

    /// Runs the blocks in order. `Ok(answer)` once the guest answered; otherwise the feedback.
    #[allow(clippy::too_many_arguments)]
    async fn run_cells(
        self: &Arc<Self>,
        session: &mut Session,
        blocks: &[String],
        task: &TaskInput,
        depth: u32,
        tree: &Arc<Tree>,
        log: &Option<RunLog>,
        tally: &mut Tally,
    ) -> Result<std::result::Result<String, String>> {
        let limit = self.policy.budget.output_chars;
        let mut cells = Vec::new();
        let mut restored: Vec<String> = Vec::new();
        for code in blocks {
            let started = Instant::now();
            let cell = exec_unless_cancelled(session, code, &tree.cancel).await?;
            tally.guest_time += started.elapsed();
            self.emit(Event::Cell { depth, status: cell.status.name() });
            let raw = if cell.stderr.is_empty() { cell.stdout.clone() } else { format!("{}{}", cell.stdout, cell.stderr) };
            let (output, cut) = truncate(raw.trim_end(), limit);
            if let Some(l) = log {
                let mut step = NewStep::new(StepKind::CodeCell, code.clone(), output.clone());
                step.stdout = cell.stdout.clone();
                step.stderr = cell.stderr.clone();
                step.error = match cell.trapped {
                    Some(Limit::Cancelled) => Some("cancelled".to_owned()),
                    _ => (cell.status != Status::Ok).then(|| cell.status.name().to_owned()),
                };
                step.latency_us = cell.duration.as_micros() as u64;
                if let Err(e) = l.handle.step(step).await {
                    warn(Some(&l.handle), &tally.warnings, "memory", format!("a code cell could not be logged: {e}")).await;
                }
            }
            cells.push(json!({"status": cell.status.name(), "output": output, "truncated": cut || cell.truncated}));
            if tree.cancel.is_cancelled() {
                // The run loop ends the run; no fresh REPL is started for it.
                return Ok(Err(String::new()));
            }
            if session.is_closed() {
                // `exit()` or a trap ended the REPL: start a fresh one and say so.
                *session = self.open_session(task, depth, tree, log, tally).await?;
                cells.push(json!({"status": "restarted", "output": "The REPL was restarted: your variables are gone, `context` is bound again.", "truncated": false}));
                break;
            }
            // The scaffold check is guest code too: its time counts as guest time.
            let started = Instant::now();
            let check = session.exec_async(CHECK).await?;
            tally.guest_time += started.elapsed();
            let state: Value = match serde_json::from_str(check.stdout.trim()) {
                Ok(v) => v,
                Err(e) => {
                    let why = format!("the answer check's output was unreadable ({e}; stderr: {}), so no answer was taken from this cell", truncate(check.stderr.trim(), 200).0);
                    warn(log.as_ref().map(|l| &l.handle), &tally.warnings, "scaffold", why).await;
                    Value::Null
                }
            };
            for name in state["restored"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                restored.push(name.to_owned());
            }
            if state["ready"] == json!(true) {
                return Ok(Ok(state["content"].as_str().unwrap_or_default().to_owned()));
            }
        }
        restored.dedup();
        Ok(Err(self.render("feedback", json!({"cells": cells, "restored": restored, "limit": limit}))))
    }

    /// A session with `context` and the scaffold bound, and this run's host tools.
    async fn open_session(self: &Arc<Self>, task: &TaskInput, depth: u32, tree: &Arc<Tree>, log: &Option<RunLog>, tally: &mut Tally) -> Result<Session> {
        let parent = log.as_ref().map(|l| (l.handle.clone(), l.task_id.clone()));
        let tools = subcalls::tool_set(self, depth, tree, parent, tally.subcalls.clone(), tally.warnings.clone());
        let mut session = self.sandbox.session(self.limits.clone(), tools)?;
        // Binding `context` and loading the scaffold run in the guest: guest time.
        let started = Instant::now();
        session.set_var_async("context", &task.context).await?;
        let cell = session.exec_async(PRELUDE).await?;
        tally.guest_time += started.elapsed();
        if cell.status != Status::Ok {
            return Err(Error::Prompt(format!("the REPL scaffold failed to load: {}", cell.stderr)));
        }
        Ok(session)
    }

    fn emit(&self, event: Event) {
        if let Some(p) = &self.progress {
            p(&event);
        }
    }

    async fn begin(&self, task: &TaskInput, parent_task: Option<String>) -> Result<Option<RunLog>> {
        let Some(m) = &self.memory else { return Ok(None) };
        let context_ref = match &task.context {
            Value::Null => None,
            Value::String(s) => Some(format!("inline string, {} chars", s.chars().count())),
            Value::Array(a) => Some(format!("inline list of {} strings", a.len())),
            other => Some(format!("inline {}", other)),
        };
        let new_task = NewTask {
            family: task.family.clone(),
            prompt: task.prompt.clone(),
            context_ref,
            answer_spec: task.answer_spec.clone(),
            split: task.split,
            parent_id: parent_task,
            difficulty: None,
            source: task.source.clone(),
        };
        let task_id = match &task.task_id {
            Some(id) => id.clone(),
            None => m.writer.add_task(new_task).await?.id,
        };
        let run = NewRun {
            task_id: task_id.clone(),
            agent: self.name.clone(),
            model_id: self.model.describe(),
            adapter_id: task.adapter_id.clone(),
            policy_hash: policy_hash(&self.policy),
        };
        let (handle, _ack) = m.writer.begin_run(run).await?;
        Ok(Some(RunLog { handle, task_id }))
    }

    async fn finish(&self, log: &Option<RunLog>, outcome: &RunOutcome, tally: &Tally) -> Result<()> {
        let Some(l) = log else { return Ok(()) };
        let status = match outcome.stop {
            Stop::Answered => RunStatus::Answered,
            Stop::MaxIterations | Stop::BudgetExceeded(_) => RunStatus::BudgetExhausted,
            Stop::Error(_) | Stop::Cancelled => RunStatus::Failed,
        };
        let reason = match &outcome.stop {
            Stop::BudgetExceeded(what) => format!("budget_exceeded: {what}"),
            Stop::Error(e) => format!("error: {e}"),
            other => other.name().to_owned(),
        };
        let end = RunEnd {
            status,
            end_reason: Some(reason),
            final_answer: outcome.answer.clone(),
            reward: outcome.reward,
            prompt_tokens: tally.prompt_tokens,
            completion_tokens: tally.completion_tokens,
        };
        l.handle.finish(end).await?.committed().await?;
        Ok(())
    }
}

/// What the model is told about `context`: its type, length and a short preview.
pub fn describe_context(context: &Value) -> String {
    match context {
        Value::Null => "None: this task has no context".into(),
        Value::String(s) => {
            let (preview, cut) = truncate(s, 200);
            format!("a str of {} characters, starting {:?}{}", s.chars().count(), preview, if cut { "..." } else { "" })
        }
        Value::Array(items) => {
            let total: usize = items.iter().map(|i| i.as_str().map_or(0, |s| s.chars().count())).sum();
            let first = items.first().and_then(Value::as_str).map(|s| truncate(s, 100).0).unwrap_or_default();
            format!("a list of {} strings, {} characters in all; the first starts {:?}", items.len(), total, first)
        }
        other => format!("a {} value", if other.is_object() { "dict" } else { "scalar" }),
    }
}

/// A short stable hash of a policy, recorded with each run.
pub fn policy_hash(policy: &Policy) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{policy:?}").hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Runs one cell, interrupting it as soon as `cancel` fires. The interrupted cell still
/// returns (trapped, with what it printed), so the run can log it.
async fn exec_unless_cancelled(session: &mut Session, code: &str, cancel: &Cancel) -> Result<Cell> {
    let canceller = session.canceller();
    if cancel.is_cancelled() {
        canceller.cancel();
    }
    let exec = session.exec_async(code);
    tokio::pin!(exec);
    let cell = tokio::select! {
        biased;
        cell = &mut exec => cell,
        () = cancel.cancelled() => {
            canceller.cancel();
            exec.await
        }
    };
    Ok(cell?)
}

/// Why a model turn gave no reply.
enum TurnError {
    /// The run ends.
    Stop(Stop),
    /// The prompt and the turn's tokens need more than the context window.
    Overflow { needed: usize, n_ctx: u32 },
}

/// Shortens the REPL feedback in `messages` (the user messages after the task) so that about
/// `over` of the prompt's `prompt_tokens` tokens go, cutting the middle of the longest message
/// first. Characters per token are estimated over the whole prompt, and the cut doubles with
/// each further `attempt` (REPL output of digits or symbols takes more tokens per character
/// than prose).
/// Returns the characters cut, or `None` when no feedback is long enough to cut.
fn shorten_feedback(messages: &mut [Message], prompt_tokens: usize, over: usize, attempt: u32) -> Option<usize> {
    const KEEP: usize = 400;
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    let per_token = chars as f64 / prompt_tokens.max(1) as f64;
    let mut to_cut = ((over + 64) as f64 * per_token * f64::from(1 << attempt.saturating_sub(1).min(4))).ceil() as usize;
    let mut cut = 0;
    while to_cut > 0 {
        let longest = messages.iter_mut().skip(2).filter(|m| m.role == Role::User).max_by_key(|m| m.content.chars().count())?;
        let len = longest.content.chars().count();
        let room = len.saturating_sub(2 * KEEP + 100);
        if room == 0 {
            return (cut > 0).then_some(cut);
        }
        let n = room.min(to_cut);
        let head = (len - n) / 2;
        let text: Vec<char> = longest.content.chars().collect();
        let kept_head: String = text[..head].iter().collect();
        let kept_tail: String = text[head + n..].iter().collect();
        longest.content = format!("{kept_head}\n[... {n} characters cut so the conversation fits the context window ...]\n{kept_tail}");
        cut += n;
        to_cut -= n;
    }
    Some(cut)
}
