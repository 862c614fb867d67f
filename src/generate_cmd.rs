//! `autodidact generate ...`: replies from a model, as text or as one JSON object.

use std::path::PathBuf;

use anyhow::Context;
use autodidact_runtime::model::{self, Completion, Message, ModelSpec, OpenOptions, Sampling};
use clap::Args;
use serde_json::json;

/// Arguments of `autodidact generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The model: `smollm2` (the bootstrapped GGUF), `path/to/file.gguf`,
    /// `openai:URL#MODEL_NAME` (an OpenAI-compatible server; key from $OPENAI_API_KEY) or
    /// `scripted:PATH` (replies in PATH separated by lines holding only `---`).
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// A GGUF LoRA adapter to load and activate at scale 1 (GGUF models only).
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// How many replies to generate; more than one is a group sharing one prompt evaluation.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub n: usize,
    /// Sampling temperature; 0 (the default) is greedy decoding.
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (1: off).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Seed for sampling, for reproducible replies (default: from the clock).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// The most tokens to generate per reply.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_tokens: usize,
    /// A system message (default: the chat template's own, if it has one).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Threads for in-process models (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print one JSON object: {"completions":[{"text","tokens","token_logprobs",
    /// "finish_reason"}],"usage":{"prompt_tokens","completion_tokens"}}.
    #[arg(long)]
    pub json: bool,
    /// The user's message.
    pub prompt: String,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(generate(args))
}

async fn generate(args: GenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    let spec = ModelSpec::parse(&args.model)?;
    let mut options = OpenOptions::default();
    options.llamacpp.threads = args.threads;
    let lm = model::open(&spec, &options).await?;
    if let Some(path) = &args.adapter {
        let id = lm.load_adapter(path).await?;
        lm.set_adapter(Some((id, 1.0))).await?;
    }
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(args.prompt.clone()));
    let sampling = Sampling {
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        max_new_tokens: args.max_tokens,
        ..Sampling::default()
    };
    let completions = lm.chat_group(&messages, args.n, &sampling).await?;
    if args.json {
        println!("{}", to_json(&completions));
    } else {
        for (i, c) in completions.iter().enumerate() {
            if completions.len() > 1 {
                println!("--- {} ---", i + 1);
            }
            println!("{}", c.text);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn to_json(completions: &[Completion]) -> serde_json::Value {
    let items: Vec<_> = completions
        .iter()
        .map(|c| {
            json!({
                "text": c.text,
                "tokens": c.tokens,
                "token_logprobs": c.token_logprobs,
                "finish_reason": c.finish_reason.as_str(),
            })
        })
        .collect();
    // The prompt is evaluated once per group, so it is counted once.
    let prompt_tokens = completions.first().map(|c| c.usage.prompt_tokens).unwrap_or(0);
    let completion_tokens: usize = completions.iter().map(|c| c.usage.completion_tokens).sum();
    json!({
        "completions": items,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })
}
