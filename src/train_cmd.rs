//! `autodidact train`: LoRA training on groups of attempts, offline from memory or online. The
//! session itself is `autodidact_nightly::train`; this module parses the flags, shows the
//! progress bar and prints the summary.

use std::path::PathBuf;

use anyhow::Context;
use autodidact_memory::{Store, StoreOptions};
use autodidact_nightly::train::{OnlineOptions, TrainOptions, TrainProgress, train as run_session};
use autodidact_policies::Policy;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `autodidact train`.
#[derive(Args)]
pub struct TrainArgs {
    /// A policy TOML file whose `[training]` section sets the loss, LoRA and optimiser
    /// (default: the built-in preset).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Training batches to run (each is `training.num_iterations` updates). Offline, batches
    /// cycle over the untrained groups if there are fewer than steps × groups-per-step.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub steps: u64,
    /// Groups per training batch.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub groups_per_step: usize,
    /// The trajectory store (default: $AUTODIDACT_DB, or sqlite://$AUTODIDACT_HOME/memory.db).
    #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
    pub db: Option<String>,
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Where to write the adapter and its checkpoint (default:
    /// $AUTODIDACT_HOME/adapters/train-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the adapter's initialisation, the batch order and (online) the tasks and sampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Roll out with the current adapter, reward, train, export and hot-swap, every step.
    #[arg(long)]
    pub online: bool,
    /// The task family of online training (built in: `toy`).
    #[arg(long, default_value = "toy", value_name = "NAME")]
    pub suite: String,
    /// Online: the most tokens per sampled reply.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_tokens: usize,
    /// Online: sampling temperature of the rollouts.
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    pub temperature: f32,
    /// Print one JSON summary object (the learning curve included) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(train(args))
}

async fn train(args: TrainArgs) -> anyhow::Result<std::process::ExitCode> {
    let url = args.db.clone().unwrap_or_else(autodidact_memory::default_url);
    let mut options = TrainOptions {
        policy: Policy::preset_default(),
        steps: args.steps,
        groups_per_step: args.groups_per_step,
        model_path: args.model.clone().unwrap_or_else(autodidact_runtime::model::smollm2_path),
        out: args.out.clone().unwrap_or_else(|| {
            autodidact_memory::home_dir().join("adapters").join(format!("train-{}", autodidact_memory::now_ms()))
        }),
        seed: args.seed,
        threads: args.threads,
        db_url: url.clone(),
        online: args.online.then(|| OnlineOptions { suite: args.suite.clone(), max_tokens: args.max_tokens, temperature: args.temperature }),
    };
    options.check()?;
    if let Some(p) = &args.policy {
        options.policy = Policy::load(p)?;
    }
    let mut opts = StoreOptions::new(url);
    opts.index = false; // training reads groups and registers adapters; nothing it writes is searched
    let store = Store::open_with(opts).await?;
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let bar = ProgressBar::new(args.steps);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps (eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let summary = run_session(&store, &options, &mut |p| match p {
        TrainProgress::Message(m) => bar.set_message(m),
        TrainProgress::StepDone => bar.inc(1),
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    store.close().await?;
    if args.json {
        println!("{summary}");
    } else {
        let m = &summary["metrics"];
        println!("adapter    {} (candidate)", summary["adapter_id"].as_str().unwrap_or(""));
        println!("file       {}", summary["adapter_path"].as_str().unwrap_or(""));
        println!("updates    {} ({} skipped)", m["updates"], m["skipped_updates"]);
        println!("loss       {} -> {}", m["first_loss"], m["final_loss"]);
        println!("reward     {} -> {}", m["first_mean_reward"], m["final_mean_reward"]);
        println!("seconds    {:.1}", m["seconds"].as_f64().unwrap_or(0.0));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
