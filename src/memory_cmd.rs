//! `autodidact memory ...`: look into the trajectory store, export it for trainers, and prove
//! it durable (`stress`, `verify`) and fast (`bench`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use autodidact_memory::{
    DocKind, ExportFormat, NewRun, NewStep, NewTask, RunEnd, RunStatus, SearchFilters, Split,
    StepKind, Store, StoreOptions,
};
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

fn stress_step(i: u64) -> NewStep {
    let kind = match i % 3 {
        0 => StepKind::ModelTurn,
        1 => StepKind::CodeCell,
        _ => StepKind::ToolCall,
    };
    NewStep {
        stdout: format!("{}\n", i * 7),
        prompt_tokens: 40,
        completion_tokens: 12,
        latency_us: 900,
        ..NewStep::new(
            kind,
            format!("x = {i} * 7\nprint(x)"),
            format!("step {i} output"),
        )
    }
}

async fn stress(db: &str, writers: usize, runs: u64, ack_log: &Path) -> anyhow::Result<()> {
    let store = open(db, false).await?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(ack_log)
        .with_context(|| format!("opening the ack log {}", ack_log.display()))?;
    let log = Arc::new(Mutex::new(log));
    let w = store.writer();
    let task_id = w
        .add_task(NewTask {
            family: "stress".into(),
            prompt: "Durability load: compute multiples of seven.".into(),
            context_ref: None,
            answer_spec: json!({"kind": "none"}),
            split: Split::Train,
            parent_id: None,
            difficulty: None,
            source: "memory stress".into(),
        })
        .await?
        .committed()
        .await?;
    let pb = bar(runs * writers as u64, "acknowledged runs");
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (w, log, pb, task_id) = (w.clone(), log.clone(), pb.clone(), task_id.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..runs {
                let (run, _) = w
                    .begin_run(NewRun {
                        task_id: task_id.clone(),
                        agent: "stress".into(),
                        model_id: "none".into(),
                        adapter_id: None,
                        policy_hash: "stress".into(),
                    })
                    .await?;
                for i in 0..10 {
                    let _ = run.step(stress_step(i)).await?;
                }
                let end = RunEnd {
                    status: RunStatus::Answered,
                    end_reason: None,
                    final_answer: Some("63".into()),
                    reward: Some(1.0),
                    prompt_tokens: 400,
                    completion_tokens: 120,
                };
                run.finish(end).await?.committed().await?;
                let id = run.id().to_owned();
                let log = log.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut f = log.lock().expect("the ack log lock");
                    f.write_all(format!("{id}\n").as_bytes())?;
                    f.sync_data()
                })
                .await??;
                pb.inc(1);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    store.close().await?;
    eprintln!(
        "stress: {} runs of 10 steps acknowledged",
        runs * writers as u64
    );
    Ok(())
}

