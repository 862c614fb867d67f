//! `bench consolidation`: what each consolidation penalty costs in new learning, buys in
//! retention, and costs in time, on two nights of training.
//!
//! Two synthetic task families of fixed groups (token ids drawn from a seeded RNG in a range of
//! ordinary tokens; prompts and completions are not text, which is enough to measure
//! likelihoods):
//!
//! - family **A**: each prompt has two rewarded completions `X` and two unrewarded random ones;
//! - family **B**: new prompts, two new rewarded completions `Y`, and as unrewarded ones one
//!   random completion and one of A's rewarded completions `X`: night 2 pushes down, in B's
//!   contexts, what night 1 pushed up in A's, which is where forgetting shows.
//!
//! Night 1 trains a fresh adapter on A (no past); it is "promoted" and becomes the frozen past.
//! Night 2 trains a fresh delta on B on top of it, once per setting (no penalty, ELLA and O-LoRA
//! at each `λ` of the grid), with the same seed, steps and data. For each setting:
//!
//! - `gain_b`: B's rewarded completions' mean per-token log-prob under `merge(past, delta)`
//!   minus under the past alone;
//! - `retention_a`: A's rewarded completions' mean per-token log-prob under `merge(past, delta)`
//!   minus under the past alone (0 is perfect retention, negative is forgetting), and
//!   `retained_fraction_a`, the share of night 1's gain on A that survives;
//! - the median wall time of a night-2 step (penalty included), the last step's penalty and the
//!   norms of its gradient and of the whole gradient.

use std::time::Instant;

use serde::Serialize;

use crate::consolidation::{Consolidation, ConsolidationKind};
use crate::error::Result;
use crate::lora::{LoraAdapter, LoraConfig};
use crate::loss::{LossConfig, LossType};
use crate::model::BaseModel;
use crate::ops::to_f64_vec;
use crate::optim::AdamWConfig;
use crate::rng::Rng;
use crate::trainer::{Completion, Split, TrainConfig, TrainGroup, Trainer};

/// Settings of the measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsolidationBenchConfig {
    /// Updates per night.
    pub steps: usize,
    /// Peak learning rate of both nights.
    pub lr: f64,
    /// LoRA rank of each night's adapter (`α = 2r`).
    pub lora_rank: usize,
    /// Groups per family.
    pub groups: usize,
    /// Prompt tokens.
    pub prompt_len: usize,
    /// Tokens per completion.
    pub completion_len: usize,
    /// Seed of the data and of both trainers.
    pub seed: u64,
    /// `λ` values tried for ELLA.
    pub ella_lambdas: Vec<f64>,
    /// `λ` values tried for O-LoRA.
    pub olora_lambdas: Vec<f64>,
    /// The merged adapter's rank cap.
    pub merged_rank_cap: usize,
}

impl Default for ConsolidationBenchConfig {
    fn default() -> Self {
        ConsolidationBenchConfig {
            steps: 6,
            lr: 5e-4,
            lora_rank: 8,
            groups: 4,
            prompt_len: 12,
            completion_len: 8,
            seed: 2,
            ella_lambdas: vec![1e5, 1e6],
            olora_lambdas: vec![1e-2, 1e-1],
            merged_rank_cap: 32,
        }
    }
}

/// One night-2 setting's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsolidationSetting {
    /// `none`, `ella` or `olora`.
    pub kind: String,
    /// `λ`.
    pub lambda: f64,
    /// Gain on B (nats/token, see the module docs).
    pub gain_b: f64,
    /// Change on A under the merged adapter against the past alone (nats/token).
    pub retention_a: f64,
    /// `(A under merged − A base) / (A under past − A base)`.
    pub retained_fraction_a: f64,
    /// Median wall time of a night-2 step, in seconds.
    pub step_s_median: f64,
    /// The last step's penalty.
    pub penalty_last: f64,
    /// The last step's penalty-gradient norm.
    pub penalty_grad_norm_last: f64,
    /// The last step's whole gradient norm (before clipping).
    pub grad_norm_last: f64,
    /// `Σ ‖ΔW‖²_F` of the night-2 delta.
    pub delta_energy: f64,
    /// Rank of `merge(past, delta)`.
    pub merged_rank: usize,
    /// Median seconds of one penalty evaluation (value and gradient) on the final delta: the
    /// penalty's own cost per step, measured apart from the step's noise.
    pub penalty_s: f64,
    /// Seconds taken by the merge.
    pub merge_s: f64,
    /// `max |Δ logp|` between `merge(past, delta)` and the past and delta applied separately.
    pub merge_max_abs_logp_diff: f64,
}

