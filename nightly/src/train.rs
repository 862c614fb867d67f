//! LoRA training sessions on the trajectory store: offline from memory or online on a family.
//!
//! **Offline** (the default): reads groups of train-split tasks not yet trained on from the
//! trajectory store, turns each into a [`TrainGroup`] and runs `steps` batches of
//! `groups_per_step` groups through the trainer (each batch is `training.num_iterations`
//! updates). A group's prompt is its task's prompt as one user message and a member's
//! completion is the run's model turns joined by newlines (`memory::completion_text`): the same
//! pairs the `trl-grpo` export hands external trainers. Token ids come from the llama.cpp
//! backend's tokenizer (`tokenize_chat`), the one rollouts were sampled with. A run's reward is
//! its verifier reward (none counts 0); a run that ran out of budget counts as truncated.
//!
//! **Online** ([`OnlineOptions`], family `toy`): every step samples `groups_per_step` toy
//! tasks, draws `training.num_generations` replies to each with the current adapter through the
//! runtime's model, rewards them with the toy verifier (`evals::toy`), takes one training batch
//! on them (token ids as llama.cpp sampled them), exports the adapter and hot-swaps it into the
//! model (`load_adapter`, `set_adapter`, `unload_adapter` of the previous one).
//!
//! Either way the adapter is exported as a GGUF LoRA, checked by loading it into llama.cpp,
//! and registered in memory as a `candidate`. Its metrics JSON holds the summary and the
//! learning curve (`curve`: one entry per update with loss, mean reward, gradient norm,
//! learning rate, tokens, ratio, clip fraction and KL), which is where plots read it from.
//! Offline, the groups used are then marked trained by that adapter. Groups of eval-split
//! tasks are never offered by the store, and the trainer refuses them if they were.

use std::path::{Path, PathBuf};
use std::time::Instant;

use autodidact_evals::toy;
use autodidact_memory::{RunStatus, Split as MemSplit, Store, completion_text};
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{AdapterId, FinishReason, LanguageModel, Message, Sampling};
use autodidact_evals::builtin::Rng;
use autodidact_trainer::{BaseModel, Completion, DType, LoraAdapter, Split, StepReport, TrainConfig, TrainGroup, Trainer};
use serde_json::{Value, json};

use crate::error::{Context, Error, Result, io};

/// What a training session does.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The `[training]` section sets the loss, LoRA and optimiser.
    pub policy: Policy,
    /// Training batches to run (each is `training.num_iterations` updates). Offline, batches
    /// cycle over the untrained groups if there are fewer than steps × groups-per-step.
    pub steps: u64,
    /// Groups per training batch.
    pub groups_per_step: usize,
    /// The base GGUF.
    pub model_path: PathBuf,
    /// Where the adapter and its checkpoint go.
    pub out: PathBuf,
    /// Seed of the adapter's initialisation, the batch order and (online) tasks and sampling.
    pub seed: u64,
    /// Threads for llama.cpp (`None`: all cores).
    pub threads: Option<usize>,
    /// The store's URL, as reported in the summary.
    pub db_url: String,
    /// Online training instead of groups from memory.
    pub online: Option<OnlineOptions>,
}

impl TrainOptions {
    /// Refuses sizes of zero and unknown online families, before anything is opened.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 || self.groups_per_step == 0 {
            return Err(Error::Invalid("--steps and --groups-per-step must be at least 1".into()));
        }
        if let Some(o) = &self.online
            && o.suite != "toy"
        {
            return Err(Error::Invalid(format!("unknown suite {:?}; the built-in online suite is `toy`", o.suite)));
        }
        Ok(())
    }
}

/// Online training: rollouts, rewards, a step, export and hot swap, every step.
#[derive(Debug, Clone)]
pub struct OnlineOptions {
    /// The task family (built in: `toy`).
    pub suite: String,
    /// The most tokens per sampled reply.
    pub max_tokens: usize,
    /// Sampling temperature of the rollouts.
    pub temperature: f32,
}

/// What a session reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainProgress {
    /// A one-line status (loss and reward of the last update).
    Message(String),
    /// One of the `steps` batches is done.
    StepDone,
}

/// Everything a session shares: the store, both engines and the output folder.
struct Session<'a> {
    store: &'a Store,
    llama: LlamaCppModel,
    trainer: Trainer,
    out: PathBuf,
    curve: Vec<Value>,
}

