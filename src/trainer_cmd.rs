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

use anyhow::{Context, bail};
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message};
use autodidact_trainer::{BaseModel, DType};
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
    /// Print one JSON object: {"mean_abs_logprob_diff","max_abs_logprob_diff",
    /// "argmax_agreement","tokens","texts"}.
    #[arg(long)]
    pub json: bool,
}

/// The prompt every parity text answers.
const PROMPT: &str = "Write a few paragraphs, in any style you like.";

/// Fixed replies of about 256 tokens each: prose, Python in an RLM-style ```repl block, and
/// arithmetic in words and digits.
pub const PARITY_TEXTS: [&str; 3] = [
    "The lighthouse stood on a narrow spit of rock at the edge of the bay, and for forty years \
     the same family had kept its lamp burning. Every evening, just before the sun touched the \
     water, the keeper climbed the one hundred and twelve steps of the spiral staircase, \
     trimmed the wick, polished the great lens and wound the clockwork that turned it. The \
     light swept across the waves every ten seconds, and the fishermen of the village set \
     their course by it when they came home late. In winter the storms were so strong that \
     the whole tower seemed to shake, and salt spray reached the gallery rail. The keeper's \
     daughter kept a logbook of every ship that passed: its name, the direction it sailed, the \
     weather and the state of the sea. Over the years the book grew into a shelf of books, and \
     the shelf into a small library that scholars from the city came to read. When the light \
     was finally automated, the family moved to a cottage on the hill, but the daughter still \
     walked down to the rocks each evening to watch the beam come on by itself.",
    "Let me compute the answer step by step in the REPL.\n```repl\nnumbers = [14, 95, 98, 23, \
     7, 61, 42, 88, 5, 30]\ntotal = 0\nfor n in numbers:\n    if n % 2 == 0:\n        total \
     += n * 2\n    else:\n        total -= n\nprint(total)\n```\nThe loop doubles the even \
     numbers and subtracts the odd ones. Next I check the result with a list comprehension, \
     which should print the same value.\n```repl\ncheck = sum(2 * n if n % 2 == 0 else -n for \
     n in numbers)\nprint(check, check == total)\n```\nBoth values agree, so the answer is \
     ready. I will also compute the mean and the largest element, because the task asks for \
     a short summary of the list.\n```repl\nmean = sum(numbers) / len(numbers)\nlargest = \
     max(numbers)\nsummary = {\"total\": total, \"mean\": mean, \"largest\": largest}\n\
     print(summary)\nanswer = {\"content\": str(total), \"ready\": True}\n```\nThe final \
     answer has been stored in the answer dictionary.",
    "To add 347 and 589, start with the ones: 7 plus 9 is 16, so write 6 and carry 1. Then \
     the tens: 4 plus 8 is 12, plus the carried 1 makes 13, so write 3 and carry 1. Finally \
     the hundreds: 3 plus 5 is 8, plus 1 makes 9. The sum is 936. To check it, subtract: 936 \
     minus 589 is 347, which is where we started. Multiplication works the same way with more \
     bookkeeping. For 23 times 47, multiply 23 by 7 to get 161, then 23 by 40 to get 920, and \
     add the two partial products: 161 plus 920 is 1081. Division reverses it: 1081 divided \
     by 47 is 23 with no remainder. Percentages are fractions of one hundred, so 15 percent \
     of 80 is 0.15 times 80, which is 12. If a price of 80 dollars rises by 15 percent, the \
     new price is 92 dollars; if it then falls by 15 percent, it becomes 78.2 dollars, not 80, \
     because the second change is taken from the larger number. Averages divide a total by a \
     count: the mean of 4, 8 and 15 is 27 divided by 3, which is 9.",
];

pub fn run(cmd: TrainerCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        TrainerCmd::Parity(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(parity(args))
        }
    }
}

/// What `trainer parity` measures.
pub struct Parity {
    /// Mean of |trainer log-prob − llama.cpp log-prob| over all scored tokens.
    pub mean_abs_logprob_diff: f64,
    /// The largest such difference.
    pub max_abs_logprob_diff: f64,
    /// Fraction of positions where both engines' most likely token is the same.
    pub argmax_agreement: f64,
    /// Tokens scored, per text.
    pub tokens: Vec<usize>,
}

/// Scores the texts with both engines and compares them.
pub async fn measure(model_path: PathBuf, threads: Option<usize>, texts: &[&str]) -> anyhow::Result<Parity> {
    let config = LlamaCppConfig { path: model_path.clone(), threads, ..LlamaCppConfig::default() };
    let llama = LlamaCppModel::load(config).await?;
    let messages = [Message::user(PROMPT)];
    let mut scored = Vec::new();
    for text in texts {
        let detail = llama.score_detailed(&messages, text).await?;
        // The trait's `score` is what rollouts and evals use; it must be the same numbers.
        let plain = llama.score(&messages, text).await?;
        if plain != detail.logprobs {
            bail!("LanguageModel::score and score_detailed disagree");
        }
        scored.push(detail);
    }
    drop(llama);
    let base = BaseModel::load_gguf(&model_path, DType::F32)
        .with_context(|| format!("loading {} into the trainer", model_path.display()))?;
    let (mut sum, mut max, mut agree, mut n) = (0.0f64, 0.0f64, 0usize, 0usize);
    let mut tokens = Vec::new();
    for s in &scored {
        let seqs = [(&s.prompt_tokens[..], &s.completion_tokens[..])];
        let (logp, argmax) = base.completion_scores(&seqs, None)?;
        if logp.len() != s.logprobs.len() || argmax.len() != s.argmax.len() {
            bail!("the engines scored different numbers of tokens ({} and {})", logp.len(), s.logprobs.len());
        }
        for i in 0..logp.len() {
            let d = (logp[i] - s.logprobs[i] as f64).abs();
            sum += d;
            max = max.max(d);
            agree += usize::from(argmax[i] == s.argmax[i]);
        }
        n += logp.len();
        tokens.push(logp.len());
    }
    if n == 0 {
        bail!("no tokens were scored");
    }
    Ok(Parity {
        mean_abs_logprob_diff: sum / n as f64,
        max_abs_logprob_diff: max,
        argmax_agreement: agree as f64 / n as f64,
        tokens,
    })
}

async fn parity(args: ParityArgs) -> anyhow::Result<std::process::ExitCode> {
    let path = args.model.unwrap_or_else(autodidact_runtime::model::smollm2_path);
    let k = args.texts.unwrap_or(PARITY_TEXTS.len()).clamp(1, PARITY_TEXTS.len());
    let p = measure(path, args.threads, &PARITY_TEXTS[..k]).await?;
    let v = json!({
        "mean_abs_logprob_diff": p.mean_abs_logprob_diff,
        "max_abs_logprob_diff": p.max_abs_logprob_diff,
        "argmax_agreement": p.argmax_agreement,
        "tokens": p.tokens,
        "texts": k,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("texts                  {k} ({:?} tokens)", p.tokens);
        println!("mean |Δ log-prob|      {:.4}", p.mean_abs_logprob_diff);
        println!("max  |Δ log-prob|      {:.4}", p.max_abs_logprob_diff);
        println!("argmax agreement       {:.4}", p.argmax_agreement);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
