//! `autodidact bench serve`: the HTTP service under load.
//!
//! For each concurrency level N, a fresh server (its own store in a temporary directory, a
//! scripted model that answers every turn with one REPL cell calling `FINAL`, the real
//! sandbox, `max_concurrent_runs = N`) is started on a loopback port. N agents are created
//! through the API and N clients each submit a run, poll it to its end and submit the next,
//! until the time is up; then every acknowledged run id is read back. The report gives
//! completed runs per second, the p50 and p99 latency of a submission (the POST until its
//! 202), and `lost_runs`: acknowledged ids that are missing or did not finish, which must be
//! 0. Throughput "stops rising" at the best level below the first level that gains less than
//! 10% over it (`saturates_at`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use autodidact_runtime::model::{Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage};
use clap::Args;
use serde_json::{Value, json};

use crate::serve::{self, Config};

/// Arguments of `autodidact bench serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Concurrency levels: N agents submitting at once, and N runs executing at once.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub concurrency: Vec<usize>,
    /// Seconds of submitting at each level.
    #[arg(long, default_value_t = 6.0, value_name = "S")]
    pub seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

const REPLY: &str = "```repl\nx = 6 * 7\nFINAL(str(x))\n```";

/// A model that gives the same answering reply forever (the scripted backend's replies run out).
struct AnsweringModel;

#[async_trait]
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

struct Level {
    concurrency: usize,
    runs_per_s: f64,
    completed: usize,
    acknowledged: usize,
    lost_runs: usize,
    submit_p50_ms: f64,
    submit_p99_ms: f64,
    wrong_answers: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn level(concurrency: usize, seconds: f64, dir: &std::path::Path) -> Result<Level> {
    let config = Config {
        bind: "127.0.0.1:0".parse()?,
        db: format!("sqlite://{}", dir.join(format!("bench-{concurrency}.db")).display()),
        model: "scripted:bench-serve".into(),
        max_concurrent_runs: concurrency,
        max_queued: 1_000_000,
        ..Config::default()
    };
    let server = serve::start(config, Some(Arc::new(AnsweringModel))).await?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency * 2).build()?;
    for i in 0..concurrency {
        let r = client.put(format!("{base}/agents/bench-{i}")).json(&json!({})).send().await?;
        if !r.status().is_success() {
            bail!("creating an agent failed: {}", r.text().await?);
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut latencies = Vec::new();
            let mut completed_in_time = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client.post(format!("{base}/agents/bench-{i}/runs")).json(&json!({"task": "What is 6 times 7?"})).send().await?;
                let status = r.status();
                let body: Value = r.json().await?;
                if status.as_u16() != 202 {
                    bail!("a submission was refused ({status}): {body}");
                }
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let id = body["id"].as_str().context("no id in the 202")?.to_owned();
                ids.push(id.clone());
                loop {
                    let v: Value = client.get(format!("{base}/runs/{id}")).send().await?.json().await?;
                    match v["status"].as_str() {
                        Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(5)).await,
                        _ => break,
                    }
                }
                if Instant::now() <= deadline {
                    completed_in_time += 1;
                }
            }
            anyhow::Ok((ids, latencies, completed_in_time))
        }));
    }
    let mut ids = Vec::new();
    let mut latencies = Vec::new();
    let mut completed = 0;
    for t in tasks {
        let (i, l, c) = t.await.context("a bench client panicked")??;
        ids.extend(i);
        latencies.extend(l);
        completed += c;
    }
    let elapsed = started.elapsed().as_secs_f64().min(seconds).max(1e-9);
    // Every acknowledged run must exist and have finished with the answer.
    let mut lost = 0;
    let mut wrong = 0;
    for id in &ids {
        let r = client.get(format!("{base}/runs/{id}")).send().await?;
        if !r.status().is_success() {
            lost += 1;
            continue;
        }
        let v: Value = r.json().await?;
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

/// Runs the benchmark.
pub async fn bench_serve(args: ServeArgs) -> Result<std::process::ExitCode> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs levels of at least 1, e.g. 1,2,4,8");
    }
    if !(args.seconds > 0.0) {
        bail!("--seconds must be positive");
    }
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let mut levels = Vec::new();
    for &c in &args.concurrency {
        if !args.json {
            eprintln!("bench serve: {c} concurrent agent(s) for {:.1}s", args.seconds);
        }
        levels.push(level(c, args.seconds, dir.path()).await?);
    }
    // Throughput stops rising at the best level below the first one that gains less than 10%.
    let mut best: Option<&Level> = None;
    let mut saturation = None;
    for l in &levels {
        if let Some(b) = best
            && l.runs_per_s < b.runs_per_s * 1.10
        {
            saturation = Some(b.concurrency);
            break;
        }
        if best.is_none_or(|b| l.runs_per_s > b.runs_per_s) {
            best = Some(l);
        }
    }
    let lost: usize = levels.iter().map(|l| l.lost_runs).sum();
    if args.json {
        let rows: Vec<Value> = levels
            .iter()
            .map(|l| json!({"concurrency": l.concurrency, "runs_per_s": l.runs_per_s, "completed": l.completed, "acknowledged": l.acknowledged, "lost_runs": l.lost_runs, "wrong_answers": l.wrong_answers, "submit_p50_ms": l.submit_p50_ms, "submit_p99_ms": l.submit_p99_ms}))
            .collect();
        let peak = levels.iter().map(|l| l.runs_per_s).fold(0.0, f64::max);
        println!("{}", json!({"seconds_per_level": args.seconds, "levels": rows, "peak_runs_per_s": peak, "lost_runs": lost, "saturates_at": saturation}));
    } else {
        println!("{:>11} {:>10} {:>9} {:>12} {:>10} {:>15} {:>15}", "concurrency", "runs/s", "completed", "acknowledged", "lost_runs", "submit p50 ms", "submit p99 ms");
        for l in &levels {
            println!("{:>11} {:>10.2} {:>9} {:>12} {:>10} {:>15.2} {:>15.2}", l.concurrency, l.runs_per_s, l.completed, l.acknowledged, l.lost_runs, l.submit_p50_ms, l.submit_p99_ms);
        }
        match saturation {
            Some(c) => println!("throughput stops rising at concurrency {c}: the next level gains less than 10%"),
            None => println!("throughput still rose at the highest level tried"),
        }
    }
    Ok(if lost == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}
