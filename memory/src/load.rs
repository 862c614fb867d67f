//! Synthetic workloads over a store, for `autodidact memory bench` and `memory stress`:
//!
//! - [`bench`]: ingests a Zipf-distributed corpus of runs and steps through the batched writer,
//!   flushes and compacts the index, then measures search latency; the numbers come back as
//!   JSON for the bench's report.
//! - [`stress`]: concurrent writers that each acknowledge a run only after its commit, and log
//!   its id (fsync'd) only then, so a kill at any moment must lose none of the logged ids
//!   ([`read_ack_log`], `Store::verify`).
//!
//! The data is made by a fixed-seed generator, so every run writes the same corpus.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::{Error, NewRun, NewStep, NewTask, Result, RunEnd, RunStatus, SearchFilters, Split, StepKind, Store, Writer};

/// Steps per run in both workloads.
pub const STEPS_PER_RUN: u64 = 10;

/// Ingests `steps` steps (in runs of [`STEPS_PER_RUN`]), flushes and compacts the index, and
/// times 300 two-word searches. `progress` hears the number of steps written so far. Returns
/// the report: ingest rates (median over chunks of 50,000 steps, and overall), index flush and
/// merge times, index size in documents and segments, search p50/p99 in ms.
pub async fn bench(store: &Store, steps: u64, progress: &mut (dyn FnMut(u64) + Send)) -> Result<Value> {
    const CHUNK: u64 = 50_000;
    const QUERIES: usize = 300;
    if steps < STEPS_PER_RUN {
        return Err(Error::Invalid { what: "bench size", detail: format!("--steps must be at least {STEPS_PER_RUN}") });
    }
    let w = store.writer();
    let vocab = vocabulary();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let task_id = add_task(&w, "bench", "Benchmark task", json!(null), "memory bench").await?;
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
                        let kind = if i % 2 == 0 { StepKind::ModelTurn } else { StepKind::CodeCell };
                        NewStep {
                            stdout: sentence(&mut rng, &vocab, 6),
                            prompt_tokens: 120,
                            completion_tokens: 30,
                            latency_us: 2_000,
                            ..NewStep::new(kind, sentence(&mut rng, &vocab, 12), sentence(&mut rng, &vocab, 8))
                        }
                    })
                    .collect()
            })
            .collect();
        let t0 = Instant::now();
        let mut acks = Vec::with_capacity(runs as usize);
        for run_steps in data {
            let (run, _) = w.begin_run(new_run(&task_id, "bench")).await?;
            for s in run_steps {
                let _ = run.step(s).await?;
            }
            acks.push(run.finish(run_end("42", 1200, 300)).await?);
        }
        for a in acks {
            a.committed().await?;
        }
        let secs = t0.elapsed().as_secs_f64();
        ingest_secs += secs;
        rates.push((runs * STEPS_PER_RUN) as f64 / secs);
        written += runs * STEPS_PER_RUN;
        progress(written.min(steps));
    }
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
    lat.sort_by(f64::total_cmp);
    let mut sorted_rates = rates.clone();
    sorted_rates.sort_by(f64::total_cmp);
    let ms3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "backend": store.backend(),
        "steps": written,
        "runs": written / STEPS_PER_RUN,
        "ingest_steps_per_s": percentile(&sorted_rates, 0.5).round(),
        "ingest_overall_steps_per_s": (written as f64 / ingest_secs).round(),
        "ingest_chunks": rates.len(),
        "index_flush_s": ms3(index_flush_s),
        "index_merge_s": ms3(index_merge_s),
        "indexed_docs": store.indexed_docs(),
        "index_segments": store.index_segments(),
        "search_queries": QUERIES,
        "search_k": 10,
        "search_mean_hits": hits_total as f64 / QUERIES as f64,
        "search_p50_ms": ms3(percentile(&lat, 0.5)),
        "search_p99_ms": ms3(percentile(&lat, 0.99)),
    }))
}

