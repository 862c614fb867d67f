//! Advantages and policy-gradient losses, with TRL's names (`GRPOConfig`).
//!
//! For a prompt, `G` completions `o_i` with rewards `r_i` are sampled. Per token `t` of `o_i`:
//!
//! - ratio `ρ = exp(logp − logp_old)`; `logp_old` is recomputed by this trainer before the first
//!   update, so `ρ = 1` (with a live gradient) at the first iteration. llama.cpp's sampling
//!   log-probs are **not** used as `logp_old`: they come from quantized weights, whose logits
//!   differ from the f32 model's by up to about one logit, and a ratio must take its numerator
//!   and denominator from the same engine (`DESIGN.md`).
//! - clipped surrogate (PPO, Schulman et al. 2017, as used by GRPO):
//!   `l = −min(ρ·A, clip(ρ, 1−ε, 1+ε_high)·A)`;
//! - plus `β · KL_k3` to the base model (the adapter disabled), with Schulman's k3 estimator
//!   `KL_k3 = exp(ref − logp) − (ref − logp) − 1` (GRPO, Shao et al., "DeepSeekMath",
//!   arXiv 2402.03300, eq. 4).
//!
//! Advantages ([`advantages`]): `A_i = r_i − mean(r)` over the group, divided by
//! `std(r) + 1e-4` (DeepSeekMath §4.1.2; `scale_rewards = "group"`), by the whole batch's std
//! (`"batch"`), or not at all (`"none"`, Dr. GRPO, Liu et al., "Understanding R1-Zero-Like
//! Training", arXiv 2503.20783, which shows the std division biases towards easy/hard
//! questions). `std` is the unbiased sample standard deviation, as `torch.std` in TRL.
//!
//! How token losses are reduced ([`LossType`]), `|o_i|` being a completion's unmasked length:
//!
//! | `loss_type` | reduction | source |
//! |---|---|---|
//! | `grpo` | `mean_i ( Σ_t l_it / |o_i| )` | DeepSeekMath eq. 3 |
//! | `bnpo` | `Σ l / Σ |o_i|` per micro-batch, averaged over micro-batches | TRL |
//! | `dr_grpo` | `Σ l / (N · max_completion_length)` | Dr. GRPO |
//! | `dapo` | `Σ l / Σ |o_i|` over the whole step (token-level) | Yu et al., "DAPO", arXiv 2503.14476, eq. 8 |
//! | `sft` | `−Σ logp / Σ |o_i|` on completions with `reward ≥ sft_min_reward` | rejection-sampling fine-tuning (STaR, Zelikman et al. 2022) |
//!
//! Every reduction is expressed as a fixed weight per token ([`token_weights`]), computed once
//! for the whole step, so splitting a step into micro-batches and accumulating gradients gives
//! the same gradient as one big batch (except `bnpo`, which TRL defines per micro-batch).
//! DAPO's dynamic sampling ([`keep_group`]) drops groups whose rewards are all equal: their
//! advantages are zero and they only dilute the batch.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// TRL's `loss_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossType {
    /// Per-sequence mean, then mean over sequences.
    Grpo,
    /// Token mean within each micro-batch.
    Bnpo,
    /// Sum over tokens divided by `N · max_completion_length`.
    DrGrpo,
    /// Token mean over the whole step.
    Dapo,
    /// Supervised fine-tuning on successful completions.
    Sft,
}

impl LossType {
    /// Parses TRL's spelling (`grpo`, `bnpo`, `dr_grpo`, `dapo`, `sft`).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "grpo" => LossType::Grpo,
            "bnpo" => LossType::Bnpo,
            "dr_grpo" => LossType::DrGrpo,
            "dapo" => LossType::Dapo,
            "sft" => LossType::Sft,
            _ => return Err(Error::InvalidInput(format!("unknown loss_type {s:?}; expected grpo, bnpo, dr_grpo, dapo or sft"))),
        })
    }
}

