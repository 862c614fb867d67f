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

/// Arguments of `autodidact bench group`.
#[derive(Args)]
pub struct GroupArgs {
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Prompt tokens (the nightly's agent prompt is about 370).
    #[arg(long, default_value_t = 400, value_name = "N")]
    pub prompt_len: usize,
    /// Completions sharing the prompt.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub group: usize,
    /// Tokens per completion.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub completion_len: usize,
    /// Rows per per-row pass (the policy's `training.micro_batch`).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub micro_batch: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub reps: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `autodidact bench group`: forward+backward of a GRPO group with its prompt run once per
/// pass (what the trainer does) against once per row (its peer), medians.
pub fn run_group(args: GroupArgs) -> anyhow::Result<ExitCode> {
    let path = args.model.unwrap_or_else(default_model_path);
    let model = BaseModel::load_gguf(&path, DType::F32).with_context(|| format!("loading {}", path.display()))?;
    let r = autodidact_trainer::bench::bench_group(&model, args.prompt_len, args.group, args.completion_len, args.micro_batch.max(1), args.reps.max(1))?;
    let v = json!({
        "prompt_len": r.prompt_len, "group": r.group, "completion_len": r.completion_len,
        "micro_batch": r.micro_batch, "threads": r.threads,
        "per_row_s": r.per_row_s, "shared_s": r.shared_s, "shared_micro_s": r.shared_micro_s,
        "speedup": r.speedup, "speedup_micro": r.speedup_micro,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("group of {} x {} tokens after a {}-token prompt ({} threads)", r.group, r.completion_len, r.prompt_len, r.threads);
        println!("  per-row, micro-batch {}   {:>8.2} s", r.micro_batch, r.per_row_s);
        println!("  shared, one pass          {:>8.2} s  ({:.2}x)", r.shared_s, r.speedup);
        println!("  shared, micro-batch {}    {:>8.2} s  ({:.2}x)", r.micro_batch, r.shared_micro_s, r.speedup_micro);
    }
    Ok(ExitCode::SUCCESS)
}
