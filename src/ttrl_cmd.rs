//! `autodidact ttrl`: test-time RL on one hard task, then roll back. The run itself is
//! `autodidact_nightly::ttrl`; this module parses the flags, shows progress and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use autodidact_memory::{Store, default_url};
use autodidact_nightly::ttrl::{TtrlOptions, TtrlProgress, ttrl};
use autodidact_policies::Policy;
use clap::Args;
use serde_json::json;

/// `autodidact ttrl` arguments.
#[derive(Args)]
#[command(after_help = "The task must be in memory with its answer and verifier (tasks that \
    `autodidact eval` ran are). Attempts and rollouts are plain replies that end with a line \
    `ANSWER: ...`; the text after it is verified. Supported families: those LADDER can rewrite \
    (integrals, arith, toy).")]
pub struct TtrlArgs {
    /// The task's id in memory.
    #[arg(long, value_name = "ID")]
    task: String,
    /// Training steps (each one batch of groups over the variants).
    #[arg(long, default_value_t = 4, value_name = "N")]
    steps: u64,
    /// LADDER depth of the variant tree.
    #[arg(long, default_value_t = 1, value_name = "D")]
    depth: u32,
    /// Variants asked for per prompt.
    #[arg(long, default_value_t = 4, value_name = "V")]
    variants: u32,
    /// Variants per training step.
    #[arg(long, default_value_t = 2, value_name = "N")]
    groups_per_step: usize,
    /// A policy TOML file whose `[training]` section sets the loss and LoRA (default preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Tokens per reply.
    #[arg(long, default_value_t = 96, value_name = "N")]
    max_tokens: usize,
    /// Seeds hints, sampling and the adapter's initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object: task, variants, steps, attempts, solved.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TtrlArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: TtrlArgs) -> Result<ExitCode> {
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let store = Store::open(&default_url()).await?;
    let options = TtrlOptions {
        task: args.task.clone(),
        steps: args.steps,
        depth: args.depth,
        variants: args.variants,
        groups_per_step: args.groups_per_step,
        policy,
        model_path: autodidact_runtime::model::smollm2_path(),
        threads: args.threads,
        max_tokens: args.max_tokens,
        seed: args.seed,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps").expect("valid template"));
    let report = ttrl(&store, &options, &mut |p| match p {
        TtrlProgress::Note(n) => eprintln!("note: {n}"),
        TtrlProgress::Steps(n) => bar.set_length(n),
        TtrlProgress::StepDone(m) => {
            bar.set_message(m);
            bar.inc(1);
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    let solved = report["solved"] == json!(true);
    if args.json {
        println!("{report}");
    } else {
        let variants = report["variants"].as_array().map_or(0, Vec::len);
        println!("task {}: {} verified variants, {} training updates", report["task"].as_str().unwrap_or_default(), variants, report["steps"]);
        for a in report["attempts"].as_array().into_iter().flatten() {
            println!("  after step {}: {} ({})", a["step"], if a["solved"] == json!(true) { "solved" } else { "not solved" }, a["answer"].as_str().unwrap_or_default());
        }
        println!("solved during TTRL: {solved}; the temporary adapter was discarded");
    }
    Ok(ExitCode::SUCCESS)
}
