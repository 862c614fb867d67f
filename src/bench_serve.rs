//! `autodidact bench serve`: the HTTP service under load, one fresh server per concurrency
//! level (`autodidact_serve::bench`, which says what is measured). This module parses the
//! flags and prints the table or the JSON.

use anyhow::{Context, Result, bail};
use autodidact_serve::bench::{self, Level};
use clap::Args;
use serde_json::{Value, json};

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
        levels.push(bench::level(c, args.seconds, dir.path()).await?);
    }
    let saturation = bench::saturates_at(&levels);
    let lost: usize = levels.iter().map(|l| l.lost_runs).sum();
    if args.json {
        let rows: Vec<Value> = levels
            .iter()
            .map(|l: &Level| json!({"concurrency": l.concurrency, "runs_per_s": l.runs_per_s, "completed": l.completed, "acknowledged": l.acknowledged, "lost_runs": l.lost_runs, "wrong_answers": l.wrong_answers, "submit_p50_ms": l.submit_p50_ms, "submit_p99_ms": l.submit_p99_ms}))
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
