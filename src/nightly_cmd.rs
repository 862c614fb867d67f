//! `autodidact nightly`: one night of self-improvement, stage by stage, resumable. The night
//! itself is `autodidact_nightly::Night`; this module parses the flags, prints progress and
//! the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use autodidact_memory::{Store, StoreOptions};
use autodidact_nightly::{Night, NightEvent, NightOptions, Outcome, STAGES};
use autodidact_policies::Policy;
use clap::Args;
use serde_json::Value;

/// `autodidact nightly` arguments.
#[derive(Args)]
#[command(after_help = "Stages: gather, curriculum, rollouts, train, eval_promoted, eval_candidate, \
    gate, consolidate, report. Each finished stage is recorded in memory; run the command again \
    after a kill and the night resumes at the first unfinished stage. Sizes come from the policy's \
    [nightly] section. With promotion.target_suite = \"any\" (the default) the night trains every \
    family in nightly.families that has room to grow: the curriculum puts each at its lowest level \
    not yet passed 75% of the time and shares the train items by how mixed their outcomes are; \
    a named target trains its own family. --quick is the demo: the toy family, scored on toy and \
    arith, with a small plan (6 train tasks, 16 eval items per suite, 2-turn runs of 128-token \
    turns). The exit code is 0 whether the candidate is promoted or rejected.")]
pub struct NightlyArgs {
    /// A policy TOML file ([training], [promotion], [nightly] and [prompt] sections; default:
    /// the built-in preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Wall-clock budget, e.g. `2h`, `45m`, `900s`. Training stops early to leave time for the
    /// evaluations; a stage already running is finished.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    budget: Option<Duration>,
    /// The demo: the toy family with a small plan (about 7 minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object: before, after, decision, evidence, report.
    #[arg(long)]
    json: bool,
    /// The trajectory store (default: $AUTODIDACT_DB, or sqlite://$AUTODIDACT_HOME/memory.db).
    #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
    db: Option<String>,
    /// The base GGUF (default: the bootstrapped SmolLM2).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Seed of item choice, sampling and training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Abandon an unfinished night (marked failed) instead of resuming it.
    #[arg(long)]
    fresh: bool,
    /// Where the night's adapters and report go (default: adapters in $AUTODIDACT_HOME/nights,
    /// the report in $AUTODIDACT_HOME/reports, where `serve` lists it); each night gets its own
    /// folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Agent runs in flight at once in rollouts, LADDER and evals; the model decodes their
    /// turns together. 1 runs one at a time.
    #[arg(long, value_name = "N", default_value_t = autodidact_nightly::night::DEFAULT_PARALLEL)]
    parallel: usize,
    /// Stop after this stage, leaving the night open (to inspect it, or to test resuming).
    #[arg(long, value_name = "STAGE", value_parser = STAGES)]
    stop_after: Option<String>,
}

/// Parses `90s`, `45m`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let x: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 90s, 45m or 2h"))?;
    let secs = match unit.trim() {
        "s" | "sec" => x,
        "m" | "min" => x * 60.0,
        "h" => x * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{s}` (s, m or h)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(args: NightlyArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: NightlyArgs) -> Result<ExitCode> {
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let url = args.db.clone().unwrap_or_else(autodidact_memory::default_url);
    let store = Arc::new(Store::open_with(StoreOptions::new(url)).await?);
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let options = NightOptions {
        policy,
        policy_path: args.policy.clone(),
        budget: args.budget,
        quick: args.quick,
        model_path: args.model.clone().unwrap_or_else(autodidact_runtime::model::smollm2_path),
        threads: args.threads,
        seed: args.seed,
        fresh: args.fresh,
        out: args.out.clone(),
        stop_after: args.stop_after.clone(),
        parallel: args.parallel,
    };
    // Progress lines carry the seconds since the night's engines were ready, unless --json.
    let started: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let (clock, quiet) = (started.clone(), args.json);
    let mut night = Night::open(store, options, move |event| match event {
        NightEvent::Note(msg) => eprintln!("{msg}"),
        NightEvent::Progress(msg) if quiet => eprintln!("{msg}"),
        NightEvent::Progress(msg) => {
            eprintln!("[{:>6.0}s] {msg}", clock.get_or_init(Instant::now).elapsed().as_secs_f64())
        }
    })
    .await?;
    started.get_or_init(Instant::now);
    match night.run().await? {
        Outcome::Stopped { .. } => {}
        Outcome::Finished(summary) if args.json => println!("{summary}"),
        Outcome::Finished(summary) => print_summary(&summary),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &Value) {
    let pct = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{:.1}%", 100.0 * x));
    println!("night     {}", s["night"].as_str().unwrap_or(""));
    println!("target    {}", s["before"]["suite"].as_str().unwrap_or(""));
    println!("before    pass@1 {} (n = {})", pct(&s["before"]["pass_at_1"]), s["before"]["n"]);
    println!("after     pass@1 {} (n = {})", pct(&s["after"]["pass_at_1"]), s["after"]["n"]);
    if let Some(by) = s["after"]["by_suite"].as_object() {
        for (suite, after) in by {
            println!("  {suite:<10} {} -> {}", pct(&s["before"]["by_suite"][suite]), pct(after));
        }
    }
    println!("decision  {} ({})", s["decision"].as_str().unwrap_or("-"), s["reason"].as_str().unwrap_or(""));
    let picks: Vec<String> = s["curriculum"].as_array().into_iter().flatten().filter(|p| p["items"].as_u64().unwrap_or(0) > 0).map(|p| format!("{} L{} x{}", p["family"].as_str().unwrap_or("?"), p["level"], p["items"])).collect();
    if !picks.is_empty() {
        println!("trained   {}", picks.join(", "));
    }
    for u in s["user_tasks"].as_array().into_iter().flatten() {
        let prompt: String = u["prompt"].as_str().unwrap_or("").chars().take(60).collect();
        println!("retried   {} {}/{} \"{prompt}\"", u["task_id"].as_str().unwrap_or("?"), u["passed"], u["attempts"]);
    }
    if let Some(stages) = s["stage_seconds"].as_object() {
        let times: Vec<String> = stages.iter().map(|(k, v)| format!("{k} {:.0}s", v.as_f64().unwrap_or(0.0))).collect();
        println!("stages    {}", times.join(", "));
    }
    println!("report    {}", s["report"].as_str().unwrap_or("-"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("45m").unwrap(), Duration::from_secs(2700));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("2 fortnights").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
    }
}
