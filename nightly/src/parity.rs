//! The trainer against the serving engine (`autodidact trainer parity`).
//!
//! Fixed texts (about 256 tokens each) are scored as replies to a fixed prompt twice: with the
//! llama.cpp backend (`LanguageModel::score`, the quantized GGUF as served) and with the
//! trainer's candle model (the same GGUF dequantized to f32). Token ids come from llama.cpp
//! (`LlamaCppModel::score_detailed`), so both engines see the same sequence. The report
//! compares per-token log-probs and the most likely token at each position. The two cannot
//! agree exactly: llama.cpp multiplies quantized weights (Q4_1 blocks against Q8 activations)
//! while the trainer multiplies their f32 dequantization.

use std::path::{Path, PathBuf};

use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message};
use autodidact_trainer::{BaseModel, DType, LoraAdapter, LoraConfig, Rng};

use crate::error::{Context, Error, Result};

/// The prompt every parity text answers.
pub const PROMPT: &str = "Write a few paragraphs, in any style you like.";

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

/// What `trainer parity` measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Parity {
    /// Mean of |trainer log-prob − llama.cpp log-prob| over all scored tokens.
    pub mean_abs_logprob_diff: f64,
    /// The largest such difference.
    pub max_abs_logprob_diff: f64,
    /// Fraction of positions where both engines' most likely token is the same.
    pub argmax_agreement: f64,
    /// Tokens scored, per text.
    pub tokens: Vec<usize>,
    /// With an adapter: Pearson correlation of the per-token log-prob changes it causes in the
    /// trainer and in llama.cpp.
    pub adapter_delta_correlation: Option<f64>,
    /// With an adapter: the least-squares slope of llama.cpp's changes on the trainer's (1 if
    /// both engines apply the adapter at the same scale).
    pub adapter_delta_slope: Option<f64>,
    /// With an adapter: mean |change| of llama.cpp's log-probs.
    pub adapter_mean_abs_delta: Option<f64>,
}

/// Scores the texts with both engines and compares them.
pub async fn measure(model_path: PathBuf, threads: Option<usize>, texts: &[&str], adapter: Option<PathBuf>) -> Result<Parity> {
    let config = LlamaCppConfig { path: model_path.clone(), threads, ..LlamaCppConfig::default() };
    let llama = LlamaCppModel::load(config).await?;
    let messages = [Message::user(PROMPT)];
    let mut scored = Vec::new();
    for text in texts {
        let detail = llama.score_detailed(&messages, text).await?;
        // The trait's `score` is what rollouts and evals use; it must be the same numbers.
        let plain = llama.score(&messages, text).await?;
        if plain != detail.logprobs {
            return Err(Error::Invalid("LanguageModel::score and score_detailed disagree".into()));
        }
        scored.push(detail);
    }
    let mut adapted = Vec::new();
    if let Some(path) = &adapter {
        let id = llama.load_adapter(path).await.context_with(|| format!("llama.cpp loading {}", path.display()))?;
        llama.set_adapter(Some((id, 1.0))).await?;
        for text in texts {
            adapted.push(llama.score(&messages, text).await?);
        }
        llama.unload_adapter(id).await?;
    }
    drop(llama);
    let base = BaseModel::load_gguf(&model_path, DType::F32)
        .context_with(|| format!("loading {} into the trainer", model_path.display()))?;
    let (mut sum, mut max, mut agree, mut n) = (0.0f64, 0.0f64, 0usize, 0usize);
    let mut tokens = Vec::new();
    let lora = match &adapter {
        Some(path) => Some(LoraAdapter::load_gguf(path, DType::F32).context_with(|| format!("trainer loading {}", path.display()))?.0),
        None => None,
    };
    let (mut d_trainer, mut d_llama) = (Vec::new(), Vec::new());
    for (k, s) in scored.iter().enumerate() {
        let seqs = [(&s.prompt_tokens[..], &s.completion_tokens[..])];
        let (logp, argmax) = base.completion_scores(&seqs, None)?;
        if logp.len() != s.logprobs.len() || argmax.len() != s.argmax.len() {
            return Err(Error::Invalid(format!("the engines scored different numbers of tokens ({} and {})", logp.len(), s.logprobs.len())));
        }
        for i in 0..logp.len() {
            let d = (logp[i] - s.logprobs[i] as f64).abs();
            sum += d;
            max = max.max(d);
            agree += usize::from(argmax[i] == s.argmax[i]);
        }
        n += logp.len();
        tokens.push(logp.len());
        if let Some(lora) = &lora {
            let (with, _) = base.completion_scores(&seqs, Some(lora))?;
            if adapted[k].len() != with.len() {
                return Err(Error::Invalid("the engines scored different numbers of tokens with the adapter".into()));
            }
            for i in 0..with.len() {
                d_trainer.push(with[i] - logp[i]);
                d_llama.push(adapted[k][i] as f64 - s.logprobs[i] as f64);
            }
        }
    }
    if n == 0 {
        return Err(Error::Invalid("no tokens were scored".into()));
    }
    Ok(Parity {
        mean_abs_logprob_diff: sum / n as f64,
        max_abs_logprob_diff: max,
        argmax_agreement: agree as f64 / n as f64,
        tokens,
        adapter_delta_correlation: lora.as_ref().map(|_| pearson(&d_trainer, &d_llama).0),
        adapter_delta_slope: lora.as_ref().map(|_| pearson(&d_trainer, &d_llama).1),
        adapter_mean_abs_delta: lora.as_ref().map(|_| d_llama.iter().map(|d| d.abs()).sum::<f64>() / d_llama.len().max(1) as f64),
    })
}

/// Pearson's correlation of `x` and `y`, and the slope of `y` regressed on `x`.
fn pearson(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len().min(y.len()).max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxy / (sxx * syy).sqrt(), sxy / sxx)
}

/// Writes a random rank-8 adapter on every target of `model_path` (B entries with standard
/// deviation `std`, from `seed`) to `dir/random-adapter.gguf` and returns its path.
pub fn random_adapter(model_path: &Path, seed: u64, std: f64, dir: &Path) -> Result<PathBuf> {
    let base = BaseModel::load_gguf(model_path, DType::F32).context_with(|| format!("loading {}", model_path.display()))?;
    let c = base.config.clone();
    let mut rng = Rng::new(seed);
    let lora = LoraAdapter::init(LoraConfig::default(), c.n_layer, |t| c.shape_of(t), DType::F32, &mut rng)?;
    lora.randomize_b(std, &mut rng)?;
    let file = dir.join("random-adapter.gguf");
    lora.export_gguf(&file, &c.architecture)?;
    Ok(file)
}
