//! `autodidact bench ...`: benchmarks, reported as medians (not timed tests).
//!
//! `bench train` measures the trainer (`bench_train.rs`, with `bench group`); `bench
//! consolidation` compares the consolidation penalties over two nights (`bench_consolidation.rs`);
//! `bench serve` the HTTP service under load (`bench_serve.rs`).
//!
//! `bench model` measures the in-process llama.cpp backend the way llama-bench does (pp512:
//! 512 random tokens as one prompt), then generation through the real `chat` and `chat_group`
//! paths (sampling and log-probs included): 128 tokens for one sequence and for a group of 8.
//! The same two generation tests run again after a long prompt (`*_long`, about 1,500 tokens
//! of context), where attention, not the weights, dominates. If the native comparison program
//! is built (`make bench-native`), it runs against the same model with the same attention
//! kernel, and the report adds its numbers and the ratios.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use autodidact_runtime::model::ModelSpec;
use autodidact_runtime::model::llamacpp::bench;
use clap::{Args, Subcommand};
use serde_json::json;

/// Benchmark subcommands.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Model speed: prompt processing (pp512), generation of one sequence and of a group of 8.
    Model(ModelArgs),
    /// Trainer speed: forward+backward tokens/s for 8x256, GFLOP/s, MFU, peak RSS.
    Train(crate::bench_train::TrainArgs),
    /// A GRPO group's forward+backward with the prompt shared (the trainer) vs per row (peer).
    Group(crate::bench_train::GroupArgs),
    /// Consolidation penalties (none, ELLA, O-LoRA) on two nights: gain on the new family,
    /// retention of the old one, time per step.
    Consolidation(crate::bench_consolidation::ConsolidationArgs),
    /// The RLM runtime's own overhead (outside model calls and guest code) on a 20-turn scripted run.
    Rlm(crate::bench_rlm::RlmArgs),
    /// The HTTP service under load: N concurrent agents (scripted model, real sandbox) over
    /// loopback; runs/s, submission p50/p99, lost runs (must be 0), where throughput stops rising.
    Serve(crate::bench_serve::ServeArgs),
    /// Eval items per minute (32 arith + 8 niah): one prompt at a time with no prefix reuse
    /// (the old path) against continuous batching of concurrent agents, same items, same run.
    Eval(EvalArgs),
}

/// Arguments of `autodidact bench eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The GGUF model: `smollm2` (the bootstrapped one) or `path/to/file.gguf`.
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Agents in flight on the batched path.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
    /// arith eval items.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub arith: usize,
    /// niah eval items (8 KB to 1 MB haystacks).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub niah: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `autodidact bench model`.
#[derive(Args)]
pub struct ModelArgs {
    /// The GGUF model: `smollm2` (the bootstrapped one) or `path/to/file.gguf`.
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Measured repetitions of each test, after one warm-up; the report gives medians.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub runs: usize,
    /// The native llama.cpp comparison program (built by `make bench-native`); skipped if
    /// absent. Default: $CARGO_TARGET_DIR/native/llama-bench-lite.
    #[arg(long, value_name = "FILE")]
    pub native: Option<PathBuf>,
    /// Turn llama.cpp's flash-attention kernel off (it is on by default, as in the runtime):
    /// faster decoding at long context, but batched and one-token log-probs then differ.
    #[arg(long)]
    pub no_flash_attention: bool,
    /// The KV cache's element type: f16 (the runtime's default), f32 or q8_0.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32", "q8_0"])]
    pub kv_type: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCmd::Model(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(bench_model(args))
        }
        BenchCmd::Train(args) => crate::bench_train::run(args),
        BenchCmd::Group(args) => crate::bench_train::run_group(args),
        BenchCmd::Consolidation(args) => crate::bench_consolidation::run(args),
        BenchCmd::Rlm(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(crate::bench_rlm::bench_rlm(args))
        }
        BenchCmd::Serve(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(crate::bench_serve::bench_serve(args))
        }
        BenchCmd::Eval(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(bench_eval(args))
        }
    }
}

async fn bench_eval(args: EvalArgs) -> anyhow::Result<std::process::ExitCode> {
    let ModelSpec::Gguf(path) = ModelSpec::parse(&args.model)? else {
        bail!("bench eval measures in-process GGUF models; {} is not one", args.model);
    };
    let sandbox = autodidact_sandbox::Sandbox::open(&autodidact_sandbox::SandboxConfig::from_env())?;
    let total = 2 * (args.arith + args.niah) as u64;
    let bar = indicatif::ProgressBar::new(total).with_message("batched path, then sequential");
    let progress = bar.clone();
    let on_sample: autodidact_evals::harness::OnSample = std::sync::Arc::new(move |_, _, _| progress.inc(1));
    let report = autodidact_evals::bench::throughput(&path, args.threads, &sandbox, args.arith, args.niah, args.concurrency, Some(on_sample)).await?;
    bar.finish_and_clear();
    if args.json {
        println!("{report}");
    } else {
        for (k, v) in report.as_object().into_iter().flatten() {
            println!("{k:>12}  {v}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}


async fn bench_model(args: ModelArgs) -> anyhow::Result<std::process::ExitCode> {
    let ModelSpec::Gguf(path) = ModelSpec::parse(&args.model)? else {
        bail!("bench model measures in-process GGUF models; {} is not one", args.model);
    };
    let kv_type = autodidact_runtime::model::llamacpp::KvType::parse(&args.kv_type)?;
    let mut report = bench::measure(&path, args.threads, args.runs, !args.no_flash_attention, kv_type).await?;
    let (pp, g1) = (report["prompt_tok_s"].as_f64().unwrap_or(f64::NAN), report["gen_tok_s_1"].as_f64().unwrap_or(f64::NAN));
    let native = args.native.clone().unwrap_or_else(default_native);
    if native.exists() {
        let out = std::process::Command::new(&native)
            .arg(&path)
            .arg(report["threads"].to_string())
            .arg(report["runs"].to_string())
            .arg(if args.no_flash_attention { "0" } else { "1" })
            .arg(&args.kv_type)
            .output()
            .with_context(|| format!("running {}", native.display()))?;
        if !out.status.success() {
            bail!("{} failed: {}", native.display(), String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| format!("{} printed no JSON", native.display()))?;
        let npp = v["pp512_tok_s"].as_f64().unwrap_or(f64::NAN);
        let ntg = v["tg128_tok_s"].as_f64().unwrap_or(f64::NAN);
        report["native_pp512_tok_s"] = json!(bench::round1(npp));
        report["native_tg128_tok_s"] = json!(bench::round1(ntg));
        report["prompt_vs_native"] = json!(bench::round3(pp / npp));
        report["gen_vs_native"] = json!(bench::round3(g1 / ntg));
    } else {
        report["native"] = json!(format!("not built ({}); run make bench-native", native.display()));
    }
    if args.json {
        println!("{report}");
    } else {
        for (k, v) in report.as_object().into_iter().flatten() {
            println!("{k:>20}  {v}");
        }
    }
    // Let llama.cpp's threads wind down before the process exits.
    std::thread::sleep(Duration::from_millis(10));
    Ok(std::process::ExitCode::SUCCESS)
}

fn default_native() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| autodidact_runtime::model::autodidact_home().join("target"));
    target.join("native").join("llama-bench-lite")
}
