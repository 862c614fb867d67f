//! `autodidact`: the command-line interface.
//!
//! This binary wires the library crates together; it holds no logic of its own beyond
//! argument parsing, progress display and output formatting. Each subcommand lives in its own
//! module (`sandbox_cmd.rs`, ...). `anyhow` is used here and nowhere in the libraries.

mod adapters_cmd;
mod memory_cmd;
mod nightly_cmd;
mod bench_cmd;
mod bench_consolidation;
mod bench_rlm;
mod bench_serve;
mod bench_train;
mod eval_cmd;
mod ladder_cmd;
mod report_cmd;
mod generate_cmd;
mod run_cmd;
mod sandbox_cmd;
mod serve_cmd;
mod stats;
mod train_cmd;
mod trainer_cmd;
mod ttrl_cmd;

use clap::{Parser, Subcommand};

/// A self-evolving agent runtime: a small local model drives a sandboxed Python REPL, logs
/// every step, and trains nightly on what it did.
#[derive(Parser)]
#[command(name = "autodidact", version, about, long_about = None)]
#[command(after_help = "Assets (the model and the Python sandbox) live in $AUTODIDACT_HOME \
    (default ~/.cache/autodidact) and are fetched by scripts/bootstrap.sh.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Solve a task: the model drives a sandboxed Python REPL until it answers (the RLM loop).
    Run(run_cmd::RunArgs),
    /// Run Python in the CPython-WASI sandbox: prepare the module, execute files, a REPL, benchmarks.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCmd),
    /// Inspect, search and export the trajectory store; check it survives kill -9; benchmark it.
    #[command(subcommand)]
    Memory(memory_cmd::MemoryCmd),
    /// Generate replies from a model (in-process GGUF, OpenAI-compatible server or scripted).
    Generate(generate_cmd::GenerateArgs),
    /// Evaluate a suite through the agent: pass@1, pass@k, tokens, latency, per family; stored in memory.
    Eval(eval_cmd::EvalArgs),
    /// LADDER: variant trees of easier problems, verified in the sandbox, solved in groups for training.
    Ladder(ladder_cmd::LadderArgs),
    /// Test-time RL on one task: train a temporary adapter on its LADDER variants, attempt it, roll back.
    Ttrl(ttrl_cmd::TtrlArgs),
    /// Write the HTML report: evals by adapter and suite, learning curves, pass@k, LADDER trees, transcripts.
    Report(report_cmd::ReportArgs),
    /// Benchmarks: `model` (medians), `train`, `group`, `consolidation`, `rlm` (the runtime's own overhead), `serve` (the HTTP service under load).
    #[command(subcommand)]
    Bench(bench_cmd::BenchCmd),
    /// Train a LoRA adapter: on untrained groups in memory, or online (`--online --suite toy`).
    Train(train_cmd::TrainArgs),
    /// Long-lived agents over HTTP: agents, queued runs, live events, an OpenAI-compatible
    /// endpoint, a scheduled nightly with adapter hot swap, and a trajectory viewer at `/`.
    Serve(serve_cmd::ServeArgs),
    /// Checks of the LoRA trainer against the serving engine: `parity`.
    #[command(subcommand)]
    Trainer(trainer_cmd::TrainerCmd),
    /// One night of self-improvement: rollouts, training, evals, the promotion gate, report.
    Nightly(nightly_cmd::NightlyArgs),
    /// The adapter registry: `list`, `promote ID`, `rollback` (one generation back).
    #[command(subcommand)]
    Adapters(adapters_cmd::AdaptersCmd),
}

/// Resolves on Ctrl-C or SIGTERM. Where SIGTERM cannot be listened for, only Ctrl-C counts and
/// `no_term` (when not empty) is printed with the reason.
pub(crate) async fn stop_signal(no_term: &str) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            if !no_term.is_empty() {
                eprintln!("{no_term} ({e})");
            }
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
        Command::Memory(cmd) => memory_cmd::run(cmd),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Bench(cmd) => bench_cmd::run(cmd),
        Command::Train(args) => train_cmd::run(args),
        Command::Trainer(cmd) => trainer_cmd::run(cmd),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Ladder(args) => ladder_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Ttrl(args) => ttrl_cmd::run(args),
        Command::Nightly(args) => nightly_cmd::run(args),
        Command::Adapters(cmd) => adapters_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