/// TRL's `scale_rewards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleRewards {
    /// Divide by the group's std.
    Group,
    /// Divide by the whole batch's std.
    Batch,
    /// Do not divide (Dr. GRPO).
    None,
}

impl ScaleRewards {
    /// Parses `group`, `batch` or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "group" => ScaleRewards::Group,
            "batch" => ScaleRewards::Batch,
            "none" => ScaleRewards::None,
            _ => return Err(Error::InvalidInput(format!("unknown scale_rewards {s:?}; expected group, batch or none"))),
        })
    }
}

/// The loss settings, named as in TRL's `GRPOConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct LossConfig {
    /// How token losses are reduced.
    pub loss_type: LossType,
    /// Weight of the k3 KL to the base model; 0 skips the reference forward.
    pub beta: f64,
    /// Lower clip `ε`: the ratio is clipped below at `1 − ε`.
    pub epsilon: f64,
    /// Upper clip `ε_high` (DAPO's clip-higher); the ratio is clipped above at `1 + ε_high`.
    pub epsilon_high: f64,
    /// How advantages are scaled.
    pub scale_rewards: ScaleRewards,
    /// Updates per batch of groups (`μ`); `logp_old` is fixed before the first.
    pub num_iterations: usize,
    /// Completions are cut to this many tokens (and `dr_grpo` divides by it).
    pub max_completion_length: usize,
    /// Give truncated completions zero weight.
    pub mask_truncated_completions: bool,
    /// Drop groups whose rewards are all equal (DAPO's dynamic sampling).
    pub dynamic_sampling: bool,
    /// `sft` trains on completions whose reward is at least this.
    pub sft_min_reward: f64,
}

impl Default for LossConfig {
    /// DAPO's recipe, which is also TRL's current default: token-level mean, `ε = 0.2`,
    /// `ε_high = 0.28`, `β = 0`, dynamic sampling on.
    fn default() -> Self {
        LossConfig {
            loss_type: LossType::Dapo,
            beta: 0.0,
            epsilon: 0.2,
            epsilon_high: 0.28,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
            max_completion_length: 256,
            mask_truncated_completions: false,
            dynamic_sampling: true,
            sft_min_reward: 1.0,
        }
    }
}

/// The epsilon added to the std before dividing, as in TRL.
pub const STD_EPS: f64 = 1e-4;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Unbiased sample standard deviation (`torch.std`); 0 for fewer than two values.
pub fn std_unbiased(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Group-relative advantages for each group's rewards (see the module docs for the formulas).
pub fn advantages(groups: &[Vec<f64>], scale: ScaleRewards) -> Vec<Vec<f64>> {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    let batch_std = std_unbiased(&all);
    groups
        .iter()
        .map(|r| {
            let m = mean(r);
            let d = match scale {
                ScaleRewards::Group => std_unbiased(r) + STD_EPS,
                ScaleRewards::Batch => batch_std + STD_EPS,
                ScaleRewards::None => 1.0,
            };
            r.iter().map(|x| (x - m) / d).collect()
        })
        .collect()
}

/// DAPO's dynamic-sampling filter: keep a group only if its rewards are not all equal.
pub fn keep_group(rewards: &[f64]) -> bool {
    rewards.iter().any(|r| *r != rewards[0])
}

/// The per-token weights that turn a sum of token losses into `loss_type`'s reduction.
///
/// `lens[i]` is sequence `i`'s number of loss tokens (0 if masked), `micro[i]` the micro-batch
/// it is in; the result has one weight per token, sequences in order.
pub fn token_weights(loss_type: LossType, lens: &[usize], micro: &[usize], max_completion_length: usize) -> Vec<f64> {
    let total: usize = lens.iter().sum();
    let live_seqs = lens.iter().filter(|&&l| l > 0).count();
    let n_micro = micro.iter().max().map(|m| m + 1).unwrap_or(1);
    let mut per_micro = vec![0usize; n_micro];
    for (l, m) in lens.iter().zip(micro) {
        per_micro[*m] += l;
    }
    let mut w = Vec::with_capacity(total);
    for (i, &l) in lens.iter().enumerate() {
        let wi = match loss_type {
            LossType::Grpo => 1.0 / (live_seqs.max(1) * l.max(1)) as f64,
            LossType::Bnpo => 1.0 / (per_micro[micro[i]].max(1) * n_micro) as f64,
            LossType::DrGrpo => 1.0 / (lens.len().max(1) * max_completion_length.max(1)) as f64,
            LossType::Dapo | LossType::Sft => 1.0 / total.max(1) as f64,
        };
        w.extend(std::iter::repeat_n(wi, l));
    }
    w
}

/// What one token contributes, besides its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTerms {
    /// The sequence's advantage.
    pub advantage: f64,
    /// `logp_old`, or `None` to use the current log-prob without gradient (ratio 1).
    pub old_logp: Option<f64>,
    /// The base model's log-prob (only read when `β ≠ 0`).
    pub ref_logp: f64,
}

