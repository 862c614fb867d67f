//! `autodidact bench rlm`: the RLM runtime's own overhead on a 20-turn scripted run.
//!
//! The scripted model answers instantly, so what is left of a run's wall time after model
//! calls and guest execution is the runtime itself: prompt rendering, code-block extraction,
//! scaffold checks, output truncation and logging every step to a real SQLite store. Each turn's
//! cell does a few milliseconds of real work, like a typical REPL cell.

use std::sync::Arc;

use anyhow::Context;
use autodidact_memory::Store;
use autodidact_policies::Policy;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::rlm::{Agent, MemoryLog, Stop, TaskInput};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use clap::Args;
use serde_json::json;

use crate::stats::median;

/// Arguments of `autodidact bench rlm`.
#[derive(Args)]
pub struct RlmArgs {
    /// Model turns per run (the last one answers).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub turns: usize,
    /// Measured runs, after one warm-up; the report gives medians.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn bench_rlm(args: RlmArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(args.turns >= 1 && args.runs >= 1, "--turns and --runs must be at least 1");
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?);
    let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
    let mut replies: Vec<String> = (1..args.turns)
        .map(|i| format!("Step {i}.\n```repl\nx{i} = sum(k * k for k in range(20000 + {i}))\nprint(x{i} % 1000)\n```"))
        .collect();
    replies.push("```repl\nFINAL(str(x1 % 7) if 'x1' in globals() else 'done')\n```".into());
    let script = replies.join("\n---\n");
    let mut policy = Policy::preset_default();
    policy.recursion.max_iterations = args.turns as u32 + 1;
    policy.experience.retrieve = false;
    let (mut wall, mut model, mut guest, mut overhead, mut frac) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..=args.runs {
        let lm = Arc::new(ScriptedModel::from_text(&script, "bench"));
        let memory = MemoryLog { writer: store.writer(), store: store.clone() };
        let agent = Arc::new(Agent::new(lm, sandbox.clone(), policy.clone())?.with_memory(memory));
        let o = agent.run(TaskInput::new("Benchmark task: run the cells.", serde_json::Value::Null)).await?;
        anyhow::ensure!(o.stop == Stop::Answered && o.turns as usize == args.turns, "the scripted run ended early: {:?} after {} turns", o.stop, o.turns);
        if i == 0 {
            continue; // warm-up
        }
        let (w, m, g) = (o.duration.as_secs_f64() * 1e3, o.model_time.as_secs_f64() * 1e3, o.guest_time.as_secs_f64() * 1e3);
        let rest = (w - m - g).max(0.0);
        wall.push(w);
        model.push(m);
        guest.push(g);
        overhead.push(rest);
        frac.push(rest / w);
    }
    store.flush().await.context("flushing the bench store")?;
    let per_turn = median(overhead.clone()) / args.turns as f64;
    let report = json!({
        "turns": args.turns,
        "runs": args.runs,
        "wall_ms": median(wall),
        "model_ms": median(model),
        "guest_ms": median(guest),
        "overhead_ms": median(overhead),
        "overhead_fraction": median(frac),
        "overhead_ms_per_turn": per_turn,
        "target_fraction": 0.05,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}-turn scripted run, median of {}:", args.turns, args.runs);
        for key in ["wall_ms", "model_ms", "guest_ms", "overhead_ms", "overhead_ms_per_turn"] {
            println!("  {key:<22} {:>9.2}", report[key].as_f64().unwrap_or(0.0));
        }
        println!("  {:<22} {:>9.4} (target <= 0.05)", "overhead_fraction", report["overhead_fraction"].as_f64().unwrap_or(0.0));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
