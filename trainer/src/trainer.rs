//! The training step: groups in, one LoRA update out, state checkpointed.
//!
//! [`Trainer::step`] takes [`TrainGroup`]s (a prompt's token ids and its sampled completions with
//! rewards), refuses any from the eval split, computes advantages, splits the sequences into
//! micro-batches (by default within each prompt's group, whose prompt then runs once per
//! micro-batch: [`TrainConfig::share_prompts`]), accumulates the gradient of the loss over
//! them, and applies one AdamW update unless the loss or the gradient is not finite, in which
//! case the update is skipped and recorded. [`Trainer::train_batch`] runs `num_iterations` such
//! updates on one batch with `logp_old` fixed before the first. The whole mutable state —
//! adapter, AdamW moments, step and RNG — is in [`Trainer`]'s public fields and round-trips
//! through [`Trainer::save_checkpoint`] and [`Trainer::resume`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::consolidation::{penalty, Consolidation, ConsolidationKind};
use crate::error::{Error, Result};
use crate::lora::{open_gguf, write_gguf_atomically, LoraAdapter, LoraConfig, Target};
use crate::loss::{advantages, keep_group, token_weights, weighted_loss, LossConfig, LossType, TokenTerms};
use crate::model::BaseModel;
use crate::ops::to_f64_vec;
use crate::optim::{clip_global_norm, AdamWConfig, AdamWState};
use crate::rng::Rng;

/// Which split a task belongs to. Only `Train` groups may be trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out evaluation data: the trainer refuses it.
    Eval,
}

/// One sampled completion and its reward.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Token ids, as the llama.cpp backend produced them.
    pub tokens: Vec<u32>,
    /// The verifier's reward.
    pub reward: f64,
    /// Whether generation hit its length limit before finishing.
    pub truncated: bool,
}

/// A prompt and the group of completions sampled for it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainGroup {
    /// The task's identifier (for errors and records).
    pub task: String,
    /// Its split; `Eval` is refused.
    pub split: Split,
    /// The prompt's token ids (chat template applied).
    pub prompt_tokens: Vec<u32>,
    /// The group's completions.
    pub completions: Vec<Completion>,
}

/// Everything that shapes training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Adapter shape.
    pub lora: LoraConfig,
    /// Loss settings (TRL names).
    pub loss: LossConfig,
    /// Optimiser settings.
    pub optim: AdamWConfig,
    /// Sequences per forward/backward pass; gradients are accumulated across micro-batches.
    pub micro_batch: usize,
    /// Seed of the trainer's RNG (adapter initialisation, sequence order).
    pub seed: u64,
    /// If set, the state is checkpointed here after every update.
    pub checkpoint: Option<PathBuf>,
    /// Run each prompt once for the completions that share it ([`BaseModel::group_logprobs`]):
    /// sequences are grouped by prompt after the shuffle and a micro-batch holds up to
    /// `micro_batch` completions of one prompt. The loss and gradient equal the per-row
    /// forward's up to float rounding (`bnpo`, defined per micro-batch, sees the different
    /// partition). `false` is the per-row forward with micro-batches across prompts.
    pub share_prompts: bool,
    /// The penalty against the model's frozen past adapter (no effect without one).
    pub consolidation: Consolidation,
    /// The largest rank of the merged adapter that carries every promoted update
    /// ([`LoraAdapter::merge`]'s `rank_cap`; the trainer itself does not read it).
    pub merged_rank_cap: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lora: LoraConfig::default(),
            loss: LossConfig::default(),
            optim: AdamWConfig::default(),
            micro_batch: 2,
            seed: 0,
            checkpoint: None,
            share_prompts: true,
            consolidation: Consolidation::default(),
            merged_rank_cap: 32,
        }
    }
}

