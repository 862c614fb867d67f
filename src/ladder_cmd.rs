//! `autodidact ladder`: LADDER variant trees for a suite's problems, verified in the sandbox,
//! solved in groups and stored in memory as a training curriculum.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use autodidact_evals::ladder::{LadderOptions, run_ladder};
use autodidact_memory::{Split, Store, default_url};
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, ModelSpec, OpenOptions};
use autodidact_runtime::rlm::{Agent, MemoryLog};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use clap::Args;

/// `autodidact ladder` arguments.
#[derive(Args)]
#[command(after_help = "For each seed problem the model writes easier variants, guided by 3-5 \
    sampled transformation hints (\"remove one term\", \"lower the exponent\", ...) at temperatures \
    cycling over 0.8-1.4, recursively to --depth. The sandbox verifies each variant (integrals: \
    sympy must find a closed-form antiderivative; arith/toy: a restricted integer expression) and \
    drops duplicates and degenerate ones. Verified variants are stored as train tasks with their \
    parent, then solved easiest first in groups of --group samples, which the trainer reads. \
    Supported families: integrals, arith, toy.")]
pub struct LadderArgs {
    /// A built-in suite (integrals, arith or toy).
    #[arg(long, conflicts_with = "suite_file", required_unless_present = "suite_file")]
    suite: Option<String>,
    /// A suite file (JSONL) whose prompts have the built-in shapes.
    #[arg(long, value_name = "FILE")]
    suite_file: Option<PathBuf>,
    /// Seeds: the first N items of the split.
    #[arg(long, default_value_t = 5, value_name = "N")]
    limit: usize,
    /// Which items of the suite are seeds.
    #[arg(long, default_value = "train", value_parser = ["train", "eval"])]
    split: String,
    /// Levels of variants below each seed.
    #[arg(long, default_value_t = 2, value_name = "D")]
    depth: u32,
    /// Variants asked for per prompt (and kept per parent).
    #[arg(long, default_value_t = 4, value_name = "V")]
    variants: u32,
    /// Samples per variant when solving; 0 grows the trees only.
    #[arg(long, default_value_t = 4, value_name = "G")]
    group: u32,
    /// The model: `smollm2` (default), `path/to/file.gguf`, `openai:URL#MODEL` or `scripted:PATH`.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// A policy TOML file for solving (default: the built-in `eval` preset; a greedy policy's
    /// temperature is raised to 0.8 so that groups differ).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores; 1 is faster when other work competes for
    /// the cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Seeds the hint sampling and the model's sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object: seeds, variants_generated, variants_verified, groups, solved_fraction_by_depth.
    #[arg(long)]
    json: bool,
}

pub fn run(args: LadderArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: LadderArgs) -> Result<ExitCode> {
    let split: Split = args.split.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let seeds = crate::eval_cmd::load_suite(args.suite.as_deref(), args.suite_file.as_deref(), split, Some(args.limit))?;
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_eval(),
    };
    if args.group > 1 && policy.budget.temperature == 0.0 {
        policy.budget.temperature = 0.8;
    }
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let store = Arc::new(Store::open(&default_url()).await?);
    let mut open = OpenOptions::default();
    open.llamacpp.threads = args.threads;
    let model = model::open(&ModelSpec::parse(&args.model)?, &open).await?;
    let adapter_id = autodidact_nightly::adapters::apply("promoted", &model, &store, |n| if !args.json { eprintln!("note: {n}") }).await?;
    let memory = MemoryLog { writer: store.writer(), store: store.clone() };
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), policy)?.with_memory(memory).with_name("ladder"));
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let b = bar.clone();
    let quiet = args.json;
    let opts = LadderOptions {
        depth: args.depth,
        variants: args.variants,
        group: args.group,
        concurrency: 1,
        sandbox,
        writer: Some(store.writer()),
        adapter_id,
        seed: args.seed,
        max_tokens: 48 * args.variants.max(1) as usize,
        on_event: Some(Arc::new(move |m: &str| {
            if m.starts_with("depth") && !quiet {
                b.println(m);
            }
            b.set_message(m.chars().take(100).collect::<String>());
        })),
    };
    bar.set_message("writing variants");
    let report = run_ladder(agent, model, &seeds, &opts).await?;
    bar.finish_and_clear();
    store.flush().await?;
    if args.json {
        println!("{}", report.summary());
    } else {
        println!("seeds {}, variants written {}, verified {}, groups stored {}", report.seeds, report.variants_generated, report.variants_verified, report.groups);
        for (depth, f) in &report.solved_fraction_by_depth {
            println!("depth {depth}: {:.0}% of variants solved at least once", f * 100.0);
        }
    }
    Ok(ExitCode::SUCCESS)
}
