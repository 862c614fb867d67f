//! `autodidact trainer ...`: checks of the trainer against the serving engine.
//!
//! `trainer parity` scores fixed texts (about 256 tokens each) as replies to a fixed prompt
//! twice: with the llama.cpp backend (`LanguageModel::score`, the quantized GGUF as served) and
//! with the trainer's candle model (the same GGUF dequantized to f32). Token ids come from
//! llama.cpp (`LlamaCppModel::score_detailed`), so both engines see the same sequence. The
//! report compares per-token log-probs and the most likely token at each position. The two
//! cannot agree exactly: llama.cpp multiplies quantized weights (Q4_1 blocks against Q8
//! activations) while the trainer multiplies their f32 dequantization.

use std::path::PathBuf;

use anyhow::Context;
use autodidact_nightly::parity::{PARITY_TEXTS, measure, random_adapter};
use clap::{Args, Subcommand};
use serde_json::json;

/// `autodidact trainer` subcommands.
#[derive(Subcommand)]
pub enum TrainerCmd {
    /// Compare the trainer's per-token log-probs with llama.cpp's on fixed texts.
    Parity(ParityArgs),
}

/// Arguments of `autodidact trainer parity`.
#[derive(Args)]
pub struct ParityArgs {
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Score only the first N texts (1 to 3; default all).
    #[arg(long, value_name = "N")]
    pub texts: Option<usize>,
    /// Also compare what a GGUF LoRA adapter does in both engines: the correlation of the
    /// per-token log-prob changes it causes (`adapter_delta_correlation`).
    #[arg(long, value_name = "FILE", conflicts_with = "random_adapter")]
    pub adapter: Option<PathBuf>,
    /// Like `--adapter`, with a random rank-8 adapter on every target (this seed), exported to
    /// a temporary GGUF and loaded back by both engines.
    #[arg(long, value_name = "SEED")]
    pub random_adapter: Option<u64>,
    /// The standard deviation of the random adapter's B entries. The default, 0.1, changes
    /// log-probs by about 0.5 nats per token, well above llama.cpp's own noise: any change to
    /// the activations re-rolls their 8-bit quantization, which alone moves log-probs by about
    /// 0.07 (the size of the engines' base difference), so weak adapters correlate less
    /// (measured on one text: std 0.005 → 0.46, 0.02 → 0.84, 0.05 → 0.95, 0.1 → 0.99).
    #[arg(long, default_value_t = 0.1, value_name = "STD")]
    pub random_adapter_std: f64,
    /// Print one JSON object: {"mean_abs_logprob_diff","max_abs_logprob_diff",
    /// "argmax_agreement","tokens","texts"}, plus "adapter_delta_correlation" and
    /// "adapter_mean_abs_delta" with an adapter.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: TrainerCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        TrainerCmd::Parity(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(parity(args))
        }
    }
}

async fn parity(args: ParityArgs) -> anyhow::Result<std::process::ExitCode> {
    let path = args.model.unwrap_or_else(autodidact_runtime::model::smollm2_path);
    let k = args.texts.unwrap_or(PARITY_TEXTS.len()).clamp(1, PARITY_TEXTS.len());
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let adapter = match (args.adapter, args.random_adapter) {
        (Some(p), _) => Some(p),
        (None, Some(seed)) => Some(random_adapter(&path, seed, args.random_adapter_std, tmp.path())?),
        (None, None) => None,
    };
    let p = measure(path, args.threads, &PARITY_TEXTS[..k], adapter).await?;
    let mut v = json!({
        "mean_abs_logprob_diff": p.mean_abs_logprob_diff,
        "max_abs_logprob_diff": p.max_abs_logprob_diff,
        "argmax_agreement": p.argmax_agreement,
        "tokens": p.tokens,
        "texts": k,
    });
    if let (Some(c), Some(d)) = (p.adapter_delta_correlation, p.adapter_mean_abs_delta) {
        v["adapter_delta_correlation"] = json!(c);
        v["adapter_delta_slope"] = json!(p.adapter_delta_slope);
        v["adapter_mean_abs_delta"] = json!(d);
    }
    if args.json {
        println!("{v}");
    } else {
        println!("texts                  {k} ({:?} tokens)", p.tokens);
        println!("mean |Δ log-prob|      {:.4}", p.mean_abs_logprob_diff);
        println!("max  |Δ log-prob|      {:.4}", p.max_abs_logprob_diff);
        println!("argmax agreement       {:.4}", p.argmax_agreement);
        if let (Some(c), Some(d)) = (p.adapter_delta_correlation, p.adapter_mean_abs_delta) {
            println!("adapter Δ correlation  {c:.4} (mean |Δ| {d:.4})");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