/// The whole measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsolidationBench {
    /// Its settings.
    pub config: ConsolidationBenchConfig,
    /// A's rewarded completions, mean per-token log-prob, base model.
    pub a_base: f64,
    /// The same under the night-1 (past) adapter.
    pub a_past: f64,
    /// B's rewarded completions under the past adapter (before night 2).
    pub b_before: f64,
    /// Median wall time of a night-1 step (no past, no penalty), in seconds.
    pub night1_step_s_median: f64,
    /// One entry per night-2 setting, `none` first.
    pub settings: Vec<ConsolidationSetting>,
    /// Seconds to merge the past and the last setting's delta with the cap at one night's rank,
    /// which forces the truncated-SVD path on every matrix.
    pub truncated_merge_s: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// The two families (see the module docs).
/// Tokens are drawn from `1000..21000` (ordinary sub-words in SmolLM2's vocabulary), or from
/// the whole vocabulary of a smaller (test) model.
fn families(cfg: &ConsolidationBenchConfig, vocab: usize) -> (Vec<TrainGroup>, Vec<TrainGroup>) {
    let mut rng = Rng::new(cfg.seed ^ 0xC0A5);
    let (lo, span) = if vocab > 21000 { (1000, 20000) } else { (1, vocab as u64 - 1) };
    let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| lo + (rng.next_u64() % span) as u32).collect() };
    let c = |tokens: Vec<u32>, reward: f64| Completion { tokens, reward, truncated: false };
    let mut a = Vec::new();
    let mut b = Vec::new();
    for g in 0..cfg.groups {
        let (x1, x2) = (tok(cfg.completion_len), tok(cfg.completion_len));
        a.push(TrainGroup {
            task: format!("A{g}"),
            split: Split::Train,
            prompt_tokens: tok(cfg.prompt_len),
            completions: vec![c(x1.clone(), 1.0), c(tok(cfg.completion_len), 0.0), c(x2, 1.0), c(tok(cfg.completion_len), 0.0)],
        });
        b.push(TrainGroup {
            task: format!("B{g}"),
            split: Split::Train,
            prompt_tokens: tok(cfg.prompt_len),
            completions: vec![c(tok(cfg.completion_len), 1.0), c(x1, 0.0), c(tok(cfg.completion_len), 1.0), c(tok(cfg.completion_len), 0.0)],
        });
    }
    (a, b)
}