/// Diagnostics of a loss evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Mean ratio over tokens.
    pub mean_ratio: f64,
    /// Fraction of tokens whose ratio was clipped.
    pub clip_fraction: f64,
    /// Mean k3 KL over tokens (0 when `β = 0`).
    pub mean_kl: f64,
}

/// The weighted loss `Σ_t w_t · l_t` of a micro-batch, as a differentiable scalar.
///
/// `logp` holds the current per-token log-probs (with gradient), `weights` and `terms` one entry
/// per token.
pub fn weighted_loss(cfg: &LossConfig, logp: &Tensor, weights: &[f64], terms: &[TokenTerms]) -> Result<(Tensor, LossStats)> {
    let n = logp.elem_count();
    if weights.len() != n || terms.len() != n {
        return Err(Error::InvalidInput(format!("{n} log-probs, {} weights, {} terms", weights.len(), terms.len())));
    }
    let dt = logp.dtype();
    let vec = |v: Vec<f64>| -> Result<Tensor> { Ok(Tensor::from_vec(v, n, &Device::Cpu)?.to_dtype(dt)?) };
    let w = vec(weights.to_vec())?;
    if cfg.loss_type == LossType::Sft {
        return Ok(((logp * &w)?.sum_all()?.neg()?, LossStats::default()));
    }
    let lp_now = crate::ops::to_f64_vec(logp)?;
    let old: Vec<f64> = terms.iter().zip(&lp_now).map(|(t, now)| t.old_logp.unwrap_or(*now)).collect();
    let a = vec(terms.iter().map(|t| t.advantage).collect())?;
    // ρ = exp(logp − logp_old); with logp_old = logp detached, ρ = 1 and ∂ρ/∂logp = 1.
    let ratio = (logp - vec(old.clone())?)?.exp()?;
    let clipped = ratio.clamp(1.0 - cfg.epsilon, 1.0 + cfg.epsilon_high)?;
    let mut per_token = (ratio.broadcast_mul(&a)?.minimum(&clipped.broadcast_mul(&a)?)?).neg()?;
    let mut stats = LossStats::default();
    let ratios: Vec<f64> = lp_now.iter().zip(&old).map(|(l, o)| (l - o).exp()).collect();
    stats.mean_ratio = mean(&ratios);
    stats.clip_fraction =
        ratios.iter().filter(|r| **r < 1.0 - cfg.epsilon || **r > 1.0 + cfg.epsilon_high).count() as f64 / n.max(1) as f64;
    if cfg.beta != 0.0 {
        // k3 (DeepSeekMath eq. 4): exp(ref − logp) − (ref − logp) − 1, unbiased and ≥ 0.
        let d = (vec(terms.iter().map(|t| t.ref_logp).collect())? - logp)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        stats.mean_kl = mean(&crate::ops::to_f64_vec(&kl)?);
        per_token = (per_token + (kl * cfg.beta)?)?;
    }
    Ok(((per_token * &w)?.sum_all()?, stats))
}
