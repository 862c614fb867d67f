//! The harness: every item of a suite through the RLM runtime, `k` samples each, verified,
//! stored in memory, and summarised as pass@1, pass@k, tokens and latency.

use std::collections::BTreeMap;
use std::sync::Arc;

use autodidact_memory::{EvalRecord, NewTask, Split, Writer};
use autodidact_runtime::rlm::{Agent, Reward, TaskInput};
use autodidact_sandbox::Sandbox;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::passk::mean_pass_at_k;
use crate::suite::{Item, Suite};
use crate::verify::Verifier;
use crate::Result;

/// Called after every finished sample with (samples done, samples in all, the sample).
pub type OnSample = Arc<dyn Fn(usize, usize, &Sample) + Send + Sync>;

/// How to run a suite.
#[derive(Clone)]
pub struct HarnessOptions {
    /// Samples per item (pass@k's k). With k > 1 the policy's temperature should be above 0.
    pub k: u32,
    /// Runs in flight at once.
    pub concurrency: usize,
    /// The registered adapter the model runs with, recorded on runs and the eval record.
    pub adapter_id: Option<String>,
    /// Where tasks, the eval record and (for train items with k >= 2) GRPO groups are stored.
    /// The agent logs its runs through its own memory handle.
    pub writer: Option<Writer>,
    /// The sandbox for `python` verifiers.
    pub sandbox: Sandbox,
    /// Progress.
    pub on_sample: Option<OnSample>,
    /// After each stored group with both a pass and a failure, let the agent write a lesson to
    /// `experiences` (training-free GRPO).
    pub lessons: bool,
    /// Items whose task is already in memory (item id -> task id); the others get new tasks.
    pub existing_tasks: std::collections::HashMap<String, String>,
}

/// One attempt at one item.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// The item's id.
    pub item: String,
    /// The item's family.
    pub family: String,
    /// The run in memory, when it was logged.
    pub run_id: Option<String>,
    /// The answer given, if any.
    pub answer: Option<String>,
    /// Whether the verifier passed it.
    pub passed: bool,
    /// How the run stopped (`answered`, `max_iterations`, ...), or the host error.
    pub stop: String,
    /// Tokens the run used (its own turns).
    pub tokens: u64,
    /// Wall-clock milliseconds.
    pub latency_ms: f64,
}

/// All samples of one item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// The item's id.
    pub id: String,
    /// Its family.
    pub family: String,
    /// Its task in memory.
    pub task_id: Option<String>,
    /// Its samples in order.
    pub samples: Vec<Sample>,
}

impl ItemResult {
    /// (samples, passes).
    pub fn counts(&self) -> (u64, u64) {
        (self.samples.len() as u64, self.samples.iter().filter(|s| s.passed).count() as u64)
    }
}

/// Scores of one family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyScore {
    /// Items.
    pub n: usize,
    /// Mean pass@1.
    pub pass_at_1: f64,
    /// Mean pass@k.
    pub pass_at_k: f64,
}

/// What a suite run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The suite's name.
    pub suite: String,
    /// Items run.
    pub n: usize,
    /// Samples per item.
    pub k: u32,
    /// Mean pass@1 (unbiased, from all k samples).
    pub pass_at_1: f64,
    /// Mean pass@k.
    pub pass_at_k: f64,
    /// Mean tokens per sample.
    pub mean_tokens: f64,
    /// Mean wall-clock per sample.
    pub mean_latency_ms: f64,
    /// Scores per family.
    pub by_family: BTreeMap<String, FamilyScore>,
    /// Every item's samples.
    pub items: Vec<ItemResult>,
    /// The eval record's id in memory.
    pub eval_id: Option<String>,
    /// GRPO groups stored (train items with two or more logged samples).
    pub groups: usize,
}