/// All per-token log-probs of the rewarded completions of `groups`.
fn rewarded_logps(model: &BaseModel, adapter: Option<&LoraAdapter>, groups: &[TrainGroup]) -> Result<Vec<f64>> {
    let seqs: Vec<(&[u32], &[u32])> = groups
        .iter()
        .flat_map(|g| g.completions.iter().filter(|c| c.reward > 0.0).map(move |c| (&g.prompt_tokens[..], &c.tokens[..])))
        .collect();
    let mut out = Vec::new();
    for chunk in seqs.chunks(8) {
        out.extend(to_f64_vec(&model.completion_logprobs(chunk, adapter)?.detach())?);
    }
    Ok(out)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn train_config(cfg: &ConsolidationBenchConfig, consolidation: Consolidation) -> TrainConfig {
    TrainConfig {
        lora: LoraConfig { rank: cfg.lora_rank, alpha: 2.0 * cfg.lora_rank as f32, ..LoraConfig::default() },
        loss: LossConfig { loss_type: LossType::Dapo, ..LossConfig::default() },
        optim: AdamWConfig { lr: cfg.lr, ..AdamWConfig::default() },
        micro_batch: 8,
        seed: cfg.seed,
        consolidation,
        merged_rank_cap: cfg.merged_rank_cap,
        ..TrainConfig::default()
    }
}

/// Runs the two-night measurement on `model` (which must have no past adapter set).
pub fn consolidation(model: &BaseModel, cfg: &ConsolidationBenchConfig) -> Result<ConsolidationBench> {
    if cfg.steps == 0 || cfg.groups == 0 || cfg.prompt_len == 0 || cfg.completion_len == 0 {
        return Err(crate::Error::InvalidInput("bench consolidation: steps, groups and lengths must be at least 1".into()));
    }
    let mut base = model.clone();
    base.set_past(None)?;
    let (fam_a, fam_b) = families(cfg, base.config.vocab);
    let none = Consolidation { kind: ConsolidationKind::None, lambda: 0.0 };

    let mut night1 = Trainer::new(base.clone(), train_config(cfg, none))?;
    let mut times = Vec::new();
    for _ in 0..cfg.steps {
        let t0 = Instant::now();
        night1.step(&fam_a)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let past = night1.adapter.detached_copy(base.dtype())?;
    drop(night1);
    let a_base = mean(&rewarded_logps(&base, None, &fam_a)?);
    let a_past = mean(&rewarded_logps(&base, Some(&past), &fam_a)?);
    let b_before = mean(&rewarded_logps(&base, Some(&past), &fam_b)?);

    let mut grid = vec![none];
    grid.extend(cfg.ella_lambdas.iter().map(|&lambda| Consolidation { kind: ConsolidationKind::Ella, lambda }));
    grid.extend(cfg.olora_lambdas.iter().map(|&lambda| Consolidation { kind: ConsolidationKind::OLora, lambda }));
    let mut settings = Vec::new();
    let mut truncated_merge_s = f64::NAN;
    for c in grid {
        let mut t = Trainer::with_past(base.clone(), train_config(cfg, c), &past)?;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..cfg.steps {
            let t0 = Instant::now();
            last = Some(t.step(&fam_b)?);
            times.push(t0.elapsed().as_secs_f64());
        }
        let mut pen_times = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            crate::consolidation::penalty(&c, &t.adapter, t.model.past())?;
            pen_times.push(t0.elapsed().as_secs_f64());
        }
        let t0 = Instant::now();
        LoraAdapter::merge(&past, &t.adapter, cfg.lora_rank)?;
        truncated_merge_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let merged = LoraAdapter::merge(&past, &t.adapter, cfg.merged_rank_cap)?;
        let merge_s = t0.elapsed().as_secs_f64();
        let separate = rewarded_logps(&t.model, Some(&t.adapter), &fam_b)?;
        let b_after_v = rewarded_logps(&base, Some(&merged), &fam_b)?;
        let diff = separate.iter().zip(&b_after_v).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let a_after = mean(&rewarded_logps(&base, Some(&merged), &fam_a)?);
        let last = last.expect("at least one step");
        settings.push(ConsolidationSetting {
            kind: c.kind.name().into(),
            lambda: c.lambda,
            gain_b: mean(&b_after_v) - b_before,
            retention_a: a_after - a_past,
            retained_fraction_a: (a_after - a_base) / (a_past - a_base),
            step_s_median: median(times),
            penalty_last: last.penalty,
            penalty_grad_norm_last: last.penalty_grad_norm,
            grad_norm_last: last.grad_norm,
            delta_energy: t.adapter.delta_energy()?,
            merged_rank: merged.config.rank,
            penalty_s: median(pen_times),
            merge_s,
            merge_max_abs_logp_diff: diff,
        });
    }
    Ok(ConsolidationBench { config: cfg.clone(), a_base, a_past, b_before, night1_step_s_median: median(times), settings, truncated_merge_s })
}