impl TrainConfig {
    /// The settings of a policy's `[training]` section (everything but the seed and the
    /// checkpoint path, which the caller chooses).
    pub fn from_policy(p: &autodidact_policies::TrainingPolicy) -> Self {
        use autodidact_policies::{Consolidation as C, LoraTarget as P, LossType as L, ScaleRewards as S};
        let loss_type = match p.loss_type {
            L::Grpo => LossType::Grpo,
            L::Bnpo => LossType::Bnpo,
            L::DrGrpo => LossType::DrGrpo,
            L::Dapo => LossType::Dapo,
            L::Sft => LossType::Sft,
        };
        let scale_rewards = match p.scale_rewards {
            S::Group => crate::loss::ScaleRewards::Group,
            S::Batch => crate::loss::ScaleRewards::Batch,
            S::None => crate::loss::ScaleRewards::None,
        };
        let targets = p
            .lora_targets
            .iter()
            .map(|t| match t {
                P::Q => Target::Q,
                P::K => Target::K,
                P::V => Target::V,
                P::O => Target::O,
                P::Gate => Target::Gate,
                P::Up => Target::Up,
                P::Down => Target::Down,
            })
            .collect();
        TrainConfig {
            lora: LoraConfig { rank: p.lora_rank, alpha: p.lora_alpha as f32, targets },
            loss: LossConfig {
                loss_type,
                beta: p.beta,
                epsilon: p.epsilon,
                epsilon_high: p.epsilon_high,
                scale_rewards,
                num_iterations: p.num_iterations,
                max_completion_length: p.max_completion_length,
                mask_truncated_completions: p.mask_truncated_completions,
                dynamic_sampling: p.dynamic_sampling,
                ..LossConfig::default()
            },
            optim: AdamWConfig {
                lr: p.learning_rate,
                warmup_steps: p.warmup_steps,
                max_grad_norm: p.max_grad_norm,
                weight_decay: p.weight_decay,
                ..AdamWConfig::default()
            },
            micro_batch: p.micro_batch,
            consolidation: Consolidation {
                kind: match p.consolidation {
                    C::Ella => ConsolidationKind::Ella,
                    C::Olora => ConsolidationKind::OLora,
                    C::None => ConsolidationKind::None,
                },
                lambda: p.consolidation_lambda,
            },
            merged_rank_cap: p.merged_rank_cap,
            ..TrainConfig::default()
        }
    }
}

/// What one update did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The step number after this update (1-based count of steps taken).
    pub step: u64,
    /// The loss: the sum of the micro-batch policy losses plus [`StepReport::penalty`].
    pub loss: f64,
    /// The consolidation penalty against the frozen past adapter (0 without one).
    pub penalty: f64,
    /// The norm of the penalty's gradient alone (before clipping).
    pub penalty_grad_norm: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// `Some(reason)` if the update was skipped.
    pub skipped: Option<String>,
    /// Groups trained on.
    pub groups_used: usize,
    /// Groups dropped by dynamic sampling (or, for `sft`, with no successful completion).
    pub groups_dropped: usize,
    /// Loss tokens.
    pub tokens: usize,
    /// Mean reward of the groups offered.
    pub mean_reward: f64,
    /// Loss diagnostics (token-weighted across micro-batches).
    pub mean_ratio: f64,
    /// Fraction of clipped tokens.
    pub clip_fraction: f64,
    /// Mean k3 KL to the base.
    pub mean_kl: f64,
}

/// One sequence prepared for the loss.
#[derive(Debug, Clone)]
struct Item {
    prompt: Vec<u32>,
    completion: Vec<u32>,
    advantage: f64,
    masked: bool,
}

/// A trainer: the frozen base, the adapter and the optimiser state.
#[derive(Debug)]
pub struct Trainer {
    /// The frozen base model.
    pub model: BaseModel,
    /// The trainable adapter.
    pub adapter: LoraAdapter,
    /// AdamW's moments.
    pub opt: AdamWState,
    /// Steps taken (updates and skipped updates).
    pub step: u64,
    /// The RNG, whose state is checkpointed.
    pub rng: Rng,
    /// Steps whose update was skipped because of a NaN or Inf.
    pub skipped_steps: Vec<u64>,
    /// Settings.
    pub config: TrainConfig,
}

impl Trainer {
    /// A trainer with a fresh adapter.
    pub fn new(model: BaseModel, config: TrainConfig) -> Result<Self> {
        if config.micro_batch == 0 {
            return Err(Error::InvalidInput("micro_batch must be at least 1".into()));
        }
        let mut rng = Rng::new(config.seed);
        let c = model.config.clone();
        let adapter = LoraAdapter::init(config.lora.clone(), c.n_layer, |t| c.shape_of(t), model.dtype(), &mut rng)?;
        let sizes: Vec<usize> = adapter.named_vars().iter().map(|(_, v)| v.elem_count()).collect();
        Ok(Trainer { model, adapter, opt: AdamWState::new(&sizes), step: 0, rng, skipped_steps: Vec::new(), config })
    }

