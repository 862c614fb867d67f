//! Benchmarks behind `autodidact bench train` and `autodidact bench consolidation`.
//!
//! `bench consolidation` ([`consolidation`]) trains two nights on two task families and reports,
//! per consolidation penalty, the gain on the new family, the retention of the old one and the
//! time per step (see `bench_consolidation.rs`).
//!
//! `bench train`: the speed of a training step, against the machine's own GEMM speed.
//!
//! - `tokens_per_s`: forward plus backward (one [`Trainer::step`], optimiser included, which is
//!   negligible) on 8 sequences of 256 tokens (16 prompt + 240 completion tokens each).
//! - `train_gflops`: *useful* FLOPs per second, counted as
//!   `4 · (P_linear · T_all + P_head · T_completion) + 4 · n_layer · T² · n_embd · batch`:
//!   2 FLOPs per weight per token in the forward and 2 in the backward (the input gradient only;
//!   frozen weights get no weight gradient), and the two attention matmuls (`QKᵀ`, `PV`)
//!   forward and backward counted the same way. The LM head's recomputation in the backward, the
//!   elementwise work and the (tiny) LoRA matmuls are not counted.
//! - `gemm_gflops`: candle's own f32 matmul (the same `gemm` crate and rayon thread pool the
//!   trainer uses) on a `(2048 × 576) · (576 × 1536)` product, the shape of the MLP layers.
//! - `mfu = train_gflops / gemm_gflops`.
//! - `peak_rss_mb`: the process's peak resident set (`VmHWM` in `/proc/self/status`).
//!
//! [`bench_group`] times the shared-prompt forward ([`BaseModel::group_logprobs`]) against the
//! per-row one ([`BaseModel::completion_logprobs`]) on one GRPO group: forward plus backward of
//! `Σ logp` through a rank-8 adapter on every target, median of `reps` runs of each. Measured on
//! SmolLM2 (2 cores shared with other builds, load ≈ 9; 400-token prompt, 8 completions of 60
//! tokens, median of 3): per-row in micro-batches of 2, 259 s (1.9 completion tokens/s);
//! shared in one pass, 78 s (6.2 tokens/s, 3.3×); shared in micro-batches of 2, 159 s (1.6×).
//! With `share_prompts`, a `micro_batch` of `G` therefore pays: the prompt runs once per group.
//!
//! A profile (perf, 8×256, micro-batch 2, on a machine shared with compilers) put 45% of the
//! time in gemm's f32 micro-kernel and 19% in candle 0.11's spin barrier for parallel
//! elementwise ops (`BarrierGuard::drop`): with more runnable threads than cores the spinning
//! is wasted. `CANDLE_NUM_THREADS=1` turns that pool off while GEMM keeps rayon's threads.

use std::time::Instant;

pub use crate::bench_consolidation::{consolidation, ConsolidationBench, ConsolidationBenchConfig, ConsolidationSetting};

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::lora::{LoraAdapter, LoraConfig, Target};
use crate::trainer::{Completion, Split, TrainConfig, TrainGroup, Trainer};
use crate::BaseModel;

/// The measured figures.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBench {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Wall-clock seconds of the measured step.
    pub step_s: f64,
    /// Forward+backward tokens per second.
    pub tokens_per_s: f64,
    /// Achieved useful GFLOP/s (see the module docs for the count).
    pub train_gflops: f64,
    /// Measured f32 GEMM GFLOP/s with the same library and threads.
    pub gemm_gflops: f64,
    /// `train_gflops / gemm_gflops`.
    pub mfu: f64,
    /// Peak resident memory in MB.
    pub peak_rss_mb: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// The peak resident set of this process in MB, if `/proc` says.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Measured f32 GEMM speed in GFLOP/s: the median of `reps` products of `(m × k) · (k × n)`.
pub fn gemm_gflops(m: usize, k: usize, n: usize, reps: usize) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?;
    let _ = a.matmul(&b.t()?)?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let c = a.matmul(&b.t()?)?;
        let _ = c.dims();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(2.0 * (m * k * n) as f64 / times[times.len() / 2] / 1e9)
}

/// Runs one training step of `batch × seq_len` tokens on `model` and reports its speed.
pub fn bench_train(model: BaseModel, batch: usize, seq_len: usize, micro_batch: usize) -> Result<TrainBench> {
    let c = model.config.clone();
    let prompt_len = 16.min(seq_len - 1);
    let comp_len = seq_len - prompt_len;
    let config = TrainConfig { micro_batch, ..TrainConfig::default() };
    let mut trainer = Trainer::new(model, config)?;
    let mut rng = crate::Rng::new(1);
    let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| 1000 + (rng.next_u64() % 20000) as u32).collect() };
    let group = TrainGroup {
        task: "bench".into(),
        split: Split::Train,
        prompt_tokens: tok(prompt_len),
        completions: (0..batch).map(|i| Completion { tokens: tok(comp_len), reward: (i % 2) as f64, truncated: false }).collect(),
    };
    let t0 = Instant::now();
    let report = trainer.step(std::slice::from_ref(&group))?;
    let step_s = t0.elapsed().as_secs_f64();
    let _ = report;
    let p_linear: usize = Target::ALL.iter().map(|&t| {
        let (o, i) = c.shape_of(t);
        o * i
    }).sum::<usize>() * c.n_layer;
    let p_head = c.vocab * c.n_embd;
    let t_all = (batch * seq_len) as f64;
    let t_comp = (batch * comp_len) as f64;
    let attn = 4.0 * c.n_layer as f64 * (seq_len * seq_len * c.n_embd) as f64 * batch as f64;
    let flops = 4.0 * (p_linear as f64 * t_all + p_head as f64 * t_comp) + attn;
    let train_gflops = flops / step_s / 1e9;
    let gemm = gemm_gflops(2048, c.n_embd, c.n_ff, 5)?;
    Ok(TrainBench {
        batch,
        seq_len,
        micro_batch,
        step_s,
        tokens_per_s: t_all / step_s,
        train_gflops,
        gemm_gflops: gemm,
        mfu: train_gflops / gemm,
        peak_rss_mb: peak_rss_mb().unwrap_or(f64::NAN),
        threads: rayon::current_num_threads(),
    })
}

