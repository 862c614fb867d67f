//! Test-time RL on one hard task. LADDER grows verified variants of it, a temporary LoRA
//! adapter is trained on groups of attempts at the variants (never on the task itself), the
//! task is attempted after every step, and the adapter is thrown away at the end: the base
//! model and the promoted adapter are untouched.
//!
//! Attempts and rollouts are plain replies that end with a line `ANSWER: ...`; the text after
//! it is verified. Supported families: those LADDER can rewrite (integrals, arith, toy).

use std::path::PathBuf;
use std::sync::Arc;

use autodidact_evals::ladder::{LadderOptions, run_ladder};
use autodidact_evals::{Item, Suite, Verifier};
use autodidact_memory::{Split as MemSplit, Store};
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{AdapterId, FinishReason, LanguageModel, Message, Sampling};
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::{Sandbox, SandboxConfig};
use autodidact_trainer::{BaseModel, Completion, DType, Split, TrainConfig, TrainGroup, Trainer};
use serde_json::{Value, json};

use crate::error::{Context, Error, Result, io};

/// What a TTRL run does.
#[derive(Debug, Clone)]
pub struct TtrlOptions {
    /// The task's id in memory (it needs its answer and verifier, as suite tasks have).
    pub task: String,
    /// Training steps (each one batch of groups over the variants).
    pub steps: u64,
    /// LADDER depth of the variant tree.
    pub depth: u32,
    /// Variants asked for per prompt.
    pub variants: u32,
    /// Variants per training step.
    pub groups_per_step: usize,
    /// The `[training]` section sets the loss and LoRA.
    pub policy: Policy,
    /// The base GGUF.
    pub model_path: PathBuf,
    /// Threads for llama.cpp (`None`: all cores).
    pub threads: Option<usize>,
    /// Tokens per reply.
    pub max_tokens: usize,
    /// Seeds hints, sampling and the adapter's initialisation.
    pub seed: u64,
}

/// What a TTRL run reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TtrlProgress {
    /// Something the user should know (a train task, no variant to train on).
    Note(String),
    /// Training starts: this many steps.
    Steps(u64),
    /// One step is done, with a one-line status.
    StepDone(String),
}

/// The suite item a stored task was made from (its answer spec holds the verifier).
pub fn item_of(task: &autodidact_memory::Task) -> Result<Item> {
    Item::from_task(task).ok_or_else(|| Error::Invalid(format!("task {} has no verifier in its answer spec; TTRL needs a task from a suite", task.id)))
}

fn ask(prompt: &str) -> [Message; 1] {
    [Message::user(format!("{prompt}\nThink briefly, then end your reply with one line `ANSWER: <your answer>`."))]
}

/// The text after the last `ANSWER:`, else the last non-empty line.
fn answer_of(reply: &str) -> String {
    match reply.rfind("ANSWER:") {
        Some(i) => reply[i + 7..].lines().next().unwrap_or_default().trim().to_owned(),
        None => reply.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned(),
    }
}