    /// A trainer with a fresh adapter on top of a frozen `past` adapter (the merge of every
    /// promoted update): `past` is applied in every forward, policy and KL reference alike, and
    /// the consolidation penalty ([`TrainConfig::consolidation`]) is taken against it. It gets no
    /// gradient, is not an optimiser parameter and is not checkpointed; a resume needs the same
    /// past set on its model ([`BaseModel::set_past`]).
    pub fn with_past(mut model: BaseModel, config: TrainConfig, past: &LoraAdapter) -> Result<Self> {
        model.set_past(Some(past))?;
        Trainer::new(model, config)
    }

    /// Turns groups into sequences with advantages; refuses eval-split groups.
    fn prepare(&self, groups: &[TrainGroup]) -> Result<(Vec<Item>, usize, usize, f64)> {
        let cfg = &self.config.loss;
        for g in groups {
            if g.split == Split::Eval {
                return Err(Error::EvalSplitRefused { task: g.task.clone() });
            }
            if g.prompt_tokens.is_empty() || g.completions.is_empty() {
                return Err(Error::InvalidInput(format!("group {:?} has an empty prompt or no completions", g.task)));
            }
        }
        let all: Vec<f64> = groups.iter().flat_map(|g| g.completions.iter().map(|c| c.reward)).collect();
        let mean_reward = all.iter().sum::<f64>() / all.len().max(1) as f64;
        let kept: Vec<&TrainGroup> = groups
            .iter()
            .filter(|g| match cfg.loss_type {
                LossType::Sft => g.completions.iter().any(|c| c.reward >= cfg.sft_min_reward),
                _ => !cfg.dynamic_sampling || keep_group(&g.completions.iter().map(|c| c.reward).collect::<Vec<_>>()),
            })
            .collect();
        let dropped = groups.len() - kept.len();
        let rewards: Vec<Vec<f64>> = kept.iter().map(|g| g.completions.iter().map(|c| c.reward).collect()).collect();
        let adv = advantages(&rewards, cfg.scale_rewards);
        let mut items = Vec::new();
        for (g, a) in kept.iter().zip(adv) {
            for (c, a) in g.completions.iter().zip(a) {
                if c.tokens.is_empty() || (cfg.loss_type == LossType::Sft && c.reward < cfg.sft_min_reward) {
                    continue;
                }
                let too_long = c.tokens.len() > cfg.max_completion_length;
                let completion = c.tokens[..c.tokens.len().min(cfg.max_completion_length)].to_vec();
                let masked = cfg.mask_truncated_completions && (c.truncated || too_long);
                items.push(Item { prompt: g.prompt_tokens.clone(), completion, advantage: a, masked });
            }
        }
        Ok((items, kept.len(), dropped, mean_reward))
    }

    /// Puts the items in the order they are trained in: as shuffled, or, with
    /// `share_prompts`, grouped by prompt (groups in order of first appearance, items within a
    /// group in shuffled order).
    fn order(&self, items: Vec<Item>) -> Vec<Item> {
        if !self.config.share_prompts {
            return items;
        }
        let mut first: HashMap<&[u32], usize> = HashMap::new();
        let rank: Vec<usize> = items
            .iter()
            .map(|it| {
                let n = first.len();
                *first.entry(&it.prompt[..]).or_insert(n)
            })
            .collect();
        let mut idx: Vec<usize> = (0..items.len()).collect();
        idx.sort_by_key(|&i| rank[i]); // stable
        idx.into_iter().map(|i| items[i].clone()).collect()
    }

