//! The in-process engine's speed (`autodidact bench model`): prompt processing of 512 tokens,
//! generation of 128 tokens for one sequence, for a group of 8 and for 8 requests with
//! different prompts at once (continuous batching), at short context and after a ~1,500-token
//! prompt. Each figure is the median of `runs` repetitions after a warm-up.
//! The report also says which instruction sets llama.cpp was built with and this CPU has, and
//! which buffers hold the weights, since every figure depends on them.

use std::path::Path;

use serde_json::{Value, json};

use super::{KvType, LlamaCppConfig, LlamaCppModel};
use crate::Result;
use crate::model::{Completion, LanguageModel, Message, Sampling};

/// Prompt tokens of the prefill test (llama.cpp's pp512).
pub const PROMPT_TOKENS: usize = 512;
/// Generated tokens per sequence (llama.cpp's tg128).
pub const GEN_TOKENS: usize = 128;
/// Sequences of the group test.
pub const GROUP: usize = 8;
/// Words in the long prompt: about 1,500 tokens with SmolLM2's tokenizer.
const LONG_PROMPT_WORDS: usize = 1_450;

/// Measures the model at `path`. The report's keys: `prompt_tok_s`, `gen_tok_s_1`,
/// `gen_tok_s_8`, `group_speedup`, `group_vs_prefill`, `gen_tok_s_8_mixed` and `mixed_speedup`
/// (eight requests with different prompts at once, prompts included in the time),
/// `long_prompt_tokens`,
/// `gen_tok_s_1_long`, `gen_tok_s_8_long`, `group_speedup_long`, `cpu_model`, `llama_isa`,
/// `cpu_isa`, `weight_buffers`, and the settings (`model`, `threads`, `runs`,
/// `flash_attention`).
pub async fn measure(path: &Path, threads: Option<usize>, runs: usize, flash_attention: bool, kv_type: KvType) -> Result<Value> {
    let runs = runs.max(1);
    let model = LlamaCppModel::load(LlamaCppConfig { path: path.to_path_buf(), threads, flash_attention, kv_type, ..LlamaCppConfig::default() }).await?;
    let threads = model.info().threads;
    let weight_buffers = model.info().weight_buffers.clone();
    let msgs = [Message::user("Write a long story about a lighthouse keeper.")];
    let long_text: Vec<&str> = ["the", "keeper", "climbed", "old", "stairs", "at", "dusk", "and", "lit", "lamp"].iter().copied().cycle().take(LONG_PROMPT_WORDS).collect();
    let long = [Message::user(format!("{}\n\nContinue this story.", long_text.join(" ")))];
    // Exactly GEN_TOKENS per sequence: end-of-generation is held back (budget forcing).
    let sampling = Sampling { min_new_tokens: GEN_TOKENS, ..Sampling::seeded(1.0, 1, GEN_TOKENS) };
    // Eight different prompts at once: continuous batching across requests.
    let mixed: Vec<Vec<Message>> = ["lighthouse keeper", "river pilot", "baker", "astronomer", "beekeeper", "clockmaker", "ferry captain", "gardener"]
        .iter()
        .map(|who| vec![Message::user(format!("Write a long story about a {who}."))])
        .collect();
    let (mut pp, mut g1, mut g8, mut l1, mut l8, mut m8) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut long_tokens = 0;
    for run in 0..=runs {
        let pp_ms = model.prefill_ms(PROMPT_TOKENS).await?;
        let one = model.chat(&msgs, &sampling).await?;
        let group = model.chat_group(&msgs, GROUP, &sampling).await?;
        let long_one = model.chat(&long, &sampling).await?;
        let long_group = model.chat_group(&long, GROUP, &sampling).await?;
        let t = std::time::Instant::now();
        let outs = futures::future::try_join_all(mixed.iter().map(|m| model.chat(m, &sampling))).await?;
        let mixed_s = t.elapsed().as_secs_f64();
        if run == 0 {
            continue; // warm-up
        }
        long_tokens = long_one.usage.prompt_tokens;
        pp.push(PROMPT_TOKENS as f64 / (pp_ms / 1e3));
        g1.push(tok_s(std::slice::from_ref(&one)));
        g8.push(tok_s(&group));
        l1.push(tok_s(std::slice::from_ref(&long_one)));
        l8.push(tok_s(&long_group));
        m8.push(outs.iter().map(|c| c.usage.completion_tokens).sum::<usize>() as f64 / mixed_s);
    }
    drop(model);
    let (pp, g1, g8, l1, l8, m8) = (median(pp), median(g1), median(g8), median(l1), median(l8), median(m8));
    let cpu = super::cpu::report();
    Ok(json!({
        "model": path.display().to_string(),
        "threads": threads,
        "runs": runs,
        "flash_attention": flash_attention,
        "kv_type": kv_type.as_str(),
        "prompt_tok_s": round1(pp),
        "gen_tok_s_1": round1(g1),
        "gen_tok_s_8": round1(g8),
        "group_speedup": round3(g8 / g1),
        "group_vs_prefill": round3(g8 / pp),
        "gen_tok_s_8_mixed": round1(m8),
        "mixed_speedup": round3(m8 / g1),
        "long_prompt_tokens": long_tokens,
        "gen_tok_s_1_long": round1(l1),
        "gen_tok_s_8_long": round1(l8),
        "group_speedup_long": round3(l8 / l1),
        "cpu_model": cpu_model_name(),
        "llama_isa": cpu.compiled,
        "cpu_isa": cpu.cpu,
        "weight_buffers": weight_buffers,
    }))
}

/// Aggregate generation speed of completions decoded together.
fn tok_s(completions: &[Completion]) -> f64 {
    let tokens: usize = completions.iter().map(|c| c.usage.completion_tokens).sum();
    tokens as f64 / (completions[0].timings.generation_ms / 1e3)
}

/// The median (the mean of the two middle values for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// The CPU's model name from `/proc/cpuinfo`, or "unknown".
fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// One decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
