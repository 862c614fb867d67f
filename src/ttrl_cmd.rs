//! `autodidact ttrl`: test-time RL on one hard task. LADDER grows verified variants of it, a
//! temporary LoRA adapter is trained on groups of attempts at the variants (never on the task
//! itself), the task is attempted after every step, and the adapter is thrown away at the end:
//! the base model and the promoted adapter are untouched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use autodidact_evals::ladder::{LadderOptions, run_ladder};
use autodidact_evals::{Item, Suite, Verifier, VerifierKind};
use autodidact_memory::{Split as MemSplit, Store, default_url};
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{AdapterId, FinishReason, LanguageModel, Message, Sampling, smollm2_path};
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::{Sandbox, SandboxConfig};
use autodidact_trainer::{BaseModel, Completion, DType, Split, TrainConfig, TrainGroup, Trainer};
use clap::Args;
use serde_json::{Value, json};

/// `autodidact ttrl` arguments.
#[derive(Args)]
#[command(after_help = "The task must be in memory with its answer and verifier (tasks that \
    `autodidact eval` ran are). Attempts and rollouts are plain replies that end with a line \
    `ANSWER: ...`; the text after it is verified. Supported families: those LADDER can rewrite \
    (integrals, arith, toy).")]
pub struct TtrlArgs {
    /// The task's id in memory.
    #[arg(long, value_name = "ID")]
    task: String,
    /// Training steps (each one batch of groups over the variants).
    #[arg(long, default_value_t = 4, value_name = "N")]
    steps: u64,
    /// LADDER depth of the variant tree.
    #[arg(long, default_value_t = 1, value_name = "D")]
    depth: u32,
    /// Variants asked for per prompt.
    #[arg(long, default_value_t = 4, value_name = "V")]
    variants: u32,
    /// Variants per training step.
    #[arg(long, default_value_t = 2, value_name = "N")]
    groups_per_step: usize,
    /// A policy TOML file whose `[training]` section sets the loss and LoRA (default preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Tokens per reply.
    #[arg(long, default_value_t = 96, value_name = "N")]
    max_tokens: usize,
    /// Seeds hints, sampling and the adapter's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object: task, variants, steps, attempts, solved.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TtrlArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

/// The suite item a stored task was made from (its answer spec holds the verifier).
pub(crate) fn item_of(task: &autodidact_memory::Task) -> Result<Item> {
    let spec = &task.spec.answer_spec;
    let Some(verifier) = spec["verifier"].as_str().and_then(VerifierKind::parse) else {
        bail!("task {} has no verifier in its answer spec; TTRL needs a task from a suite", task.id);
    };
    Ok(Item {
        id: spec["item_id"].as_str().unwrap_or(&task.id).to_owned(),
        family: task.spec.family.clone(),
        prompt: task.spec.prompt.clone(),
        context: None,
        answer: spec["answer"].as_str().unwrap_or_default().to_owned(),
        verifier,
        check: spec["check"].as_str().map(str::to_owned),
        split: task.spec.split,
        parent_id: None,
        hint: None,
    })
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

async fn run_async(args: TtrlArgs) -> Result<ExitCode> {
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let store = Store::open(&default_url()).await?;
    let task = store.task(&args.task).await.with_context(|| format!("no task {} in {}", args.task, store.url()))?;
    let target = item_of(&task)?;
    if task.spec.split == MemSplit::Train {
        eprintln!("note: task {} is a train task; TTRL is meant for held-out eval tasks", task.id);
    }
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let path = smollm2_path();
    let llama = Arc::new(LlamaCppModel::load(LlamaCppConfig { path: path.clone(), threads: args.threads, ..LlamaCppConfig::default() }).await?);
    let model: Arc<dyn LanguageModel> = llama.clone();

    // 1. The variant tree (grown only; groups are drawn below with the adapter in training).
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), Policy::preset_eval())?);
    let seeds = Suite { name: "ttrl".into(), items: vec![target.clone()] };
    let lopts = LadderOptions {
        depth: args.depth,
        variants: args.variants,
        group: 0,
        concurrency: 1,
        sandbox: sandbox.clone(),
        writer: None,
        adapter_id: None,
        seed: args.seed,
        max_tokens: 48 * args.variants.max(1) as usize,
        on_event: None,
    };
    let tree = run_ladder(agent, model.clone(), &seeds, &lopts).await?;
    if tree.seeds == 0 {
        bail!("LADDER cannot rewrite a `{}` task; TTRL supports integrals, arith and toy", target.family);
    }
    let variants: Vec<(Item, Verifier)> = tree.nodes.iter().map(|n| (n.item.clone(), Verifier::new(&n.item, Some(sandbox.clone())))).collect();
    let goal = Verifier::new(&target, Some(sandbox.clone()));
    let attempt = |step: u64| {
        let (llama, goal, target) = (llama.clone(), goal.clone(), target.clone());
        async move {
            let reply = llama.chat(&ask(&target.prompt), &Sampling::greedy(args.max_tokens)).await?;
            let answer = answer_of(&reply.text);
            let solved = goal.passes(&answer).await;
            anyhow::Ok(json!({"step": step, "answer": answer, "solved": solved}))
        }
    };
    let mut attempts = vec![attempt(0).await?];
    if variants.is_empty() {
        eprintln!("note: the model wrote no verified variant; nothing to train on");
    }

    // 2. A temporary adapter, trained on the variants only, attempting the task after each step.
    let temp = tempfile::tempdir()?;
    let mut config = TrainConfig::from_policy(&policy.training);
    config.seed = args.seed;
    let mut trainer = Trainer::new(BaseModel::load_gguf(&path, DType::F32)?, config)?;
    let n = policy.training.num_generations;
    let mut active: Option<AdapterId> = None;
    let mut curve = Vec::new();
    let bar = indicatif::ProgressBar::new(if variants.is_empty() { 0 } else { args.steps });
    bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps").expect("valid template"));
    for step in 1..=if variants.is_empty() { 0 } else { args.steps } {
        let mut groups = Vec::new();
        let mut rewards = Vec::new();
        for g in 0..args.groups_per_step.min(variants.len()) {
            let (item, verifier) = &variants[((step as usize - 1) * args.groups_per_step + g) % variants.len()];
            let messages = ask(&item.prompt);
            let sampling = Sampling { seed: Some(args.seed.wrapping_add(step * 1000 + g as u64)), ..Sampling::seeded(0.8, 0, args.max_tokens) };
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
        let id = llama.load_adapter(&file).await.context("llama.cpp refused the temporary adapter")?;
        llama.set_adapter(Some((id, 1.0))).await?;
        if let Some(old) = active.replace(id) {
            llama.unload_adapter(old).await?;
        }
        let a = attempt(step).await?;
        bar.set_message(format!("variant reward {mean:.2}, task {}", if a["solved"] == json!(true) { "solved" } else { "not solved" }));
        attempts.push(a);
        bar.inc(1);
    }
    bar.finish_and_clear();

    // 3. Roll back: the temporary adapter is unloaded and deleted.
    llama.set_adapter(None).await?;
    if let Some(old) = active.take() {
        llama.unload_adapter(old).await?;
    }
    drop(temp);
    let solved = attempts.iter().any(|a| a["solved"] == json!(true));
    let report = json!({
        "task": task.id,
        "variants": variants.iter().map(|(i, _)| Value::from(core(i))).collect::<Vec<_>>(),
        "steps": curve.len(),
        "attempts": attempts,
        "solved": solved,
        "curve": curve,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("task {}: {} verified variants, {} training updates", task.id, variants.len(), curve.len());
        for a in report["attempts"].as_array().into_iter().flatten() {
            println!("  after step {}: {} ({})", a["step"], if a["solved"] == json!(true) { "solved" } else { "not solved" }, a["answer"].as_str().unwrap_or_default());
        }
        println!("solved during TTRL: {solved}; the temporary adapter was discarded");
    }
    Ok(ExitCode::SUCCESS)
}

fn core(item: &Item) -> String {
    autodidact_evals::builtin::core_expression(item).unwrap_or_else(|| item.prompt.clone())
}