/// Run ids in an ack log. A last line without its newline was cut by a kill before its fsync
/// finished, so it was never acknowledged and is ignored.
fn read_ack_log(path: &Path) -> anyhow::Result<Vec<String>> {
    let f = File::open(path).with_context(|| format!("reading the ack log {}", path.display()))?;
    let mut ids = Vec::new();
    let mut r = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        if !line.ends_with('\n') {
            break;
        }
        let id = line.trim();
        if !id.is_empty() {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

async fn verify(
    db: &str,
    ack_log: Option<&Path>,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let acked = match ack_log {
        Some(p) => read_ack_log(p)?,
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

/// A small deterministic generator, so benchmark data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly Zipf-distributed index below `n`: frequent words are frequent.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

fn vocabulary() -> Vec<String> {
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "bri", "cor", "dan", "fel",
        "gus", "hil", "jor", "kel", "mon", "tur",
    ];
    let mut v = Vec::new();
    for a in SYL {
        for b in SYL {
            for c in ["", "x", "n", "s", "ta"] {
                v.push(format!("{a}{b}{c}"));
            }
        }
    }
    v
}

fn sentence(rng: &mut Rng, vocab: &[String], words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&vocab[rng.zipf(vocab.len())]);
    }
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    };
    rd.flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

async fn bench(as_json: bool, steps: u64, db: Option<String>) -> anyhow::Result<()> {
    const CHUNK: u64 = 50_000;
    const STEPS_PER_RUN: u64 = 10;
    const QUERIES: usize = 300;
    if steps < STEPS_PER_RUN {
        bail!("--steps must be at least {STEPS_PER_RUN}");
    }
    let base = autodidact_memory::home_dir().join("bench");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let tmp = tempfile::tempdir_in(&base)?;
    let url = db.unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bench.db").display()));
    let mut opts = StoreOptions::new(&url);
    opts.index_dir = Some(tmp.path().join("bench.index"));
    let store = Store::open_with(opts).await?;
    let w = store.writer();
    let vocab = vocabulary();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let task_id = w
        .add_task(NewTask {
            family: "bench".into(),
            prompt: "Benchmark task".into(),
            context_ref: None,
            answer_spec: json!(null),
            split: Split::Train,
            parent_id: None,
            difficulty: None,
            source: "memory bench".into(),
        })
        .await?
        .committed()
        .await?;

    let pb = bar(steps, "ingesting steps");
    if as_json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut rates = Vec::new();
    let mut ingest_secs = 0.0;
    let mut written = 0u64;
    while written < steps {
        let chunk = CHUNK.min(steps - written);
        let runs = chunk.div_ceil(STEPS_PER_RUN);
        // Make the data first, so that the timing is the store's alone.
        let data: Vec<Vec<NewStep>> = (0..runs)
            .map(|_| {
                (0..STEPS_PER_RUN)
                    .map(|i| {
                        let kind = if i % 2 == 0 {
                            StepKind::ModelTurn
                        } else {
                            StepKind::CodeCell
                        };
                        NewStep {
                            stdout: sentence(&mut rng, &vocab, 6),
                            prompt_tokens: 120,
                            completion_tokens: 30,
                            latency_us: 2_000,
                            ..NewStep::new(
                                kind,
                                sentence(&mut rng, &vocab, 12),
                                sentence(&mut rng, &vocab, 8),
                            )
                        }
                    })
                    .collect()
            })
            .collect();
        let t0 = Instant::now();
        let mut acks = Vec::with_capacity(runs as usize);
        for run_steps in data {
            let (run, _) = w
                .begin_run(NewRun {
                    task_id: task_id.clone(),
                    agent: "bench".into(),
                    model_id: "none".into(),
                    adapter_id: None,
                    policy_hash: "bench".into(),
                })
                .await?;
            for s in run_steps {
                let _ = run.step(s).await?;
            }
            let end = RunEnd {
                status: RunStatus::Answered,
                end_reason: None,
                final_answer: Some("42".into()),
                reward: Some(1.0),
                prompt_tokens: 1200,
                completion_tokens: 300,
            };
            acks.push(run.finish(end).await?);
        }
        for a in acks {
            a.committed().await?;
        }
        let secs = t0.elapsed().as_secs_f64();
        ingest_secs += secs;
        rates.push((runs * STEPS_PER_RUN) as f64 / secs);
        written += runs * STEPS_PER_RUN;
        pb.set_position(written.min(steps));
    }
    pb.finish_and_clear();
    let t_index = Instant::now();
    store.flush().await?;
    let index_flush_s = t_index.elapsed().as_secs_f64();
    // Merge the index into one segment per search thread before searching, as maintenance
    // after a bulk load would; its cost is reported, not hidden.
    let t_merge = Instant::now();
    store.compact_index().await?;
    let index_merge_s = t_merge.elapsed().as_secs_f64();

    // Search: two-word queries drawn like the corpus, after a short warm-up.
    let mut lat = Vec::with_capacity(QUERIES);
    let mut hits_total = 0usize;
    for q in 0..(QUERIES + 20) {
        let query = sentence(&mut rng, &vocab, 2);
        let t = Instant::now();
        let hits = store.search(&query, &SearchFilters::default(), 10).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if q >= 20 {
            lat.push(ms);
            hits_total += hits.len();
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let mut sorted_rates = rates.clone();
    sorted_rates.sort_by(|a, b| a.total_cmp(b));
    let report = json!({
        "backend": store.backend(),
        "steps": written,
        "runs": written / STEPS_PER_RUN,
        "ingest_steps_per_s": percentile(&sorted_rates, 0.5).round(),
        "ingest_overall_steps_per_s": (written as f64 / ingest_secs).round(),
        "ingest_chunks": rates.len(),
        "index_flush_s": (index_flush_s * 1000.0).round() / 1000.0,
        "index_merge_s": (index_merge_s * 1000.0).round() / 1000.0,
        "indexed_docs": store.indexed_docs(),
        "index_segments": store.index_segments(),
        "search_queries": QUERIES,
        "search_k": 10,
        "search_mean_hits": hits_total as f64 / QUERIES as f64,
        "search_p50_ms": (percentile(&lat, 0.5) * 1000.0).round() / 1000.0,
        "search_p99_ms": (percentile(&lat, 0.99) * 1000.0).round() / 1000.0,
        "db_bytes": dir_bytes(&tmp.path().join("bench.db")) + dir_bytes(&tmp.path().join("bench.db-wal")),
        "index_bytes": dir_bytes(&tmp.path().join("bench.index")),
    });
    store.close().await?;
    if as_json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