impl Report {
    /// The summary object `autodidact eval --json` prints.
    pub fn summary(&self) -> Value {
        json!({
            "suite": self.suite, "n": self.n, "pass_at_1": self.pass_at_1, "pass_at_k": self.pass_at_k,
            "k": self.k, "mean_tokens": self.mean_tokens, "mean_latency_ms": self.mean_latency_ms,
            "by_family": self.by_family,
        })
    }

    /// Samples whose run failed on the host side (not the model's mistakes).
    pub fn host_errors(&self) -> Vec<&Sample> {
        self.items.iter().flat_map(|i| &i.samples).filter(|s| s.stop.starts_with("host error")).collect()
    }
}

pub(crate) use autodidact_memory::now_ms;

/// Runs every item of `suite` `opts.k` times through `agent`, concurrently, and stores the
/// runs (through the agent's memory), the tasks and, when the suite has eval items, the eval
/// record (through `opts.writer`).
/// A sample whose run fails on the host is a failed sample with the error as its stop reason;
/// only a memory failure is an `Err`.
pub async fn run_suite(agent: Arc<Agent>, suite: &Suite, opts: &HarnessOptions) -> Result<Report> {
    let started = now_ms();
    let k = opts.k.max(1);
    let mut task_ids = Vec::with_capacity(suite.items.len());
    for item in &suite.items {
        task_ids.push(match (&opts.writer, opts.existing_tasks.get(&item.id)) {
            (_, Some(id)) => Some(id.clone()),
            (Some(w), None) => Some(w.add_task(new_task(&format!("suite:{}", suite.name), item)).await?.committed().await?),
            (None, None) => None,
        });
    }
    let jobs: Vec<(usize, u32)> = (0..suite.items.len()).flat_map(|i| (0..k).map(move |s| (i, s))).collect();
    let total = jobs.len();
    let verifiers: Vec<Arc<dyn Reward>> = suite.items.iter().map(|i| Arc::new(Verifier::new(i, Some(opts.sandbox.clone()))) as Arc<dyn Reward>).collect();
    let mut results = futures::stream::iter(jobs)
        .map(|(i, s)| {
            let (agent, item, task_id) = (agent.clone(), &suite.items[i], task_ids[i].clone());
            let task = TaskInput {
                family: item.family.clone(),
                split: item.split,
                source: format!("suite:{}", suite.name),
                answer_spec: item.answer_spec(),
                task_id,
                adapter_id: opts.adapter_id.clone(),
                reward: Some(verifiers[i].clone()),
                reply_prefix: item.hint.clone(),
                ..TaskInput::new(item.prompt.clone(), item.context.clone().map_or(Value::Null, Value::String))
            };
            async move { (i, s, sample(&agent, item, task).await) }
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut by_item: Vec<Vec<(u32, Sample)>> = vec![Vec::new(); suite.items.len()];
    let mut done = 0;
    while let Some((i, s, sample)) = results.next().await {
        done += 1;
        if let Some(cb) = &opts.on_sample {
            cb(done, total, &sample);
        }
        by_item[i].push((s, sample));
    }
    drop(results);
    let mut items = Vec::with_capacity(suite.items.len());
    let mut groups = 0;
    for ((item, mut samples), task_id) in suite.items.iter().zip(by_item).zip(task_ids) {
        samples.sort_by_key(|(s, _)| *s);
        let samples: Vec<Sample> = samples.into_iter().map(|(_, s)| s).collect();
        if let (Some(w), Some(task), Split::Train, true) = (&opts.writer, &task_id, item.split, samples.len() >= 2) {
            let runs: Vec<String> = samples.iter().filter_map(|s| s.run_id.clone()).collect();
            if runs.len() >= 2 {
                w.add_group(task, opts.adapter_id.as_deref(), &runs).await?.committed().await?;
                groups += 1;
                if opts.lessons {
                    let attempts: Vec<(String, f64)> = samples.iter().filter_map(|s| Some((s.run_id.clone()?, f64::from(u8::from(s.passed))))).collect();
                    agent.write_lesson(&item.prompt, &attempts).await?;
                }
            }
        }
        items.push(ItemResult { id: item.id.clone(), family: item.family.clone(), task_id, samples });
    }
    let report = summarise(&suite.name, k, items);
    // Only eval items make an eval record: solving train items (LADDER, rollouts) is not a score.
    let is_eval = suite.items.iter().any(|i| i.split == Split::Eval);
    let eval_id = match &opts.writer {
        Some(w) if is_eval => {
            let passed = report.items.iter().filter(|i| i.counts().1 > 0).count() as u64;
            let mut pass_at_k = BTreeMap::from([(1, report.pass_at_1)]);
            pass_at_k.insert(k, report.pass_at_k);
            let record = EvalRecord {
                adapter_id: opts.adapter_id.clone(),
                suite: suite.name.clone(),
                n: report.n as u64,
                passed,
                pass_at_k,
                started_ms: started,
                finished_ms: now_ms(),
            };
            Some(w.record_eval(record).await?.committed().await?)
        }
        _ => None,
    };
    Ok(Report { eval_id, groups, ..report })
}

async fn sample(agent: &Arc<Agent>, item: &Item, task: TaskInput) -> Sample {
    let started = std::time::Instant::now();
    let base = Sample {
        item: item.id.clone(),
        family: item.family.clone(),
        run_id: None,
        answer: None,
        passed: false,
        stop: String::new(),
        tokens: 0,
        latency_ms: 0.0,
    };
    match agent.run(task).await {
        Ok(o) => Sample {
            run_id: o.run_id,
            answer: o.answer,
            passed: o.reward.is_some_and(|r| r >= 1.0),
            stop: o.stop.name().to_owned(),
            tokens: o.tokens,
            latency_ms: o.duration.as_secs_f64() * 1e3,
            ..base
        },
        Err(e) => Sample { stop: format!("host error: {e}"), latency_ms: started.elapsed().as_secs_f64() * 1e3, ..base },
    }
}

/// The memory task for `item`, recorded as coming from `source` (`suite:NAME`, `ladder`).
pub(crate) fn new_task(source: &str, item: &Item) -> NewTask {
    NewTask {
        family: item.family.clone(),
        prompt: item.prompt.clone(),
        context_ref: item.context.as_ref().map(|c| format!("{source} item {}: {} chars", item.id, c.chars().count())),
        answer_spec: item.answer_spec(),
        split: item.split,
        parent_id: item.parent_id.clone(),
        difficulty: None,
        source: source.to_owned(),
    }
}

/// Aggregates item results into a report (no memory involved).
pub fn summarise(suite: &str, k: u32, items: Vec<ItemResult>) -> Report {
    let counts: Vec<(u64, u64)> = items.iter().map(ItemResult::counts).collect();
    let samples: Vec<&Sample> = items.iter().flat_map(|i| &i.samples).collect();
    let mean = |f: &dyn Fn(&Sample) -> f64| if samples.is_empty() { 0.0 } else { samples.iter().map(|s| f(s)).sum::<f64>() / samples.len() as f64 };
    let mut fams: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for (item, c) in items.iter().zip(&counts) {
        fams.entry(item.family.clone()).or_default().push(*c);
    }
    let by_family = fams
        .into_iter()
        .map(|(f, c)| (f, FamilyScore { n: c.len(), pass_at_1: mean_pass_at_k(&c, 1), pass_at_k: mean_pass_at_k(&c, u64::from(k)) }))
        .collect();
    Report {
        suite: suite.to_owned(),
        n: items.len(),
        k,
        pass_at_1: mean_pass_at_k(&counts, 1),
        pass_at_k: mean_pass_at_k(&counts, u64::from(k)),
        mean_tokens: mean(&|s| s.tokens as f64),
        mean_latency_ms: mean(&|s| s.latency_ms),
        by_family,
        items,
        eval_id: None,
        groups: 0,
    }
}
