//! `autodidact bench consolidation`: the consolidation penalties compared on two nights.
//!
//! Night 1 trains on task family A and is promoted (frozen past); night 2 trains on family B on
//! top of it with no penalty, ELLA and O-LoRA at each λ of the grid. The report gives, per
//! setting, the gain on B, the retention of A under the merged adapter, and the time per step.
//! The protocol is documented in `autodidact_trainer::bench` (`bench_consolidation.rs`). This is
//! a benchmark, not a test: it takes minutes on the real SmolLM2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autodidact_trainer::bench::ConsolidationBenchConfig;
use autodidact_trainer::{BaseModel, DType, default_model_path};
use clap::Args;

/// Arguments of `autodidact bench consolidation`.
#[derive(Args)]
pub struct ConsolidationArgs {
    /// The base GGUF (default: the bootstrapped SmolLM2 in $AUTODIDACT_HOME).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Updates per night.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub steps: usize,
    /// Seed of the data and the trainers.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub seed: u64,
    /// Peak learning rate of both nights.
    #[arg(long, default_value_t = 5e-4, value_name = "LR")]
    pub lr: f64,
    /// λ values for ELLA, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1e5, 1e6], value_name = "L,..")]
    pub ella: Vec<f64>,
    /// λ values for O-LoRA, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1e-2, 1e-1], value_name = "L,..")]
    pub olora: Vec<f64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the measurement and prints its report.
pub fn run(args: ConsolidationArgs) -> anyhow::Result<ExitCode> {
    let path = args.model.unwrap_or_else(default_model_path);
    let model = BaseModel::load_gguf(&path, DType::F32).with_context(|| format!("loading {}", path.display()))?;
    let cfg = ConsolidationBenchConfig {
        steps: args.steps.max(1),
        seed: args.seed,
        lr: args.lr,
        ella_lambdas: args.ella,
        olora_lambdas: args.olora,
        ..ConsolidationBenchConfig::default()
    };
    let r = autodidact_trainer::bench::consolidation(&model, &cfg)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "night 1 on A: {:.3} -> {:.3} nats/token ({:.2} s/step); B before night 2: {:.3}",
        r.a_base, r.a_past, r.night1_step_s_median, r.b_before
    );
    println!("{:<6} {:>9} {:>9} {:>12} {:>9} {:>9} {:>10}", "kind", "lambda", "gain B", "retention A", "kept A", "s/step", "penalty s");
    for s in &r.settings {
        println!(
            "{:<6} {:>9.1e} {:>9.3} {:>12.3} {:>8.0}% {:>9.2} {:>10.3}",
            s.kind,
            s.lambda,
            s.gain_b,
            s.retention_a,
            100.0 * s.retained_fraction_a,
            s.step_s_median,
            s.penalty_s
        );
    }
    println!("merge truncated by SVD on every matrix: {:.2} s", r.truncated_merge_s);
    Ok(ExitCode::SUCCESS)
}
