//! `autodidact bench train`: the trainer's forward+backward speed against the machine's GEMM.
//!
//! One training step (forward, backward, AdamW) on `batch × seq_len` random tokens with the
//! real SmolLM2 weights; the FLOP count and the GEMM reference are documented in
//! `autodidact_trainer::bench`. This is a benchmark, not a test: numbers depend on the load.
//! candle 0.11 runs elementwise ops on a spin-waiting thread pool; on a loaded machine
//! `CANDLE_NUM_THREADS=1` (elementwise ops inline, GEMM still on rayon's threads) was faster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autodidact_trainer::{BaseModel, DType, default_model_path};
use clap::Args;
use serde_json::json;

/// Arguments of `autodidact bench train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Sequences in the step.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub batch: usize,
    /// Tokens per sequence (16 prompt tokens, the rest completion).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub seq_len: usize,
    /// Sequences per micro-batch; gradients are accumulated across micro-batches. One keeps the
    /// peak RSS near 1.8 GB for 8x256 (two: about 2.9 GB).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub micro_batch: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its report.
pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let path = args.model.unwrap_or_else(default_model_path);
    let model = BaseModel::load_gguf(&path, DType::F32).with_context(|| format!("loading {}", path.display()))?;
    let r = autodidact_trainer::bench::bench_train(model, args.batch, args.seq_len.max(2), args.micro_batch.max(1))?;
    let v = json!({
        "batch": r.batch,
        "seq_len": r.seq_len,
        "micro_batch": r.micro_batch,
        "threads": r.threads,
        "step_s": r.step_s,
        "tokens_per_s": r.tokens_per_s,
        "train_gflops": r.train_gflops,
        "gemm_gflops": r.gemm_gflops,
        "mfu": r.mfu,
        "peak_rss_mb": r.peak_rss_mb,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("train step {}x{} (micro-batch {}, {} threads)", r.batch, r.seq_len, r.micro_batch, r.threads);
        println!("  step           {:>10.2} s", r.step_s);
        println!("  tokens/s       {:>10.1}", r.tokens_per_s);
        println!("  train GFLOP/s  {:>10.2}", r.train_gflops);
        println!("  GEMM GFLOP/s   {:>10.2}", r.gemm_gflops);
        println!("  MFU            {:>10.3}", r.mfu);
        println!("  peak RSS       {:>10.0} MB", r.peak_rss_mb);
    }
    Ok(ExitCode::SUCCESS)
}
