//! The RLM loop on the scripted model: answers, nudges, the iteration cap and its final
//! request, scaffold restores, recursion to depth 3, batched sub-calls, every budget, tools
//! that are refused or raise, huge output, and a REPL that exits. Deterministic: the model's
//! replies are fixed, the sandbox and the store are real.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use autodidact_memory::{StepKind, Store};
use autodidact_policies::Policy;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::model::{Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage};
use autodidact_runtime::rlm::{Agent, MemoryLog, RunOutcome, Stop, TaskInput};
use autodidact_runtime::tools::{Tool, ToolError};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

fn replies(rs: &[&str]) -> Arc<dyn LanguageModel> {
    Arc::new(ScriptedModel::from_text(&rs.join("\n---\n"), "test"))
}

fn policy(edit: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy::preset_default();
    edit(&mut p);
    p
}

async fn store() -> Arc<Store> {
    let dir = std::env::temp_dir().join(format!("autodidact-rlm-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap())
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u64 * 1000 + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

async fn run_with(model: Arc<dyn LanguageModel>, policy: Policy, tools: Vec<Arc<dyn Tool>>, task: TaskInput) -> (RunOutcome, Arc<Store>) {
    let store = store().await;
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let agent = Agent::new(model, sandbox, policy).unwrap().with_tools(tools).with_memory(MemoryLog { writer: store.writer(), store: store.clone() });
    let outcome = Arc::new(agent).run(task).await.unwrap();
    store.flush().await.unwrap();
    (outcome, store)
}

async fn run(rs: &[&str], policy: Policy) -> (RunOutcome, Arc<Store>) {
    run_with(replies(rs), policy, Vec::new(), TaskInput::new("the task", json!("some context"))).await
}

/// The model-turn steps' inputs: what the model was told before each turn.
async fn told(store: &Store, outcome: &RunOutcome) -> Vec<String> {
    let steps = store.steps(outcome.run_id.as_deref().unwrap()).await.unwrap();
    steps.into_iter().filter(|s| s.data.kind == StepKind::ModelTurn).map(|s| s.data.input).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_final_call_answers_and_everything_is_logged() {
    let (o, store) = run(&["Let me compute.\n```repl\nx = 6 * 7\nprint(x)\nFINAL(x)\n```"], Policy::preset_default()).await;
    assert_eq!(o.stop, Stop::Answered);
    assert_eq!(o.answer.as_deref(), Some("42"));
    assert_eq!(o.turns, 1);
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    let kinds: Vec<StepKind> = steps.iter().map(|s| s.data.kind).collect();
    assert_eq!(kinds, vec![StepKind::ModelTurn, StepKind::CodeCell]);
    assert_eq!(steps[1].data.stdout, "42\n");
    let run = store.run(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(run.final_answer.as_deref(), Some("42"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_ends_after_the_block_that_answers() {
    // What a trained adapter writes: the answer block, then the same block again to the cap.
    let block = "```repl\nFINAL(6 * 7)\n```\n\n";
    let (o, store) = run(&[&format!("Here.\n{}", block.repeat(5))], Policy::preset_default()).await;
    assert_eq!((o.stop.clone(), o.answer.as_deref()), (Stop::Answered, Some("42")));
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(steps[0].data.output, "Here.\n```repl\nFINAL(6 * 7)\n```", "the reply ends at the answer block's fence");
    // Blocks before the answering one still run, in order; one that only looks like an answer
    // (FINAL outside a block) does not end the turn.
    let reply = "FINAL( is how I answer.\n```repl\nx = 41\n```\n```repl\nanswer['ready'] = x > 40\nanswer['content'] = str(x + 1)\n```\n```repl\nFINAL('too late')\n```";
    let (o, store) = run(&[reply], Policy::preset_default()).await;
    assert_eq!(o.answer.as_deref(), Some("42"));
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    assert!(steps[0].data.output.ends_with("answer['content'] = str(x + 1)\n```"), "{}", steps[0].data.output);
    assert_eq!(steps.iter().filter(|s| s.data.kind == StepKind::CodeCell).count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_without_code_get_a_nudge() {
    let (o, store) = run(&["I think the answer is 5.", "", "```repl\nFINAL('five')\n```"], Policy::preset_default()).await;
    assert_eq!(o.stop, Stop::Answered);
    assert_eq!(o.answer.as_deref(), Some("five"));
    assert_eq!(o.turns, 3);
    let told = told(&store, &o).await;
    assert!(told[1].contains("```repl block"), "{}", told[1]);
    assert!(told[2].contains("```repl block"), "{}", told[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_code_is_fed_back_not_an_error() {
    let (o, store) = run(&["```repl\ndef broken(:\n```", "```python\n1/0\n```", "```repl\nFINAL('recovered')"], Policy::preset_default()).await;
    assert_eq!(o.answer.as_deref(), Some("recovered"));
    let told = told(&store, &o).await;
    assert!(told[1].contains("SyntaxError"), "{}", told[1]);
    assert!(told[2].contains("ZeroDivisionError"), "{}", told[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_iteration_cap_asks_once_for_a_final_answer() {
    let p = policy(|p| p.recursion.max_iterations = 2);
    let (o, store) = run(&["```repl\n1\n```", "```repl\n2\n```", "```repl\nFINAL('at last')\n```"], p.clone()).await;
    assert_eq!((o.stop.clone(), o.answer.as_deref(), o.turns), (Stop::Answered, Some("at last"), 3));
    assert!(told(&store, &o).await[2].contains("run out of turns"));
    let (o, _) = run(&["```repl\n1\n```", "```repl\n2\n```", "no"], p).await;
    assert_eq!(o.stop, Stop::MaxIterations);
    assert_eq!(o.answer, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn overwritten_scaffold_is_restored_and_the_model_told() {
    let (o, store) = run(
        &["```repl\ncontext = 'clobbered'\nllm_query = None\nFINAL = print\nanswer = 5\n```", "```repl\nFINAL(len(context))\n```"],
        Policy::preset_default(),
    )
    .await;
    assert_eq!(o.answer.as_deref(), Some("12"), "context was restored to 'some context'");
    let told = told(&store, &o).await;
    assert!(told[1].contains("overwrote") && told[1].contains("context") && told[1].contains("llm_query"), "{}", told[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_answer_dict_may_be_assigned_directly() {
    let (o, _) = run(&["```repl\nanswer = {'content': 'direct', 'ready': True}\n```"], Policy::preset_default()).await;
    assert_eq!((o.stop, o.answer.as_deref()), (Stop::Answered, Some("direct")));
}

#[tokio::test(flavor = "multi_thread")]
async fn recursion_reaches_depth_three_then_falls_back_to_llm_query() {
    let p = policy(|p| p.recursion.max_depth = 3);
    let (o, store) = run(
        &[
            "```repl\nr = rlm_query('level one', context='abc')\nFINAL('root got ' + r)\n```",
            "```repl\nFINAL(rlm_query('level two ' + context))\n```",
            "```repl\nFINAL(rlm_query('level three'))\n```",
            "```repl\nFINAL(rlm_query('leaf'))\n```",
            "plain leaf answer",
        ],
        p,
    )
    .await;
    assert_eq!(o.answer.as_deref(), Some("root got plain leaf answer"));
    assert_eq!(o.subcalls, 1);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.runs, 4, "root plus three child agents");
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_sub_calls_all_return() {
    let (o, store) = run(&["```repl\nr = llm_query_batched(['a', 'b', 'c'])\nFINAL('|'.join(sorted(r)))\n```", "x", "y", "z"], Policy::preset_default()).await;
    assert_eq!(o.answer.as_deref(), Some("x|y|z"));
    assert_eq!(o.subcalls, 3);
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(steps.iter().filter(|s| s.data.kind == StepKind::Subcall).count(), 3);
}

/// A model that answers after a delay and records how many calls overlapped.
struct SlowModel {
    now: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl LanguageModel for SlowModel {
    fn describe(&self) -> String {
        "slow".into()
    }
    fn backend_name(&self) -> &'static str {
        "scripted"
    }
    async fn chat_group(&self, _: &[Message], n: usize, _: &Sampling) -> autodidact_runtime::Result<Vec<Completion>> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        let c = Completion { text: "ok".into(), tokens: vec![], token_logprobs: vec![], finish_reason: FinishReason::Stop, usage: Usage::default(), timings: Timings::default() };
        Ok(vec![c; n])
    }
}

/// The scripted replies behind a context window of `n_ctx` tokens, counted as four characters
/// each, as the engine refuses a prompt that does not fit.
struct SmallWindow {
    inner: ScriptedModel,
    n_ctx: u32,
}

#[async_trait]
impl LanguageModel for SmallWindow {
    fn describe(&self) -> String {
        "small window".into()
    }
    fn backend_name(&self) -> &'static str {
        "scripted"
    }
    async fn chat_group(&self, messages: &[Message], n: usize, sampling: &Sampling) -> autodidact_runtime::Result<Vec<Completion>> {
        let needed = messages.iter().map(|m| m.content.chars().count()).sum::<usize>().div_ceil(4) + sampling.max_new_tokens;
        if needed > self.n_ctx as usize {
            return Err(autodidact_runtime::Error::ContextOverflow { needed, n_ctx: self.n_ctx });
        }
        self.inner.chat_group(messages, n, sampling).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repl_output_too_long_for_the_window_is_shortened_and_the_run_goes_on() {
    let p = policy(|p| p.budget.output_chars = 40_000);
    let model = |rs: &[&str]| -> Arc<dyn LanguageModel> { Arc::new(SmallWindow { inner: ScriptedModel::from_text(&rs.join("\n---\n"), "test"), n_ctx: 4096 }) };
    // 30,000 characters of output (7,500 tokens here) cannot follow into a 4,096-token window.
    let rs = ["```repl\nprint('7' * 30000)\n```", "```repl\nFINAL('fits')\n```"];
    let (o, store) = run_with(model(&rs), p.clone(), Vec::new(), TaskInput::new("the task", json!("some context"))).await;
    assert_eq!((o.stop.clone(), o.answer.as_deref()), (Stop::Answered, Some("fits")));
    let told = told(&store, &o).await;
    assert!(told[1].contains("characters cut so the conversation fits"), "{}", &told[1][..300]);
    assert!(told[1].len() < 4 * 4096, "{} characters were still sent", told[1].len());
    assert!(o.warnings.iter().any(|w| w.source == "context" && w.message.contains("4096-token window")), "{:?}", o.warnings);
    // A task that alone overflows the window leaves nothing to shorten: the run ends, clearly.
    let huge = "x".repeat(20_000);
    let (o, _) = run_with(model(&rs), p, Vec::new(), TaskInput::new(&huge, json!("some context"))).await;
    match o.stop {
        Stop::Error(e) => assert!(e.contains("no REPL output is left to shorten"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_calls_run_concurrently_up_to_the_cap() {
    let slow = Arc::new(SlowModel { now: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
    let p = policy(|p| p.recursion.max_concurrent_subcalls = 3);
    let store = store().await;
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let agent = Agent::new(replies(&["```repl\nr = llm_query_batched([str(i) for i in range(8)])\nFINAL(len(r))\n```"]), sandbox, p)
        .unwrap()
        .with_sub_model(slow.clone())
        .with_memory(MemoryLog { writer: store.writer(), store: store.clone() });
    let o = Arc::new(agent).run(TaskInput::new("t", Value::Null)).await.unwrap();
    assert_eq!(o.answer.as_deref(), Some("8"));
    assert_eq!(slow.peak.load(Ordering::SeqCst), 3, "at most max_concurrent_subcalls at once, and that many");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sub_call_budget_covers_the_tree() {
    let p = policy(|p| p.recursion.max_subcalls = 2);
    let code = "```repl\nout = []\nfor i in range(3):\n    try:\n        out.append(llm_query('q'))\n    except Exception as e:\n        out.append(type(e).__name__)\nFINAL(','.join(out))\n```";
    let (o, _) = run(&[code, "a", "b"], p).await;
    assert_eq!(o.answer.as_deref(), Some("a,b,ToolBudgetExceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_token_budget_stops_the_run() {
    let p = policy(|p| p.budget.run_tokens = 50);
    let (o, store) = run(&["```repl\nx = 1\n```", "```repl\nx = 2\n```", "```repl\nFINAL(x)\n```"], p).await;
    assert_eq!(o.stop, Stop::BudgetExceeded("budget.run_tokens = 50".into()));
    let run = store.run(o.run_id.as_deref().unwrap()).await.unwrap();
    assert!(run.end_reason.unwrap().contains("budget.run_tokens"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_turn_token_budget_cuts_a_reply() {
    let p = policy(|p| p.budget.turn_tokens = 5);
    let long = format!("```repl\nFINAL('{}')\n```", "y".repeat(100));
    let (o, store) = run(&[&long, "```repl\nFINAL(1)"], p).await;
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(steps[0].data.output.chars().count(), 20, "5 tokens of 4 characters");
    assert_eq!(o.answer.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wall_clock_budget_stops_the_run() {
    let p = policy(|p| p.budget.wall_clock_ms = 300);
    let (o, _) = run(&["```repl\nimport time\ntime.sleep(0.4)\n```", "```repl\nFINAL(1)\n```"], p).await;
    assert_eq!(o.stop, Stop::BudgetExceeded("budget.wall_clock_ms = 300".into()));
}

struct Secret;
struct Raises;

#[async_trait]
impl Tool for Secret {
    fn name(&self) -> &str {
        "secret"
    }
    fn description(&self) -> &str {
        "Returns a secret."
    }
    fn schema(&self) -> Value {
        json!({"type": "object"})
    }
    async fn call(&self, _: Value) -> Result<Value, ToolError> {
        Ok(json!("leaked"))
    }
}

#[async_trait]
impl Tool for Raises {
    fn name(&self) -> &str {
        "flaky"
    }
    fn description(&self) -> &str {
        "Always fails."
    }
    fn schema(&self) -> Value {
        json!({"type": "object"})
    }
    async fn call(&self, _: Value) -> Result<Value, ToolError> {
        Err(ToolError::Failed("the disk is on fire".into()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_outside_the_allow_list_is_refused_and_a_raising_tool_is_data() {
    let p = policy(|p| p.tools.allow = vec!["flaky".into()]);
    let code = "```repl\nout = []\nfor f in (tools.secret, tools.flaky):\n    try:\n        out.append(f())\n    except Exception as e:\n        out.append(f'{type(e).__name__}: {e}')\nFINAL(' / '.join(out))\n```";
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(Secret), Arc::new(Raises)];
    let (o, store) = run_with(replies(&[code]), p, tools, TaskInput::new("t", Value::Null)).await;
    let a = o.answer.unwrap();
    assert!(a.contains("ToolDenied") && a.contains("allow list"), "{a}");
    assert!(a.contains("ToolError: the disk is on fire"), "{a}");
    assert!(!a.contains("leaked"));
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    let calls: Vec<_> = steps.iter().filter(|s| s.data.kind == StepKind::ToolCall).collect();
    assert_eq!(calls.len(), 1, "the refused call never ran; the failing one is logged");
    assert_eq!(calls[0].data.error.as_deref(), Some("the disk is on fire"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_print_is_cut_and_marked() {
    let p = policy(|p| p.budget.output_chars = 1000);
    let (o, store) = run(&["```repl\nprint('x' * 100000)\n```", "```repl\nFINAL('done')\n```"], p).await;
    assert_eq!(o.answer.as_deref(), Some("done"));
    let told = told(&store, &o).await;
    assert!(told[1].contains("[output truncated to 1000 characters]"), "{}", &told[1][told[1].len().saturating_sub(200)..]);
    assert!(told[1].len() < 1300);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_restarts_the_repl_and_the_model_is_told() {
    let (o, store) = run(&["```repl\nkeep = 1\nexit()\n```", "```repl\nFINAL(context + ' ' + str('keep' in globals()))\n```"], Policy::preset_default()).await;
    assert_eq!(o.answer.as_deref(), Some("some context False"));
    assert!(told(&store, &o).await[1].contains("The REPL was restarted"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_context_is_bound_and_described() {
    let ctx = json!(["alpha", "beta", "gamma"]);
    let (o, _) = run_with(replies(&["```repl\nFINAL(context[1] + str(len(context)))\n```"]), Policy::preset_default(), Vec::new(), TaskInput::new("t", ctx)).await;
    assert_eq!(o.answer.as_deref(), Some("beta3"));
}

/// A verifier's verdict, fixed.
struct Fixed(f64);

#[async_trait::async_trait]
impl autodidact_runtime::rlm::Reward for Fixed {
    async fn reward(&self, _answer: Option<&str>) -> f64 {
        self.0
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn experience_brings_verified_solved_tasks_and_lessons_but_not_unverified_ones() {
    let store = store().await;
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let memory = || MemoryLog { writer: store.writer(), store: store.clone() };
    for (prompt, reward, answer) in [("Add 2 and 3 in the REPL.", 1.0, "5"), ("Add 9 and 9 in the REPL.", 0.0, "17")] {
        let agent = Agent::new(replies(&[&format!("```repl\nFINAL({answer})\n```")]), sandbox.clone(), Policy::preset_default()).unwrap().with_memory(memory());
        let task = TaskInput { reward: Some(Arc::new(Fixed(reward))), ..TaskInput::new(prompt, Value::Null) };
        assert_eq!(Arc::new(agent).run(task).await.unwrap().stop, Stop::Answered);
    }
    // A lesson, as write_lesson stores them.
    let lesson = autodidact_memory::NewExperience { text: "Task like: Add two numbers. Lesson: compute the sum in code, then FINAL it.".into(), source_runs: vec![], score: 1.0 };
    store.writer().add_experience(lesson).await.unwrap().committed().await.unwrap();
    store.flush().await.unwrap();

    let agent = Agent::new(replies(&[]), sandbox.clone(), Policy::preset_default()).unwrap().with_memory(memory());
    let system = agent.first_messages(&TaskInput::new("Add 4 and 3 in the REPL.", Value::Null)).await[0].content.clone();
    assert!(system.contains("Solved: Add 2 and 3 in the REPL. Answer: 5"), "{system}");
    assert!(!system.contains("Add 9 and 9"), "a run its verifier failed is not a solved task: {system}");
    assert!(system.contains("Lesson: compute the sum in code"), "{system}");

    // Off in the policy (as in evals): nothing retrieved.
    let off = policy(|p| p.experience.retrieve = false);
    let agent = Agent::new(replies(&[]), sandbox, off).unwrap().with_memory(memory());
    let system = agent.first_messages(&TaskInput::new("Add 4 and 3 in the REPL.", Value::Null)).await[0].content.clone();
    assert!(!system.contains("Solved:") && !system.contains("Lesson:"), "{system}");
}

#[tokio::test]
async fn the_worked_examples_are_in_the_prompt_unless_the_policy_turns_them_off() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let task = TaskInput::new("What is 2 + 2?", Value::Null);
    let with = Agent::new(replies(&[]), sandbox.clone(), Policy::preset_default()).unwrap().first_messages(&task).await[0].content.clone();
    assert!(with.contains("Example 1.") && with.contains("Example 2."), "{with}");
    // The search example answers with the match, not a literal a model could copy.
    assert!(with.contains("FINAL(m.group(1))") && !with.contains("FINAL(\""), "{with}");
    let zero_shot = policy(|p| p.prompt.examples = false);
    let without = Agent::new(replies(&[]), sandbox, zero_shot).unwrap().first_messages(&task).await[0].content.clone();
    assert!(!without.contains("Example") && !without.contains("17 * 23"), "{without}");
    assert!(without.contains("```repl") && without.ends_with("call FINAL(answer)."), "{without}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_needle_in_a_1mb_haystack_is_found_by_code() {
    let code = "```repl\nimport re\nm = re.search(r'magic number for Greta is (\\d+)', context)\nprint(len(context), m.start())\nFINAL(m.group(1))\n```";
    let task = TaskInput::new("What is the magic number for Greta?", json!(common::haystack("Greta", 4817263)));
    let (o, store) = run_with(replies(&[code]), Policy::preset_default(), Vec::new(), task).await;
    assert_eq!(o.stop, Stop::Answered);
    assert_eq!(o.answer.as_deref(), Some("4817263"));
    let steps = store.steps(o.run_id.as_deref().unwrap()).await.unwrap();
    let first = &steps[0].data;
    // The model was shown the context's size and a preview, never the megabyte itself.
    assert!(first.prompt_tokens < 2_000, "prompt of {} tokens", first.prompt_tokens);
    assert!(steps[1].data.stdout.starts_with("10000"), "{}", steps[1].data.stdout);
}