/// One GRPO group's forward+backward, per-row against shared-prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBench {
    /// Prompt tokens.
    pub prompt_len: usize,
    /// Completions in the group (`G`).
    pub group: usize,
    /// Tokens per completion.
    pub completion_len: usize,
    /// Rows per per-row pass (the trainer's `micro_batch`); each pass has its own backward.
    pub micro_batch: usize,
    /// Median seconds of the per-row forward+backward of the whole group.
    pub per_row_s: f64,
    /// Median seconds of the shared-prompt forward+backward of the whole group in one pass.
    pub shared_s: f64,
    /// Median seconds of the shared-prompt forward+backward in passes of `micro_batch`
    /// completions (the prompt run once per pass: what `share_prompts` does with this
    /// `micro_batch`).
    pub shared_micro_s: f64,
    /// Completion tokens per second, per-row.
    pub per_row_tokens_per_s: f64,
    /// Completion tokens per second, shared, one pass.
    pub shared_tokens_per_s: f64,
    /// Completion tokens per second, shared, passes of `micro_batch`.
    pub shared_micro_tokens_per_s: f64,
    /// `per_row_s / shared_s`.
    pub speedup: f64,
    /// `per_row_s / shared_micro_s`.
    pub speedup_micro: f64,
    /// Rayon threads.
    pub threads: usize,
}

/// Times forward+backward of `group` random completions of `completion_len` tokens after one
/// `prompt_len`-token prompt, per-row (in passes of `micro_batch` rows) and shared, `reps` times
/// each (interleaved), and reports the medians.
pub fn bench_group(model: &BaseModel, prompt_len: usize, group: usize, completion_len: usize, micro_batch: usize, reps: usize) -> Result<GroupBench> {
    let c = model.config.clone();
    let mut rng = crate::Rng::new(2);
    let adapter = LoraAdapter::init(LoraConfig::default(), c.n_layer, |t| c.shape_of(t), model.dtype(), &mut rng)?;
    adapter.randomize_b(0.01, &mut rng)?;
    let vocab = c.vocab as u64;
    let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % vocab) as u32).collect() };
    let prompt = tok(prompt_len.max(1));
    let completions: Vec<Vec<u32>> = (0..group.max(1)).map(|_| tok(completion_len.max(1))).collect();
    let refs: Vec<&[u32]> = completions.iter().map(|x| &x[..]).collect();
    let mb = micro_batch.max(1);
    let fwd_bwd = |lp: Tensor| -> Result<()> {
        let _ = lp.sum_all()?.backward()?;
        Ok(())
    };
    let per_row = || -> Result<()> {
        for chunk in refs.chunks(mb) {
            let seqs: Vec<(&[u32], &[u32])> = chunk.iter().map(|x| (&prompt[..], *x)).collect();
            fwd_bwd(model.completion_logprobs(&seqs, Some(&adapter))?)?;
        }
        Ok(())
    };
    let shared = || fwd_bwd(model.group_logprobs(&prompt, &refs, Some(&adapter))?);
    let shared_micro = || -> Result<()> {
        for chunk in refs.chunks(mb) {
            fwd_bwd(model.group_logprobs(&prompt, chunk, Some(&adapter))?)?;
        }
        Ok(())
    };
    let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        let t0 = Instant::now();
        f()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let (mut a, mut b, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        a.push(time(&per_row)?);
        b.push(time(&shared)?);
        m.push(time(&shared_micro)?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (per_row_s, shared_s, shared_micro_s) = (median(a), median(b), median(m));
    let n = (completions.len() * completions[0].len()) as f64;
    Ok(GroupBench {
        prompt_len: prompt.len(),
        group: completions.len(),
        completion_len: completions[0].len(),
        micro_batch: mb,
        per_row_s,
        shared_s,
        shared_micro_s,
        per_row_tokens_per_s: n / per_row_s,
        shared_tokens_per_s: n / shared_s,
        shared_micro_tokens_per_s: n / shared_micro_s,
        speedup: per_row_s / shared_s,
        speedup_micro: per_row_s / shared_micro_s,
        threads: rayon::current_num_threads(),
    })
}
