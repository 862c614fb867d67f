//! The service under load (`autodidact bench serve`).
//!
//! For a concurrency level N, [`level`] starts a fresh server (its own store in `dir`, a model
//! that answers every turn with one REPL cell calling `FINAL`, the real sandbox,
//! `max_concurrent_runs = N`) on a loopback port. N agents are created through the API and N
//! clients each submit a run, poll it to its end and submit the next, until the time is up;
//! then every acknowledged run id is read back. A [`Level`] gives completed runs per second,
//! the p50 and p99 latency of a submission (the POST until its 202), and `lost_runs`:
//! acknowledged ids that are missing or did not finish, which must be 0. [`saturates_at`]
//! says where throughput stops rising.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autodidact_runtime::model::{Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage};
use serde_json::{Value, json};

use crate::{Config, Error, Result};

const REPLY: &str = "```repl\nx = 6 * 7\nFINAL(str(x))\n```";

/// A model that gives the same answering reply forever (the scripted backend's replies run out).
struct AnsweringModel;

#[async_trait::async_trait]
impl LanguageModel for AnsweringModel {
    fn describe(&self) -> String {
        "scripted:bench-serve".into()
    }
    fn backend_name(&self) -> &'static str {
        "scripted"
    }
    async fn chat_group(&self, messages: &[Message], n: usize, _sampling: &Sampling) -> autodidact_runtime::Result<Vec<Completion>> {
        let prompt: usize = messages.iter().map(|m| m.content.len()).sum();
        Ok((0..n)
            .map(|_| Completion {
                text: REPLY.into(),
                tokens: Vec::new(),
                token_logprobs: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage: Usage { prompt_tokens: prompt.div_ceil(4), completion_tokens: REPLY.len().div_ceil(4) },
                timings: Timings::default(),
            })
            .collect())
    }
}

/// One concurrency level's figures.
#[derive(Debug, Clone)]
pub struct Level {
    /// Agents submitting at once, and runs executing at once.
    pub concurrency: usize,
    /// Runs completed within the time, per second.
    pub runs_per_s: f64,
    /// Runs completed within the time.
    pub completed: usize,
    /// Submissions answered 202.
    pub acknowledged: usize,
    /// Acknowledged runs missing or unfinished afterwards (must be 0).
    pub lost_runs: usize,
    /// Median submission latency (ms).
    pub submit_p50_ms: f64,
    /// 99th-percentile submission latency (ms).
    pub submit_p99_ms: f64,
    /// Finished runs whose answer was not 42.
    pub wrong_answers: usize,
}

/// An error of the load's HTTP client.
fn client(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("bench serve: {e}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Loads a fresh server (its store in `dir`) with `concurrency` clients for `seconds`.
pub async fn level(concurrency: usize, seconds: f64, dir: &std::path::Path) -> Result<Level> {
    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        db: format!("sqlite://{}", dir.join(format!("bench-{concurrency}.db")).display()),
        model: "scripted:bench-serve".into(),
        max_concurrent_runs: concurrency,
        max_queued: 1_000_000,
        ..Config::default()
    };
    let server = crate::start(config, Some(Arc::new(AnsweringModel))).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency * 2).build().map_err(client)?;
    for i in 0..concurrency {
        let r = http.put(format!("{base}/agents/bench-{i}")).json(&json!({})).send().await.map_err(client)?;
        if !r.status().is_success() {
            return Err(client(format!("creating an agent failed: {}", r.text().await.unwrap_or_default())));
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let (http, base) = (http.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut latencies = Vec::new();
            let mut completed_in_time = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http.post(format!("{base}/agents/bench-{i}/runs")).json(&json!({"task": "What is 6 times 7?"})).send().await.map_err(client)?;
                let status = r.status();
                let body: Value = r.json().await.map_err(client)?;
                if status.as_u16() != 202 {
                    return Err(client(format!("a submission was refused ({status}): {body}")));
                }
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let id = body["id"].as_str().ok_or_else(|| client("no id in the 202"))?.to_owned();
                ids.push(id.clone());
                loop {
                    let v: Value = http.get(format!("{base}/runs/{id}")).send().await.map_err(client)?.json().await.map_err(client)?;
                    match v["status"].as_str() {
                        Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(5)).await,
                        _ => break,
                    }
                }
                if Instant::now() <= deadline {
                    completed_in_time += 1;
                }
            }
            Ok::<_, Error>((ids, latencies, completed_in_time))
        }));
    }
    let mut ids = Vec::new();
    let mut latencies = Vec::new();
    let mut completed = 0;
    for t in tasks {
        let (i, l, c) = t.await.map_err(|e| client(format!("a bench client panicked: {e}")))??;
        ids.extend(i);
        latencies.extend(l);
        completed += c;
    }
    let elapsed = started.elapsed().as_secs_f64().min(seconds).max(1e-9);
    // Every acknowledged run must exist and have finished with the answer.
    let mut lost = 0;
    let mut wrong = 0;
    for id in &ids {
        let r = http.get(format!("{base}/runs/{id}")).send().await.map_err(client)?;
        if !r.status().is_success() {
            lost += 1;
            continue;
        }
        let v: Value = r.json().await.map_err(client)?;
        if v["status"] != "done" {
            lost += 1;
        } else if v["answer"] != "42" {
            wrong += 1;
        }
    }
    server.shutdown();
    server.wait().await?;
    latencies.sort_by(f64::total_cmp);
    Ok(Level {
        concurrency,
        runs_per_s: completed as f64 / elapsed,
        completed,
        acknowledged: ids.len(),
        lost_runs: lost,
        submit_p50_ms: percentile(&latencies, 50.0),
        submit_p99_ms: percentile(&latencies, 99.0),
        wrong_answers: wrong,
    })
}

/// Where throughput stops rising: the best level below the first one that gains less than
/// 10% over it (`None`: it still rose at the highest level tried).
pub fn saturates_at(levels: &[Level]) -> Option<usize> {
    let mut best: Option<&Level> = None;
    for l in levels {
        if let Some(b) = best
            && l.runs_per_s < b.runs_per_s * 1.10
        {
            return Some(b.concurrency);
        }
        if best.is_none_or(|b| l.runs_per_s > b.runs_per_s) {
            best = Some(l);
        }
    }
    None
}