/// Runs a training session and registers its adapter. Returns the summary `autodidact train
/// --json` prints: the adapter's id, status, file, checkpoint, SHA-256, store and metrics.
pub async fn train(store: &Store, options: &TrainOptions, progress: &mut dyn FnMut(TrainProgress)) -> Result<Value> {
    options.check()?;
    let policy = &options.policy;
    let out = options.out.clone();
    std::fs::create_dir_all(&out).map_err(io("creating", &out))?;
    let llama = LlamaCppModel::load(LlamaCppConfig { path: options.model_path.clone(), threads: options.threads, ..LlamaCppConfig::default() }).await?;
    let base = BaseModel::load_gguf(&options.model_path, DType::F32)
        .context_with(|| format!("loading {} into the trainer", options.model_path.display()))?;
    let mut config = TrainConfig::from_policy(&policy.training);
    config.seed = options.seed;
    config.checkpoint = Some(out.join("checkpoint.gguf"));
    let trainer = Trainer::new(base, config)?;
    progress(TrainProgress::Message("training".into()));
    let mut s = Session { store, llama, trainer, out, curve: Vec::new() };
    let started = Instant::now();
    let mode = match &options.online {
        Some(o) => online(&mut s, options, o, progress).await?,
        None => offline(&mut s, options, progress).await?,
    };

    // Export, check that llama.cpp loads it, register it, and mark the groups trained.
    let adapter_path = s.out.join("adapter.gguf");
    s.trainer.export_adapter(&adapter_path)?;
    let updates = s.curve.iter().filter(|p| p["skipped"].is_null()).count();
    let first = s.curve.first().cloned().unwrap_or(Value::Null);
    let last = s.curve.last().cloned().unwrap_or(Value::Null);
    let mut metrics = json!({
        "mode": if options.online.is_some() { "online" } else { "offline" },
        "suite": options.online.as_ref().map_or(Value::Null, |o| Value::from(o.suite.clone())),
        "base_model": options.model_path.display().to_string(),
        "loss_type": format!("{:?}", policy.training.loss_type).to_lowercase(),
        "lora_rank": policy.training.lora_rank,
        "lora_alpha": policy.training.lora_alpha,
        "learning_rate": policy.training.learning_rate,
        "seed": options.seed,
        "steps": options.steps,
        "updates": updates,
        "skipped_updates": s.curve.len() - updates,
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
    let (adapter_id, sha256) = crate::adapters::register_checked(s.store, &s.llama, &adapter_path, None, metrics.clone()).await?;
    if let Some(ids) = mode["group_ids"].as_array() {
        let ids: Vec<String> = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        s.store.writer().mark_trained(&ids, Some(&adapter_id)).await?.committed().await?;
    }
    s.store.flush().await?;
    Ok(json!({
        "adapter_id": adapter_id,
        "status": "candidate",
        "adapter_path": adapter_path.display().to_string(),
        "checkpoint": s.out.join("checkpoint.gguf").display().to_string(),
        "sha256": sha256,
        "db": options.db_url,
        "metrics": metrics,
    }))
}

/// One point of a learning curve: the step report's figures, with `extra` added.
pub fn curve_point(r: &StepReport, extra: Value) -> Value {
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
async fn offline(s: &mut Session<'_>, options: &TrainOptions, progress: &mut dyn FnMut(TrainProgress)) -> Result<Value> {
    let limit = options.steps.saturating_mul(options.groups_per_step as u64);
    let groups = s.store.untrained_groups(limit).await?;
    if groups.is_empty() {
        return Err(Error::Invalid(format!(
            "no untrained groups of train-split tasks in {}; record some with `autodidact run` or `ladder` first",
            s.store.url()
        )));
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
            completions.push(Completion { tokens: c, reward: r.reward.unwrap_or(0.0), truncated: r.status == RunStatus::BudgetExhausted });
        }
        if prompt_tokens.is_empty() {
            let (p, _) = s.llama.tokenize_chat(&messages, "").await?;
            prompt_tokens = p;
        }
        batch_groups.push(TrainGroup { task: g.task.id.clone(), split, prompt_tokens, completions });
        ids.push(g.id.clone());
    }
    let batches: Vec<&[TrainGroup]> = batch_groups.chunks(options.groups_per_step).collect();
    for step in 0..options.steps {
        let batch = batches[step as usize % batches.len()];
        for r in s.trainer.train_batch(batch)? {
            s.curve.push(curve_point(&r, json!({"batch": step + 1})));
            progress(TrainProgress::Message(format!("loss {:.4} reward {:.3}", r.loss, r.mean_reward)));
        }
        progress(TrainProgress::StepDone);
    }
    Ok(json!({"groups_trained": ids.len(), "group_ids": ids}))
}

/// Rollouts through the runtime's model with the current adapter, rewards, a training batch,
/// export and hot-swap, `steps` times.
async fn online(s: &mut Session<'_>, options: &TrainOptions, o: &OnlineOptions, progress: &mut dyn FnMut(TrainProgress)) -> Result<Value> {
    let n = options.policy.training.num_generations;
    // The same splitmix64 stream the trainer's `Rng` gives, so the tasks are as before.
    let mut rng = Rng::new(options.seed ^ 0x746f79);
    let mut active: Option<AdapterId> = None;
    let mut rollout_s = 0.0;
    let mut train_s = 0.0;
    let mut rewards_per_step = Vec::new();
    for step in 0..options.steps {
        let t0 = Instant::now();
        let mut groups = Vec::with_capacity(options.groups_per_step);
        let mut rewards = Vec::new();
        let mut correct = 0usize;
        let mut sample = String::new();
        for g in 0..options.groups_per_step {
            let task = toy::task(&mut rng);
            let messages = [Message::system(toy::SYSTEM), Message::user(task.prompt.clone())];
            let sampling = Sampling {
                seed: Some(options.seed.wrapping_mul(1_000_003).wrapping_add(step * 1000 + g as u64)),
                ..Sampling::seeded(o.temperature, 0, o.max_tokens)
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
                    Completion { tokens: c.tokens.clone(), reward, truncated: c.finish_reason == FinishReason::Length }
                })
                .collect();
            groups.push(TrainGroup { task: task.prompt.clone(), split: Split::Train, prompt_tokens, completions });
        }
        let t1 = Instant::now();
        let mean_reward = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
        let accuracy = correct as f64 / rewards.len().max(1) as f64;
        rewards_per_step.push(mean_reward);
        for r in s.trainer.train_batch(&groups)? {
            s.curve.push(curve_point(&r, json!({"batch": step + 1, "accuracy": accuracy, "sample": sample})));
        }
        let t2 = Instant::now();
        // Export and hot-swap: the next rollouts use the updated adapter.
        let path = s.out.join("adapter-latest.gguf");
        s.trainer.export_adapter(&path)?;
        let id = s.llama.load_adapter(&path).await.context_with(|| "llama.cpp refused the exported adapter".into())?;
        s.llama.set_adapter(Some((id, 1.0))).await?;
        if let Some(old) = active.replace(id) {
            s.llama.unload_adapter(old).await?;
        }
        rollout_s += (t1 - t0).as_secs_f64();
        train_s += (t2 - t1).as_secs_f64();
        progress(TrainProgress::Message(format!("reward {mean_reward:.3} accuracy {accuracy:.2}")));
        progress(TrainProgress::StepDone);
    }
    if let Some(old) = active.take() {
        s.llama.unload_adapter(old).await?;
    }
    Ok(json!({
        "num_generations": n,
        "groups_per_step": options.groups_per_step,
        "rollout_seconds": rollout_s,
        "train_seconds": train_s,
        "mean_reward_per_step": rewards_per_step,
    }))
}

/// A trainer whose forward applies `past` (the promoted adapter, frozen) under the new update,
/// with the policy's consolidation penalty against it.
pub fn trainer_with_past(base: BaseModel, config: TrainConfig, past: Option<LoraAdapter>) -> Result<Trainer> {
    Ok(match past {
        None => Trainer::new(base, config)?,
        Some(p) => Trainer::with_past(base, config, &p)?,
    })
}

/// Writes the adapter that applies `past` and the trainer's update together to `path`: one
/// merged adapter (exact below `training.merged_rank_cap`, truncated by SVD above it).
pub fn merge_adapters(past: Option<&LoraAdapter>, trainer: &Trainer, path: &Path, policy: &Policy) -> Result<()> {
    match past {
        None => Ok(trainer.export_adapter(path)?),
        Some(p) => {
            let merged = LoraAdapter::merge(p, &trainer.adapter, policy.training.merged_rank_cap)?;
            Ok(merged.export_gguf(path, &trainer.model.config.architecture)?)
        }
    }
}