    /// The micro-batches, as ranges of `items`: chunks of `micro_batch`, or with
    /// `share_prompts` chunks of `micro_batch` within each run of items sharing a prompt.
    fn micro_batches(&self, items: &[Item]) -> Vec<Range<usize>> {
        let mb = self.config.micro_batch;
        let mut out = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let mut end = start + 1;
            while end < items.len() && end - start < mb && (!self.config.share_prompts || items[end].prompt == items[start].prompt) {
                end += 1;
            }
            out.push(start..end);
            start = end;
        }
        out
    }

    /// Per-token log-probs of a micro-batch (concatenated, in order): with `share_prompts`,
    /// each run of items sharing a prompt goes through [`BaseModel::group_logprobs`].
    fn chunk_logprobs(&self, chunk: &[Item], adapter: Option<&LoraAdapter>) -> Result<Tensor> {
        if !self.config.share_prompts {
            let seqs: Vec<(&[u32], &[u32])> = chunk.iter().map(|i| (&i.prompt[..], &i.completion[..])).collect();
            return self.model.completion_logprobs(&seqs, adapter);
        }
        let mut parts = Vec::new();
        for run in chunk.chunk_by(|a, b| a.prompt == b.prompt) {
            let completions: Vec<&[u32]> = run.iter().map(|i| &i.completion[..]).collect();
            parts.push(self.model.group_logprobs(&run[0].prompt, &completions, adapter)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Per-token log-probs of `items` (concatenated), without keeping a graph.
    fn logprobs_nograd(&self, items: &[Item], adapter: Option<&LoraAdapter>) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for r in self.micro_batches(items) {
            out.extend(to_f64_vec(&self.chunk_logprobs(&items[r], adapter)?.detach())?);
        }
        Ok(out)
    }

    /// One update on `groups` with the ratio's denominator taken from the current adapter.
    pub fn step(&mut self, groups: &[TrainGroup]) -> Result<StepReport> {
        let (mut items, used, dropped, mean_reward) = self.prepare(groups)?;
        self.rng.shuffle(&mut items);
        let items = self.order(items);
        self.update(&items, None, used, dropped, mean_reward)
    }

    /// `num_iterations` updates on `groups` (GRPO's `μ`), with `logp_old` computed once, before
    /// the first update, by this trainer (never taken from llama.cpp: see [`crate::loss`]).
    pub fn train_batch(&mut self, groups: &[TrainGroup]) -> Result<Vec<StepReport>> {
        let (mut items, used, dropped, mean_reward) = self.prepare(groups)?;
        self.rng.shuffle(&mut items);
        let items = self.order(items);
        let mu = self.config.loss.num_iterations.max(1);
        let old = if mu > 1 && !items.is_empty() { Some(self.logprobs_nograd(&items, Some(&self.adapter))?) } else { None };
        (0..mu).map(|_| self.update(&items, old.as_deref(), used, dropped, mean_reward)).collect()
    }

    fn update(&mut self, items: &[Item], old: Option<&[f64]>, used: usize, dropped: usize, mean_reward: f64) -> Result<StepReport> {
        let cfg = self.config.loss.clone();
        let lr = self.config.optim.lr_at(self.opt.t);
        let mut report = StepReport {
            step: self.step + 1,
            loss: 0.0,
            penalty: 0.0,
            penalty_grad_norm: 0.0,
            grad_norm: 0.0,
            lr,
            skipped: None,
            groups_used: used,
            groups_dropped: dropped,
            tokens: 0,
            mean_reward,
            mean_ratio: 0.0,
            clip_fraction: 0.0,
            mean_kl: 0.0,
        };
        let lens: Vec<usize> = items.iter().map(|i| if i.masked { 0 } else { i.completion.len() }).collect();
        report.tokens = lens.iter().sum();
        if report.tokens == 0 {
            self.step += 1;
            report.skipped = Some("no trainable tokens (every group filtered or masked)".into());
            self.after_step()?;
            return Ok(report);
        }
        let chunks = self.micro_batches(items);
        let micro: Vec<usize> = chunks.iter().enumerate().flat_map(|(m, r)| r.clone().map(move |_| m)).collect();
        let weights = token_weights(cfg.loss_type, &lens, &micro, cfg.max_completion_length);
        let vars: Vec<(String, candle_core::Var)> =
            self.adapter.named_vars().into_iter().map(|(n, v)| (n, v.clone())).collect();
        let mut grads: Vec<Vec<f32>> = vars.iter().map(|(_, v)| vec![0.0; v.elem_count()]).collect();
        let (mut w_off, mut old_off) = (0usize, 0usize);
        let mut stat_tokens = 0.0;
        for r in chunks {
            let chunk = &items[r];
            let n_tok: usize = chunk.iter().map(|i| i.completion.len()).sum();
            let live: usize = chunk.iter().filter(|i| !i.masked).map(|i| i.completion.len()).sum();
            let chunk_old = old.map(|o| &o[old_off..old_off + n_tok]);
            old_off += n_tok;
            if live == 0 {
                continue;
            }
            let refs = if cfg.beta != 0.0 && cfg.loss_type != LossType::Sft {
                Some(to_f64_vec(&self.chunk_logprobs(chunk, None)?)?)
            } else {
                None
            };
            let logp = self.chunk_logprobs(chunk, Some(&self.adapter))?;
            // Masked sequences' tokens get weight 0; others take the next weights in order.
            let mut w = Vec::with_capacity(n_tok);
            let mut terms = Vec::with_capacity(n_tok);
            let mut k = 0;
            for it in chunk {
                for _ in 0..it.completion.len() {
                    if it.masked {
                        w.push(0.0);
                    } else {
                        w.push(weights[w_off]);
                        w_off += 1;
                    }
                    terms.push(TokenTerms {
                        advantage: it.advantage,
                        old_logp: chunk_old.map(|o| o[k]),
                        ref_logp: refs.as_ref().map(|r| r[k]).unwrap_or(0.0),
                    });
                    k += 1;
                }
            }
            let (loss, stats) = weighted_loss(&cfg, &logp, &w, &terms)?;
            report.loss += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let f = live as f64;
            report.mean_ratio += stats.mean_ratio * f;
            report.clip_fraction += stats.clip_fraction * f;
            report.mean_kl += stats.mean_kl * f;
            stat_tokens += f;
            let store = loss.backward()?;
            for ((_, var), acc) in vars.iter().zip(&mut grads) {
                if let Some(g) = store.get(var.as_tensor()) {
                    let g = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                    acc.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                }
            }
        }
        if stat_tokens > 0.0 {
            report.mean_ratio /= stat_tokens;
            report.clip_fraction /= stat_tokens;
            report.mean_kl /= stat_tokens;
        }
        let c = self.config.consolidation;
        if self.model.past().is_some() && c.kind != ConsolidationKind::None && c.lambda != 0.0 {
            // Once per update, into the same gradient buffers, before clipping.
            let pen = penalty(&c, &self.adapter, self.model.past())?;
            report.penalty = pen.value;
            report.loss += pen.value;
            let mut sq = 0.0;
            for (acc, g) in grads.iter_mut().zip(&pen.grads) {
                for (a, b) in acc.iter_mut().zip(g) {
                    *a += *b as f32;
                    sq += b * b;
                }
            }
            report.penalty_grad_norm = sq.sqrt();
        }
        report.grad_norm = clip_global_norm(&mut grads, self.config.optim.max_grad_norm);
        self.step += 1;
        if !report.loss.is_finite() || !report.grad_norm.is_finite() {
            report.skipped = Some(format!("non-finite loss {} or gradient norm {}; update skipped", report.loss, report.grad_norm));
            self.skipped_steps.push(self.step);
        } else {
            let mut params = vars
                .iter()
                .map(|(_, v)| Ok(v.as_tensor().to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?))
                .collect::<Result<Vec<_>>>()?;
            self.opt.update(&self.config.optim, lr, &mut params, &grads);
            for ((_, var), p) in vars.iter().zip(params) {
                var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu)?.to_dtype(var.dtype())?)?;
            }
        }
        self.after_step()?;
        Ok(report)
    }

    fn after_step(&self) -> Result<()> {
        match &self.config.checkpoint {
            Some(p) => self.save_checkpoint(p),
            None => Ok(()),
        }
    }

    /// Exports the adapter as a GGUF LoRA for llama.cpp.
    pub fn export_adapter(&self, path: &Path) -> Result<()> {
        self.adapter.export_gguf(path, &self.model.config.architecture)
    }

    /// Writes adapter, AdamW moments, step, skipped steps and RNG state to one GGUF file,
    /// atomically (temporary file, fsync, rename).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        use gguf_file::Value as V;
        let mut md = self.adapter.metadata(&self.model.config.architecture);
        md[0].1 = V::String("autodidact-checkpoint".into());
        md.push(("autodidact.checkpoint.version".into(), V::U32(1)));
        md.push(("autodidact.step".into(), V::U64(self.step)));
        md.push(("autodidact.adam_t".into(), V::U64(self.opt.t)));
        md.push(("autodidact.rng_state".into(), V::U64(self.rng.state)));
        md.push(("autodidact.lora.rank".into(), V::U32(self.adapter.config.rank as u32)));
        md.push(("autodidact.lora.targets".into(), V::String(targets_string(&self.adapter.config.targets))));
        md.push(("autodidact.skipped_steps".into(), V::Array(self.skipped_steps.iter().map(|s| V::U64(*s)).collect())));
        let mut tensors = Vec::new();
        for (i, (name, var)) in self.adapter.named_vars().into_iter().enumerate() {
            let q = |t: Tensor| -> Result<QTensor> { Ok(QTensor::quantize(&t, GgmlDType::F32)?) };
            tensors.push((name.clone(), q(var.as_tensor().to_dtype(DType::F32)?)?));
            let m = Tensor::from_slice(&self.opt.m[i], self.opt.m[i].len(), &Device::Cpu)?;
            let v = Tensor::from_slice(&self.opt.v[i], self.opt.v[i].len(), &Device::Cpu)?;
            tensors.push((format!("{name}.adam_m"), q(m)?));
            tensors.push((format!("{name}.adam_v"), q(v)?));
        }
        write_gguf_atomically(path, &md, &tensors)
    }

    /// A trainer restored from a checkpoint written by [`Trainer::save_checkpoint`]; its next
    /// step is bit-identical to the one the saved trainer would have taken.
    pub fn resume(model: BaseModel, config: TrainConfig, path: &Path) -> Result<Self> {
        use gguf_file::Value as V;
        let mut t = Trainer::new(model, config)?;
        let (content, mut file) = open_gguf(path)?;
        let mismatch = |what: String| Error::CheckpointMismatch { path: path.into(), what };
        let u64_of = |k: &str| -> Result<u64> {
            match content.metadata.get(k) {
                Some(V::U64(v)) => Ok(*v),
                _ => Err(mismatch(format!("missing U64 `{k}`"))),
            }
        };
        t.step = u64_of("autodidact.step")?;
        t.opt.t = u64_of("autodidact.adam_t")?;
        t.rng.state = u64_of("autodidact.rng_state")?;
        match content.metadata.get("autodidact.lora.targets") {
            Some(V::String(s)) if *s == targets_string(&t.adapter.config.targets) => {}
            other => return Err(mismatch(format!("targets {other:?} differ from the config's"))),
        }
        if !matches!(content.metadata.get("autodidact.lora.rank"), Some(V::U32(r)) if *r as usize == t.adapter.config.rank) {
            return Err(mismatch("rank differs from the config's".into()));
        }
        if let Some(V::Array(xs)) = content.metadata.get("autodidact.skipped_steps") {
            t.skipped_steps = xs.iter().filter_map(|x| if let V::U64(s) = x { Some(*s) } else { None }).collect();
        }
        let names: Vec<(String, candle_core::Var)> = t.adapter.named_vars().into_iter().map(|(n, v)| (n, v.clone())).collect();
        for (i, (name, var)) in names.iter().enumerate() {
            let mut read = |n: &str| -> Result<Tensor> {
                let q = content.tensor(&mut file, n, &Device::Cpu).map_err(|e| mismatch(format!("{n}: {e}")))?;
                Ok(q.dequantize(&Device::Cpu)?)
            };
            let p = read(name)?;
            if p.dims() != var.dims() {
                return Err(mismatch(format!("{name} has shape {:?}, expected {:?}", p.dims(), var.dims())));
            }
            var.set(&p.to_dtype(var.dtype())?)?;
            t.opt.m[i] = read(&format!("{name}.adam_m"))?.to_vec1::<f32>()?;
            t.opt.v[i] = read(&format!("{name}.adam_v"))?.to_vec1::<f32>()?;
        }
        Ok(t)
    }
}

fn targets_string(ts: &[Target]) -> String {
    ts.iter().map(|t| t.short()).collect::<Vec<_>>().join(",")
}
