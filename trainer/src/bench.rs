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
//! A profile (perf, 8×256, micro-batch 2, on a machine shared with compilers) put 45% of the
//! time in gemm's f32 micro-kernel and 19% in candle 0.11's spin barrier for parallel
//! elementwise ops (`BarrierGuard::drop`): with more runnable threads than cores the spinning
//! is wasted. `CANDLE_NUM_THREADS=1` turns that pool off while GEMM keeps rayon's threads.

use std::time::Instant;

pub use crate::bench_consolidation::{consolidation, ConsolidationBench, ConsolidationBenchConfig, ConsolidationSetting};

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::lora::Target;
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
