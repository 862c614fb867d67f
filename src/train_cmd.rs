//! `autodidact train`: LoRA training on groups of attempts, offline from memory or online.
//!
//! **Offline** (the default): reads groups of train-split tasks not yet trained on from the
//! trajectory store, turns each into a [`TrainGroup`] and runs `--steps` batches of
//! `--groups-per-step` groups through the trainer (each batch is `training.num_iterations`
//! updates). A group's prompt is its task's prompt as one user message and a member's
//! completion is the run's model turns joined by newlines (`memory::completion_text`): the same
//! pairs the `trl-grpo` export hands external trainers. Token ids come from the llama.cpp
//! backend's tokenizer (`tokenize_chat`), the one rollouts were sampled with. A run's reward is
//! its verifier reward (none counts 0); a run that ran out of budget counts as truncated.
//!
//! **Online** (`--online --suite toy`): every step samples `--groups-per-step` toy tasks, draws
//! `training.num_generations` replies to each with the current adapter through the runtime's
//! model, rewards them with the toy verifier (`toy.rs`), takes one training batch on them (token
//! ids as llama.cpp sampled them), exports the adapter and hot-swaps it into the model
//! (`load_adapter`, `set_adapter`, `unload_adapter` of the previous one).
//!
//! Either way the adapter is exported as a GGUF LoRA, checked by loading it into llama.cpp,
//! and registered in memory as a `candidate`. Its metrics JSON holds the summary and the
//! learning curve (`curve`: one entry per update with loss, mean reward, gradient norm,
//! learning rate, tokens, ratio, clip fraction and KL), which is where plots read it from.
//! Offline, the groups used are then marked trained by that adapter. Groups of eval-split
//! tasks are never offered by the store, and the trainer refuses them if they were.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use autodidact_memory::{RunStatus, Split as MemSplit, Store, StoreOptions, completion_text};
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{AdapterId, LanguageModel, Message, Sampling};
use autodidact_trainer::{BaseModel, Completion, DType, Rng, Split, StepReport, TrainConfig, TrainGroup, Trainer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::toy;

/// Arguments of `autodidact train`.
#[derive(Args)]
pub struct TrainArgs {
    /// A policy TOML file whose `[training]` section sets the loss, LoRA and optimiser
    /// (default: the built-in preset).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Training batches to run (each is `training.num_iterations` updates). Offline, batches
    /// cycle over the untrained groups if there are fewer than steps × groups-per-step.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub steps: u64,
    /// Groups per training batch.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub groups_per_step: usize,
    /// The trajectory store (default: $AUTODIDACT_DB, or sqlite://$AUTODIDACT_HOME/memory.db).
    #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
    pub db: Option<String>,
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Where to write the adapter and its checkpoint (default:
    /// $AUTODIDACT_HOME/adapters/train-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the adapter's initialisation, the batch order and (online) the tasks and sampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Roll out with the current adapter, reward, train, export and hot-swap, every step.
    #[arg(long)]
    pub online: bool,
    /// The task family of online training (built in: `toy`).
    #[arg(long, default_value = "toy", value_name = "NAME")]
    pub suite: String,
    /// Online: the most tokens per sampled reply.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_tokens: usize,
    /// Online: sampling temperature of the rollouts.
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    pub temperature: f32,
    /// Print one JSON summary object (the learning curve included) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(train(args))
}

/// What every mode shares: the policy, the store, both engines and the output folder.
struct Session {
    store: Store,
    llama: LlamaCppModel,
    trainer: Trainer,
    out: PathBuf,
    curve: Vec<Value>,
    bar: ProgressBar,
}

async fn train(args: TrainArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.steps == 0 || args.groups_per_step == 0 {
        bail!("--steps and --groups-per-step must be at least 1");
    }
    if args.online && args.suite != "toy" {
        bail!("unknown suite {:?}; the built-in online suite is `toy`", args.suite);
    }
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let url = args.db.clone().unwrap_or_else(autodidact_memory::default_url);
    let mut opts = StoreOptions::new(url.clone());
    opts.index = false; // training reads groups and registers adapters; nothing it writes is searched
    let store = Store::open_with(opts).await?;
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let model_path = args.model.clone().unwrap_or_else(autodidact_runtime::model::smollm2_path);
    let out = args.out.clone().unwrap_or_else(|| {
        autodidact_memory::home_dir().join("adapters").join(format!("train-{}", autodidact_memory::now_ms()))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let llama = LlamaCppModel::load(LlamaCppConfig { path: model_path.clone(), threads: args.threads, ..LlamaCppConfig::default() }).await?;
    let base = BaseModel::load_gguf(&model_path, DType::F32)
        .with_context(|| format!("loading {} into the trainer", model_path.display()))?;
    let mut config = TrainConfig::from_policy(&policy.training);
    config.seed = args.seed;
    config.checkpoint = Some(out.join("checkpoint.gguf"));
    let trainer = Trainer::new(base, config)?;
    let bar = ProgressBar::new(args.steps);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps (eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("training");
    let mut s = Session { store, llama, trainer, out, curve: Vec::new(), bar };
    let started = Instant::now();
    let mode = if args.online { online(&mut s, &args, &policy).await? } else { offline(&mut s, &args).await? };
    s.bar.finish_and_clear();

    // Export, check that llama.cpp loads it, register it, and mark the groups trained.
    let adapter_path = s.out.join("adapter.gguf");
    s.trainer.export_adapter(&adapter_path)?;
    let updates: Vec<&Value> = s.curve.iter().filter(|p| p["skipped"].is_null()).collect();
    let first = s.curve.first().cloned().unwrap_or(Value::Null);
    let last = s.curve.last().cloned().unwrap_or(Value::Null);
    let mut metrics = json!({
        "mode": if args.online { "online" } else { "offline" },
        "suite": if args.online { Value::from(args.suite.clone()) } else { Value::Null },
        "base_model": model_path.display().to_string(),
        "loss_type": format!("{:?}", policy.training.loss_type).to_lowercase(),
        "lora_rank": policy.training.lora_rank,
        "lora_alpha": policy.training.lora_alpha,
        "learning_rate": policy.training.learning_rate,
        "seed": args.seed,
        "steps": args.steps,
        "updates": updates.len(),
        "skipped_updates": s.curve.len() - updates.len(),
        "first_loss": first["loss"],
        "final_loss": last["loss"],
        "first_mean_reward": first["mean_reward"],
        "final_mean_reward": last["mean_reward"],
        "seconds": started.elapsed().as_secs_f64(),
        "curve": s.curve,
    });
    if let Value::Object(extra) = mode.clone() {
        for (k, v) in extra {
            if k != "group_ids" {
                metrics[k] = v;
            }
        }
    }
    let (adapter_id, sha256) = crate::adapters::register_checked(&s.store, &s.llama, &adapter_path, None, metrics.clone()).await?;
    if let Some(ids) = mode["group_ids"].as_array() {
        let ids: Vec<String> = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        s.store.writer().mark_trained(&ids, Some(&adapter_id)).await?.committed().await?;
    }
    s.store.flush().await?;
    let summary = json!({
        "adapter_id": adapter_id,
        "status": "candidate",
        "adapter_path": adapter_path.display().to_string(),
        "checkpoint": s.out.join("checkpoint.gguf").display().to_string(),
        "sha256": sha256,
        "db": url,
        "metrics": metrics,
    });
    s.store.close().await?;
    if args.json {
        println!("{summary}");
    } else {
        let m = &summary["metrics"];
        println!("adapter    {} (candidate)", summary["adapter_id"].as_str().unwrap_or(""));
        println!("file       {}", summary["adapter_path"].as_str().unwrap_or(""));
        println!("updates    {} ({} skipped)", m["updates"], m["skipped_updates"]);
        println!("loss       {} -> {}", m["first_loss"], m["final_loss"]);
        println!("reward     {} -> {}", m["first_mean_reward"], m["final_mean_reward"]);
        println!("seconds    {:.1}", m["seconds"].as_f64().unwrap_or(0.0));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub(crate) fn point(r: &StepReport, extra: Value) -> Value {
    let mut p = json!({
        "step": r.step,
        "loss": r.loss,
        "mean_reward": r.mean_reward,
        "grad_norm": r.grad_norm,
        "lr": r.lr,
        "tokens": r.tokens,
        "groups_used": r.groups_used,
        "groups_dropped": r.groups_dropped,
        "mean_ratio": r.mean_ratio,
        "clip_fraction": r.clip_fraction,
        "mean_kl": r.mean_kl,
        "skipped": r.skipped,
        "penalty": r.penalty,
        "penalty_grad_norm": r.penalty_grad_norm,
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

/// Trains on untrained groups from memory; returns what to add to the metrics, and the ids of
/// the groups used under `group_ids`.
async fn offline(s: &mut Session, args: &TrainArgs) -> anyhow::Result<Value> {
    let limit = args.steps.saturating_mul(args.groups_per_step as u64);
    let groups = s.store.untrained_groups(limit).await?;
    if groups.is_empty() {
        bail!("no untrained groups of train-split tasks in {}; record some with `autodidact run` or `ladder` first", s.store.url());
    }
    let mut batch_groups = Vec::with_capacity(groups.len());
    let mut ids = Vec::with_capacity(groups.len());
    for g in &groups {
        let split = match g.task.spec.split {
            MemSplit::Train => Split::Train,
            MemSplit::Eval => Split::Eval,
        };
        let messages = [Message::user(g.task.spec.prompt.clone())];
        let mut prompt_tokens = Vec::new();
        let mut completions = Vec::with_capacity(g.runs.len());
        for r in &g.runs {
            let text = completion_text(&s.store.steps(&r.id).await?);
            let (p, c) = s.llama.tokenize_chat(&messages, &text).await?;
            prompt_tokens = p;
            completions.push(Completion {
                tokens: c,
                reward: r.reward.unwrap_or(0.0),
                truncated: r.status == RunStatus::BudgetExhausted,
            });
        }
        if prompt_tokens.is_empty() {
            let (p, _) = s.llama.tokenize_chat(&messages, "").await?;
            prompt_tokens = p;
        }
        batch_groups.push(TrainGroup { task: g.task.id.clone(), split, prompt_tokens, completions });
        ids.push(g.id.clone());
    }
    let batches: Vec<&[TrainGroup]> = batch_groups.chunks(args.groups_per_step).collect();
    for step in 0..args.steps {
        let batch = batches[step as usize % batches.len()];
        for r in s.trainer.train_batch(batch)? {
            s.curve.push(point(&r, json!({"batch": step + 1})));
            s.bar.set_message(format!("loss {:.4} reward {:.3}", r.loss, r.mean_reward));
        }
        s.bar.inc(1);
    }
    Ok(json!({"groups_trained": ids.len(), "group_ids": ids}))
}

/// Rollouts through the runtime's model with the current adapter, rewards, a training batch,
/// export and hot-swap, `--steps` times.
async fn online(s: &mut Session, args: &TrainArgs, policy: &Policy) -> anyhow::Result<Value> {
    let n = policy.training.num_generations;
    let mut rng = Rng::new(args.seed ^ 0x746f79);
    let mut active: Option<AdapterId> = None;
    let mut rollout_s = 0.0;
    let mut train_s = 0.0;
    let mut rewards_per_step = Vec::new();
    for step in 0..args.steps {
        let t0 = Instant::now();
        let mut groups = Vec::with_capacity(args.groups_per_step);
        let mut rewards = Vec::new();
        let mut correct = 0usize;
        let mut sample = String::new();
        for g in 0..args.groups_per_step {
            let task = toy::task(&mut rng);
            let messages = [Message::system(toy::SYSTEM), Message::user(task.prompt.clone())];
            let sampling = Sampling {
                seed: Some(args.seed.wrapping_mul(1_000_003).wrapping_add(step * 1000 + g as u64)),
                ..Sampling::seeded(args.temperature, 0, args.max_tokens)
            };
            let replies = s.llama.chat_group(&messages, n, &sampling).await?;
            let (prompt_tokens, _) = s.llama.tokenize_chat(&messages, "").await?;
            if g == 0 {
                sample = format!("{} => {}", task.prompt, replies.first().map(|c| c.text.chars().take(160).collect::<String>()).unwrap_or_default());
            }
            let completions = replies
                .iter()
                .map(|c| {
                    let reward = toy::reward(&task, &c.text);
                    rewards.push(reward);
                    correct += usize::from(reward == 1.0);
                    Completion {
                        tokens: c.tokens.clone(),
                        reward,
                        truncated: c.finish_reason == autodidact_runtime::model::FinishReason::Length,
                    }
                })
                .collect();
            groups.push(TrainGroup { task: task.prompt.clone(), split: Split::Train, prompt_tokens, completions });
        }
        let t1 = Instant::now();
        let mean_reward = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        let accuracy = correct as f64 / rewards.len().max(1) as f64;
        rewards_per_step.push(mean_reward);
        for r in s.trainer.train_batch(&groups)? {
            s.curve.push(point(&r, json!({"batch": step + 1, "accuracy": accuracy, "sample": sample})));
        }
        let t2 = Instant::now();
        // Export and hot-swap: the next rollouts use the updated adapter.
        let path = s.out.join("adapter-latest.gguf");
        s.trainer.export_adapter(&path)?;
        let id = s.llama.load_adapter(&path).await.context("llama.cpp refused the exported adapter")?;
        s.llama.set_adapter(Some((id, 1.0))).await?;
        if let Some(old) = active.replace(id) {
            s.llama.unload_adapter(old).await?;
        }
        rollout_s += (t1 - t0).as_secs_f64();
        train_s += (t2 - t1).as_secs_f64();
        s.bar.set_message(format!("reward {mean_reward:.3} accuracy {accuracy:.2}"));
        s.bar.inc(1);
    }
    if let Some(old) = active.take() {
        s.llama.unload_adapter(old).await?;
    }
    Ok(json!({
        "num_generations": n,
        "groups_per_step": args.groups_per_step,
        "rollout_seconds": rollout_s,
        "train_seconds": train_s,
        "mean_reward_per_step": rewards_per_step,
    }))
}

/// A trainer whose forward applies `past` (the promoted adapter, frozen) under the new update,
/// with the policy's consolidation penalty against it.
pub(crate) fn trainer_with_past(base: BaseModel, config: TrainConfig, past: Option<autodidact_trainer::LoraAdapter>) -> anyhow::Result<Trainer> {
    Ok(match past {
        None => Trainer::new(base, config)?,
        Some(p) => Trainer::with_past(base, config, &p)?,
    })
}

/// Writes the adapter that applies `past` and the trainer's update together to `path`: one
/// merged adapter (exact below `training.merged_rank_cap`, truncated by SVD above it).
pub(crate) fn merge_adapters(past: Option<&autodidact_trainer::LoraAdapter>, trainer: &Trainer, path: &std::path::Path, policy: &Policy) -> anyhow::Result<()> {
    match past {
        None => Ok(trainer.export_adapter(path)?),
        Some(p) => {
            let merged = autodidact_trainer::LoraAdapter::merge(p, &trainer.adapter, policy.training.merged_rank_cap)?;
            Ok(merged.export_gguf(path, &trainer.model.config.architecture)?)
        }
    }
}