/// `writers` concurrent writers each write `runs` runs of [`STEPS_PER_RUN`] steps. A run's id
/// is appended to `ack_log` (and fsync'd) only after its commit is acknowledged. `progress`
/// hears each acknowledged run.
pub async fn stress(store: &Store, writers: usize, runs: u64, ack_log: &Path, progress: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
    let io = |source| Error::Io { path: ack_log.to_path_buf(), source };
    let log = OpenOptions::new().create(true).append(true).open(ack_log).map_err(io)?;
    let log = Arc::new(Mutex::new(log));
    let w = store.writer();
    let task_id = add_task(&w, "stress", "Durability load: compute multiples of seven.", json!({"kind": "none"}), "memory stress").await?;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (w, log, progress, task_id, path) = (w.clone(), log.clone(), progress.clone(), task_id.clone(), ack_log.to_path_buf());
        tasks.push(tokio::spawn(async move {
            for _ in 0..runs {
                let (run, _) = w.begin_run(new_run(&task_id, "stress")).await?;
                for i in 0..STEPS_PER_RUN {
                    let _ = run.step(stress_step(i)).await?;
                }
                run.finish(run_end("63", 400, 120)).await?.committed().await?;
                let id = run.id().to_owned();
                let log = log.clone();
                let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut f = log.lock().expect("the ack log lock");
                    f.write_all(format!("{id}\n").as_bytes())?;
                    f.sync_data()
                })
                .await
                .map_err(|e| Error::Invalid { what: "ack log writer", detail: e.to_string() })?;
                written.map_err(|source| Error::Io { path: path.clone(), source })?;
                progress();
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Invalid { what: "stress writer", detail: e.to_string() })??;
    }
    Ok(())
}

/// Run ids in an ack log. A last line without its newline was cut by a kill before its fsync
/// finished, so it was never acknowledged and is ignored.
pub fn read_ack_log(path: &Path) -> Result<Vec<String>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut r = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut ids = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(io)? == 0 || !line.ends_with('\n') {
            break;
        }
        let id = line.trim();
        if !id.is_empty() {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

async fn add_task(w: &Writer, family: &str, prompt: &str, answer_spec: Value, source: &str) -> Result<String> {
    let task = NewTask {
        family: family.into(),
        prompt: prompt.into(),
        context_ref: None,
        answer_spec,
        split: Split::Train,
        parent_id: None,
        difficulty: None,
        source: source.into(),
    };
    w.add_task(task).await?.committed().await
}

fn new_run(task_id: &str, agent: &str) -> NewRun {
    NewRun { task_id: task_id.to_owned(), agent: agent.into(), model_id: "none".into(), adapter_id: None, policy_hash: agent.into() }
}

fn run_end(answer: &str, prompt_tokens: u64, completion_tokens: u64) -> RunEnd {
    RunEnd { status: RunStatus::Answered, end_reason: None, final_answer: Some(answer.into()), reward: Some(1.0), prompt_tokens, completion_tokens }
}

fn stress_step(i: u64) -> NewStep {
    let kind = match i % 3 {
        0 => StepKind::ModelTurn,
        1 => StepKind::CodeCell,
        _ => StepKind::ToolCall,
    };
    NewStep { stdout: format!("{}\n", i * 7), prompt_tokens: 40, completion_tokens: 12, latency_us: 900, ..NewStep::new(kind, format!("x = {i} * 7\nprint(x)"), format!("step {i} output")) }
}

/// A small deterministic generator (xorshift), so benchmark data is the same on every run.
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

/// 2,000 made-up words from syllables.
fn vocabulary() -> Vec<String> {
    const SYL: [&str; 20] = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "bri", "cor", "dan", "fel", "gus", "hil", "jor", "kel", "mon", "tur"];
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

/// The value at fraction `p` of `sorted` (nearest rank); 0 for none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
