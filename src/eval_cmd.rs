//! `autodidact eval`: a suite through the RLM runtime, scored by its verifiers, stored in
//! memory with an eval record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use autodidact_evals::{HarnessOptions, Report, Sample, Suite, builtin, run_suite};
use autodidact_memory::{Split, Store, default_url};
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, ModelSpec, OpenOptions};
use autodidact_runtime::rlm::{Agent, MemoryLog};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use clap::Args;

/// `autodidact eval` arguments.
#[derive(Args)]
#[command(after_help = "Built-in suites: arith, integrals, niah, countdown, toy, wordproblems, \
    game24 (generated from seeds; eval and train items never overlap) and gsm8k (the GSM8K test \
    set, eval only). A suite file is JSONL: id, family, prompt, [context], answer, verifier \
    (numeric|exact|contains|python), [check], [split], [level], [solution]. The exit code is 0 \
    whenever the harness worked, whatever the score.")]
pub struct EvalArgs {
    /// A built-in suite.
    #[arg(long, conflicts_with = "suite_file", required_unless_present = "suite_file")]
    suite: Option<String>,
    /// A suite file (JSONL).
    #[arg(long, value_name = "FILE")]
    suite_file: Option<PathBuf>,
    /// Run at most the first N items (built-in suites default to 50; niah 10, integrals 30).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Samples per item, for pass@k. With k > 1 and a greedy policy, temperature 0.8 is used.
    #[arg(long, default_value_t = 1)]
    k: u32,
    /// The adapter: a GGUF LoRA file, `promoted` (the registry's promoted adapter, or the base
    /// model when none is promoted) or `none` (the base model).
    #[arg(long, default_value = "promoted", value_name = "FILE|promoted|none")]
    adapter: String,
    /// The model: `smollm2` (default), `path/to/file.gguf`, `openai:URL#MODEL` or `scripted:PATH`.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// A policy TOML file (default: the built-in `eval` preset: 4 turns of 256 tokens, 10 minutes
    /// per run, no tools, no retrieval).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Threads for llama.cpp (default: all cores; 1 is faster when other work competes for
    /// the cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Runs in flight at once (default: 8 for an in-process GGUF model, which decodes their
    /// turns together by continuous batching; 1 for the others, and a scripted model replays
    /// its replies in call order). 1 runs one at a time.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Which items of the suite to run.
    #[arg(long, default_value = "eval", value_parser = ["eval", "train"])]
    split: String,
    /// Let the agent retrieve past experience (off by default, so scores measure the model).
    #[arg(long)]
    experience: bool,
    /// Print one JSON object: suite, n, pass_at_1, pass_at_k, k, mean_tokens, mean_latency_ms, by_family.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args))
}

/// The `split` items of a built-in suite or a suite file, at most `limit` of them (a built-in
/// suite's default size without one). Shared by `eval` and `ladder`.
pub(crate) fn load_suite(suite: Option<&str>, file: Option<&Path>, split: Split, limit: Option<usize>) -> Result<Suite> {
    let mut suite = match (suite, file) {
        (Some(name), _) => builtin::generate(name, split, limit.unwrap_or_else(|| builtin::default_size(name)))?,
        (None, Some(path)) => Suite::load(path)?.split(split),
        (None, None) => anyhow::bail!("give --suite NAME or --suite-file FILE"),
    };
    if let Some(n) = limit {
        suite.items.truncate(n);
    }
    anyhow::ensure!(!suite.items.is_empty(), "suite `{}` has no {} items", suite.name, split.as_str());
    Ok(suite)
}

async fn run_async(args: EvalArgs) -> Result<ExitCode> {
    let split: Split = args.split.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let suite = load_suite(args.suite.as_deref(), args.suite_file.as_deref(), split, args.limit)?;
    let mut policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_eval(),
    };
    policy.experience.retrieve = args.experience;
    if args.k > 1 && policy.budget.temperature == 0.0 {
        eprintln!("note: k = {} samples need sampling; using temperature 0.8 instead of the policy's 0", args.k);
        policy.budget.temperature = 0.8;
    }
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let store = Arc::new(Store::open(&default_url()).await?);
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let mut open = OpenOptions::default();
    open.llamacpp.threads = args.threads;
    let spec = ModelSpec::parse(&args.model)?;
    let concurrency = args.concurrency.unwrap_or(if matches!(spec, ModelSpec::Gguf(_)) { 8 } else { 1 });
    let model = model::open(&spec, &open).await?;
    let adapter_id = autodidact_nightly::adapters::apply(&args.adapter, &model, &store, |n| if !args.json { eprintln!("note: {n}") }).await?;
    let memory = MemoryLog { writer: store.writer(), store: store.clone() };
    // No memory_search tool: past runs hold answers, and scores must measure the model.
    let mut agent = Agent::new(model.clone(), sandbox.clone(), policy.clone())?.with_memory(memory).with_name("eval");
    if !policy.recursion.sub_model.is_empty() {
        agent = agent.with_sub_model(model::open(&ModelSpec::parse(&policy.recursion.sub_model)?, &OpenOptions::default()).await?);
    }
    let total = suite.items.len() as u64 * u64::from(args.k.max(1));
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}").expect("valid template"));
    let passed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (b, p) = (bar.clone(), passed.clone());
    let on_sample = Arc::new(move |done: usize, _total: usize, s: &Sample| {
        let n = p.fetch_add(u64::from(s.passed), std::sync::atomic::Ordering::Relaxed) + u64::from(s.passed);
        b.set_position(done as u64);
        b.set_message(format!("{}: {} passed so far", suite_label(s), n));
    });
    let opts = HarnessOptions { k: args.k, concurrency, adapter_id, writer: Some(store.writer()), sandbox, on_sample: Some(on_sample), lessons: false, existing_tasks: Default::default() };
    let report = run_suite(Arc::new(agent), &suite, &opts).await?;
    bar.finish_and_clear();
    store.flush().await?;
    let errors = report.host_errors();
    if let Some(first) = errors.first() {
        eprintln!("warning: {} of the samples failed on the host side; the first: {}", errors.len(), first.stop);
    }
    if args.json {
        println!("{}", report.summary());
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn suite_label(s: &Sample) -> String {
    s.item.clone()
}

fn print_table(r: &Report) {
    println!("suite {}: {} items, k = {}", r.suite, r.n, r.k);
    println!("{:<14} {:>5} {:>8} {:>8}", "family", "n", "pass@1", format!("pass@{}", r.k));
    for (family, s) in &r.by_family {
        println!("{family:<14} {:>5} {:>8.3} {:>8.3}", s.n, s.pass_at_1, s.pass_at_k);
    }
    println!("{:<14} {:>5} {:>8.3} {:>8.3}", "all", r.n, r.pass_at_1, r.pass_at_k);
    println!("mean tokens {:.0}, mean latency {:.0} ms per sample", r.mean_tokens, r.mean_latency_ms);
    if let Some(id) = &r.eval_id {
        println!("eval record {id}; runs: autodidact memory runs");
    }
}
