//! `autodidact bench eval`: eval items per minute, one prompt at a time against continuous
//! batching, on the same items in the same run.
//!
//! The items are the first 32 `arith` and 8 `niah` eval items, under the `eval` preset, on the
//! in-process model with no adapter. The **sequential** path is what every eval and night ran
//! before continuous batching: one run at a time, every turn's prompt evaluated from scratch
//! (`reuse_prefixes = false`). The **batched** path runs `concurrency` agents at once on one
//! model, whose turns decode together and share KV cells by prefix. Nothing is stored: the
//! bench measures the loop, not the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use autodidact_memory::Split;
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::bench::round1;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::suite::Suite;
use crate::{HarnessOptions, Result, builtin, run_suite};

/// The suite both paths run: `arith` then `niah` eval items.
pub fn suite(arith: usize, niah: usize) -> Result<Suite> {
    let mut items = builtin::generate("arith", Split::Eval, arith)?.items;
    items.extend(builtin::generate("niah", Split::Eval, niah)?.items);
    Ok(Suite { name: format!("bench-eval-arith{arith}-niah{niah}"), items })
}

/// One path's figures.
async fn measure(path: &Path, threads: Option<usize>, sandbox: &Sandbox, suite: &Suite, concurrency: usize, reuse: bool, on_sample: Option<crate::harness::OnSample>) -> Result<Value> {
    let config = LlamaCppConfig { path: path.to_path_buf(), threads, reuse_prefixes: reuse, ..LlamaCppConfig::default() };
    let model = Arc::new(LlamaCppModel::load(config).await?);
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), Policy::preset_eval())?.with_name("bench-eval"));
    let opts = HarnessOptions {
        k: 1,
        concurrency,
        adapter_id: None,
        writer: None,
        sandbox: sandbox.clone(),
        on_sample,
        lessons: false,
        existing_tasks: Default::default(),
    };
    let started = Instant::now();
    let report = run_suite(agent, suite, &opts).await?;
    let secs = started.elapsed().as_secs_f64();
    let kv = model.kv_state().await?;
    let samples: Vec<&crate::Sample> = report.items.iter().flat_map(|i| &i.samples).collect();
    let count = |stop: &str| samples.iter().filter(|s| s.stop == stop).count();
    Ok(json!({
        "concurrency": concurrency,
        "reuse_prefixes": reuse,
        "seconds": round1(secs),
        "items_per_min": round1(report.n as f64 / (secs / 60.0)),
        "pass_at_1": report.pass_at_1,
        "by_family": report.by_family,
        "mean_tokens": round1(report.mean_tokens),
        "answered": count("answered"),
        "budget_exceeded": count("budget_exceeded"),
        "host_errors": report.host_errors().len(),
        "prompt_tokens_evaluated": kv.evaluated_tokens,
        "prompt_tokens_reused": kv.reused_tokens,
    }))
}

/// Runs the suite both ways and reports each path and the speed-up.
pub async fn throughput(path: &Path, threads: Option<usize>, sandbox: &Sandbox, arith: usize, niah: usize, concurrency: usize, on_sample: Option<crate::harness::OnSample>) -> Result<Value> {
    let suite = suite(arith, niah)?;
    let batched = measure(path, threads, sandbox, &suite, concurrency.max(1), true, on_sample.clone()).await?;
    let sequential = measure(path, threads, sandbox, &suite, 1, false, on_sample).await?;
    let speedup = batched["items_per_min"].as_f64().unwrap_or(0.0) / sequential["items_per_min"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "items": suite.items.len(),
        "arith": arith,
        "niah": niah,
        "batched": batched,
        "sequential": sequential,
        "speedup": (speedup * 1000.0).round() / 1000.0,
    }))
}
