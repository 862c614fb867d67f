//! `autodidact memory ...`: look into the trajectory store, export it for trainers, and prove
//! it durable (`stress`, `verify`) and fast (`bench`).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use autodidact_memory::{DocKind, ExportFormat, SearchFilters, Split, Store, StoreOptions};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// Trajectory-store subcommands. Without `--db`, they use `$AUTODIDACT_DB`, or else
/// `sqlite://$AUTODIDACT_HOME/memory.db`.
#[derive(Subcommand)]
pub enum MemoryCmd {
    /// Count what the store holds: tasks, runs, steps, GRPO groups (and how many are untrained),
    /// adapters, evals, experiences, and the schema version.
    Stats {
        /// Database URL (sqlite://PATH or postgres://...).
        #[arg(long, env = "AUTODIDACT_DB")]
        db: Option<String>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the most recent runs, newest first: id, status, reward, steps, task family.
    Runs {
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// Database URL.
        #[arg(long, env = "AUTODIDACT_DB")]
        db: Option<String>,
    },
    /// Print one run as a readable transcript: its task, every step with its code and output,
    /// and the final answer. RUN_ID may be any unique prefix of the id.
    Show {
        /// The run's id, or a unique prefix of it.
        run_id: String,
        /// Database URL.
        #[arg(long, env = "AUTODIDACT_DB")]
        db: Option<String>,
    },
    /// Full-text search (BM25, tantivy) over task prompts, steps and experiences.
    Search {
        /// Words to look for; `"a phrase"`, `+must` and `-not` work too.
        query: String,
        /// How many hits to print.
        #[arg(long, short, default_value_t = 10)]
        k: usize,
        /// Only hits of this kind: task, step or experience.
        #[arg(long)]
        kind: Option<String>,
        /// Only tasks (and their steps) of this split: train or eval.
        #[arg(long)]
        split: Option<String>,
        /// Database URL.
        #[arg(long, env = "AUTODIDACT_DB")]
        db: Option<String>,
    },
    /// Export for trainers, as JSON lines: `trl-grpo` (prompt, completions, rewards per GRPO
    /// group of train tasks; read by TRL and veRL), `sft` (chat messages of successful train
    /// runs) or `rlm-log` (one line per iteration, the reference RLM logger's shape).
    Export {
        /// trl-grpo, sft or rlm-log.
        #[arg(long)]
        format: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// Database URL.
        #[arg(long, env = "AUTODIDACT_DB")]
        db: Option<String>,
    },
    /// Durability load: N concurrent writers each append runs of 10 steps. After each run's
    /// commit the writer appends the run id to the ack log and fsyncs it. Runs until done or
    /// killed; `verify` then checks that no acknowledged run was lost.
    Stress {
        /// Database URL.
        #[arg(long)]
        db: String,
        /// Concurrent writers.
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Runs per writer.
        #[arg(long, default_value_t = 1000)]
        runs: u64,
        /// File to append acknowledged run ids to, one per line.
        #[arg(long)]
        ack_log: PathBuf,
    },
    /// Check a store: database integrity (PRAGMA integrity_check on SQLite) and, with
    /// --ack-log, that every acknowledged run exists, finished, with all its steps. Prints
    /// {"ok":bool,"runs":N,"steps":N,"missing":N} with --json; exits 1 unless ok.
    Verify {
        /// Database URL.
        #[arg(long)]
        db: String,
        /// An ack log written by `stress`.
        #[arg(long)]
        ack_log: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark a fresh temporary store: batched ingest (steps/s, median over chunks of
    /// 50,000 steps) and search latency (p50, p99 over 300 queries, k=10) at --steps steps.
    Bench {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Steps to ingest before searching.
        #[arg(long, default_value_t = 1_000_000)]
        steps: u64,
        /// Database URL to benchmark instead of a temporary SQLite file (it should be empty).
        #[arg(long)]
        db: Option<String>,
    },
}

pub fn run(cmd: MemoryCmd) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(cmd))
}

fn url_or_default(db: Option<String>) -> String {
    db.unwrap_or_else(autodidact_memory::default_url)
}

async fn open(url: &str, index: bool) -> anyhow::Result<Store> {
    let mut opts = StoreOptions::new(url);
    opts.index = index;
    let store = Store::open_with(opts).await?;
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(store)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

async fn run_async(cmd: MemoryCmd) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cmd {
        MemoryCmd::Stats { db, json } => {
            let store = open(&url_or_default(db), false).await?;
            let s = store.stats().await?;
            if json {
                println!(
                    "{}",
                    json!({"backend": s.backend, "schema_version": s.schema_version,
                        "tasks": s.tasks, "runs": s.runs, "steps": s.steps, "groups": s.groups,
                        "untrained_groups": s.untrained_groups, "adapters": s.adapters,
                        "evals": s.evals, "experiences": s.experiences})
                );
            } else {
                println!(
                    "store           {} ({}, schema v{})",
                    store.url(),
                    s.backend,
                    s.schema_version
                );
                println!("tasks           {}", s.tasks);
                println!("runs            {}", s.runs);
                println!("steps           {}", s.steps);
                println!(
                    "groups          {} ({} untrained)",
                    s.groups, s.untrained_groups
                );
                println!("adapters        {}", s.adapters);
                println!("evals           {}", s.evals);
                println!("experiences     {}", s.experiences);
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Runs { limit, db } => {
            let store = open(&url_or_default(db), false).await?;
            let runs = store.runs(limit).await?;
            if runs.is_empty() {
                println!("no runs yet");
            }
            for r in runs {
                let run = &r.run;
                println!(
                    "{}  {}  {:<16}  reward {:<5}  {:>3} steps  {}",
                    run.id,
                    autodidact_memory::iso8601(run.started_ms),
                    run.status.as_str(),
                    run.reward
                        .map(|x| format!("{x}"))
                        .unwrap_or_else(|| "-".into()),
                    run.step_count,
                    r.family
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Show { run_id, db } => {
            let store = open(&url_or_default(db), false).await?;
            print!("{}", store.transcript(&run_id).await?.render());
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Search {
            query,
            k,
            kind,
            split,
            db,
        } => {
            let store = open(&url_or_default(db), true).await?;
            let mut filters = SearchFilters::default();
            if let Some(kind) = kind {
                filters.kinds.push(kind.parse::<DocKind>()?);
            }
            if let Some(split) = split {
                filters.split = Some(split.parse::<Split>()?);
            }
            let hits = store.search(&query, &filters, k).await?;
            if hits.is_empty() {
                println!("no hits");
            }
            for h in hits {
                let at = match h.step_idx {
                    Some(i) => format!("{} step {i}", h.id),
                    None => h.id.clone(),
                };
                println!("{:>7.3}  {:<10} {at}", h.score, h.kind.as_str());
                println!("         {}", h.preview.replace('\n', " ⏎ "));
            }
            store.close().await?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Export { format, out, db } => {
            let format: ExportFormat = format.parse()?;
            let store = open(&url_or_default(db), false).await?;
            let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut w = BufWriter::new(file);
            let pb = bar(0, "exporting");
            let lines = store
                .export(format, &mut w, &out, &mut |done, total| {
                    pb.set_length(total);
                    pb.set_position(done);
                })
                .await?;
            pb.finish_and_clear();
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {lines} lines to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Stress {
            db,
            writers,
            runs,
            ack_log,
        } => {
            stress(&db, writers, runs, &ack_log).await?;
            Ok(ExitCode::SUCCESS)
        }
        MemoryCmd::Verify { db, ack_log, json } => verify(&db, ack_log.as_deref(), json).await,
        MemoryCmd::Bench { json, steps, db } => {
            bench(json, steps, db).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn stress(db: &str, writers: usize, runs: u64, ack_log: &Path) -> anyhow::Result<()> {
    let store = open(db, false).await?;
    let pb = bar(runs * writers as u64, "acknowledged runs");
    let tick = pb.clone();
    autodidact_memory::load::stress(&store, writers, runs, ack_log, Arc::new(move || tick.inc(1))).await?;
    pb.finish_and_clear();
    store.close().await?;
    eprintln!("stress: {} runs of 10 steps acknowledged", runs * writers as u64);
    Ok(())
}

async fn verify(
    db: &str,
    ack_log: Option<&Path>,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let acked = match ack_log {
        Some(p) => autodidact_memory::load::read_ack_log(p)?,
        None => Vec::new(),
    };
    let report = match open(db, false).await {
        Ok(store) => store.verify(&acked).await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            if json {
                println!(
                    "{}",
                    json!({"ok": false, "runs": 0, "steps": 0, "missing": acked.len()})
                );
            }
            return Ok(std::process::ExitCode::from(1));
        }
    };
    if json {
        println!(
            "{}",
            json!({"ok": report.ok, "runs": report.runs, "steps": report.steps, "missing": report.missing})
        );
    } else {
        println!("integrity     {}", report.integrity);
        println!("runs          {}", report.runs);
        println!("steps         {}", report.steps);
        println!("acknowledged  {}", report.acknowledged);
        println!("missing       {}", report.missing);
        for p in &report.problems {
            println!("  {p}");
        }
        println!("{}", if report.ok { "ok" } else { "NOT OK" });
    }
    Ok(if report.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// The total size of the files under `p` (or of the file `p`).
fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    };
    rd.flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { dir_bytes(&path) } else { e.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}

async fn bench(as_json: bool, steps: u64, db: Option<String>) -> anyhow::Result<()> {
    let base = autodidact_memory::home_dir().join("bench");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = tempfile::tempdir_in(&base)?;
    let url = db.unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bench.db").display()));
    let mut opts = StoreOptions::new(&url);
    opts.index_dir = Some(tmp.path().join("bench.index"));
    let store = Store::open_with(opts).await?;
    let pb = bar(steps, "ingesting steps");
    if as_json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let tick = pb.clone();
    let mut report = autodidact_memory::load::bench(&store, steps, &mut move |n| tick.set_position(n)).await?;
    pb.finish_and_clear();
    report["db_bytes"] = json!(dir_bytes(&tmp.path().join("bench.db")) + dir_bytes(&tmp.path().join("bench.db-wal")));
    report["index_bytes"] = json!(dir_bytes(&tmp.path().join("bench.index")));
    store.close().await?;
    if as_json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