/// Runs TTRL on the task and rolls back. Returns what `autodidact ttrl --json` prints: task,
/// variants, steps, attempts (after each step), solved, curve.
pub async fn ttrl(store: &Store, options: &TtrlOptions, progress: &mut dyn FnMut(TtrlProgress)) -> Result<Value> {
    let policy = &options.policy;
    let task = store.task(&options.task).await.context_with(|| format!("no task {} in {}", options.task, store.url()))?;
    let target = item_of(&task)?;
    if task.spec.split == MemSplit::Train {
        progress(TtrlProgress::Note(format!("task {} is a train task; TTRL is meant for held-out eval tasks", task.id)));
    }
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let path = options.model_path.clone();
    let llama = Arc::new(LlamaCppModel::load(LlamaCppConfig { path: path.clone(), threads: options.threads, ..LlamaCppConfig::default() }).await?);
    let model: Arc<dyn LanguageModel> = llama.clone();

    // 1. The variant tree (grown only; groups are drawn below with the adapter in training).
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), Policy::preset_eval())?);
    let seeds = Suite { name: "ttrl".into(), items: vec![target.clone()] };
    let lopts = LadderOptions {
        depth: options.depth,
        variants: options.variants,
        group: 0,
        concurrency: 1,
        sandbox: sandbox.clone(),
        writer: None,
        adapter_id: None,
        seed: options.seed,
        max_tokens: 48 * options.variants.max(1) as usize,
        on_event: None,
    };
    let tree = run_ladder(agent, model.clone(), &seeds, &lopts).await?;
    if tree.seeds == 0 {
        return Err(Error::Invalid(format!("LADDER cannot rewrite a `{}` task; TTRL supports integrals, arith and toy", target.family)));
    }
    let variants: Vec<(Item, Verifier)> = tree.nodes.iter().map(|n| (n.item.clone(), Verifier::new(&n.item, Some(sandbox.clone())))).collect();
    let goal = Verifier::new(&target, Some(sandbox.clone()));
    let attempt = |step: u64| {
        let (llama, goal, target) = (llama.clone(), goal.clone(), target.clone());
        async move {
            let reply = llama.chat(&ask(&target.prompt), &Sampling::greedy(options.max_tokens)).await?;
            let answer = answer_of(&reply.text);
            let solved = goal.passes(&answer).await;
            Ok::<_, Error>(json!({"step": step, "answer": answer, "solved": solved}))
        }
    };
    let mut attempts = vec![attempt(0).await?];
    if variants.is_empty() {
        progress(TtrlProgress::Note("the model wrote no verified variant; nothing to train on".into()));
    }

    // 2. A temporary adapter, trained on the variants only, attempting the task after each step.
    let temp = tempfile::tempdir().map_err(io("creating a temporary folder in", std::env::temp_dir()))?;
    let mut config = TrainConfig::from_policy(&policy.training);
    config.seed = options.seed;
    let mut trainer = Trainer::new(BaseModel::load_gguf(&path, DType::F32)?, config)?;
    let n = policy.training.num_generations;
    let mut active: Option<AdapterId> = None;
    let mut curve = Vec::new();
    let steps = if variants.is_empty() { 0 } else { options.steps };
    progress(TtrlProgress::Steps(steps));
    for step in 1..=steps {
        let mut groups = Vec::new();
        let mut rewards = Vec::new();
        for g in 0..options.groups_per_step.min(variants.len()) {
            let (item, verifier) = &variants[((step as usize - 1) * options.groups_per_step + g) % variants.len()];
            let messages = ask(&item.prompt);
            let sampling = Sampling { seed: Some(options.seed.wrapping_add(step * 1000 + g as u64)), ..Sampling::seeded(0.8, 0, options.max_tokens) };
            let replies = llama.chat_group(&messages, n, &sampling).await?;
            let (prompt_tokens, _) = llama.tokenize_chat(&messages, "").await?;
            let mut completions = Vec::new();
            for c in &replies {
                let reward = if verifier.passes(&answer_of(&c.text)).await { 1.0 } else { 0.0 };
                rewards.push(reward);
                completions.push(Completion { tokens: c.tokens.clone(), reward, truncated: c.finish_reason == FinishReason::Length });
            }
            groups.push(TrainGroup { task: item.id.clone(), split: Split::Train, prompt_tokens, completions });
        }
        let mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        for r in trainer.train_batch(&groups)? {
            curve.push(json!({"step": step, "loss": r.loss, "mean_reward": r.mean_reward, "skipped": r.skipped}));
        }
        let file = temp.path().join("adapter.gguf");
        trainer.export_adapter(&file)?;
        let id = llama.load_adapter(&file).await.context_with(|| "llama.cpp refused the temporary adapter".into())?;
        llama.set_adapter(Some((id, 1.0))).await?;
        if let Some(old) = active.replace(id) {
            llama.unload_adapter(old).await?;
        }
        let a = attempt(step).await?;
        progress(TtrlProgress::StepDone(format!("variant reward {mean:.2}, task {}", if a["solved"] == json!(true) { "solved" } else { "not solved" })));
        attempts.push(a);
    }

    // 3. Roll back: the temporary adapter is unloaded and deleted.
    llama.set_adapter(None).await?;
    if let Some(old) = active.take() {
        llama.unload_adapter(old).await?;
    }
    drop(temp);
    let solved = attempts.iter().any(|a| a["solved"] == json!(true));
    Ok(json!({
        "task": task.id,
        "variants": variants.iter().map(|(i, _)| Value::from(core(i))).collect::<Vec<_>>(),
        "steps": curve.len(),
        "attempts": attempts,
        "solved": solved,
        "curve": curve,
    }))
}

fn core(item: &Item) -> String {
    autodidact_evals::builtin::core_expression(item).unwrap_or_else(|| item.prompt.clone())
}
