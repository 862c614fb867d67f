//! One night of self-improvement, stage by stage, resumable (`autodidact nightly`).
//!
//! A night is a row in memory (`nights`) and every stage, once finished, records its output
//! there (`night_stages`). Each stage reads only what earlier stages recorded, so a killed
//! night resumes at the first unrecorded stage and never repeats a finished one:
//!
//! 1. `gather`: the runs since the last night, and the train-split tasks that failed.
//! 2. `curriculum`: LADDER variant trees under the failed tasks, plus fresh train items of the
//!    target family (different items every night).
//! 3. `rollouts`: a group of attempts per train item through the agent, with the promoted
//!    adapter. A group with no success is retried with a partial-solution prefix (Scaf-GRPO's
//!    hint), and the hinted attempts join the group.
//! 4. `train`: a supervised warm start on verified first turns, then GRPO/DAPO batches, on top
//!    of the promoted adapter (held frozen) with the policy's consolidation penalty. The new
//!    update is merged with the promoted one into a single candidate adapter, registered in
//!    memory with its parent.
//! 5. `eval_promoted` and `eval_candidate`: every registered suite's eval items under each.
//! 6. `gate`: the paired-bootstrap promotion gate (`evals::gate`). A promoted candidate
//!    becomes the adapter every runtime serves (`serve` reloads it).
//! 7. `consolidate`: the lineage and generation of the promoted adapter, which is the
//!    accumulated past update the next night's penalty uses.
//! 8. `report`: the HTML report with the night's decision, evidence and forgetting matrix.
//!
//! Training uses the first model turn of each attempt, cut after its first code block, under
//! exactly the messages the agent sent (`Agent::first_messages`), with the attempt's final
//! reward: the turn that decides whether the agent uses the REPL protocol at all.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autodidact_evals::curriculum::{self, Tallies, Tally};
use autodidact_evals::gate::{ANY, SuiteComparison, decide};
use autodidact_evals::{HarnessOptions, Item, Report, Suite, builtin, families, run_suite};
use autodidact_memory::{AdapterStatus, NightStatus, Split, Store, now_ms};
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message};
use autodidact_runtime::rlm::{Agent, MemoryLog, TaskInput};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use autodidact_trainer::{BaseModel, Completion, DType, LoraAdapter, LossType, Split as TrainSplit, TrainConfig, TrainGroup};
use serde_json::{Value, json};

use crate::error::{Context, Error, Result, error_chain, io};

/// The stages, in order.
pub const STAGES: [&str; 9] = ["gather", "curriculum", "rollouts", "train", "eval_promoted", "eval_candidate", "gate", "consolidate", "report"];

/// Agent runs in flight at once by default. Eight is where a group's batched decoding on two
/// cores stops gaining (`bench model`), and eight agents' contexts fit the default KV cells.
pub const DEFAULT_PARALLEL: usize = 8;

/// The reward a failed attempt gets when its first code cell ran without an error.
pub const PARTIAL_REWARD: f64 = 0.1;

/// The hint a group with no success is retried with: the start of a protocol answer.
pub const HINT: &str = "```repl\nFINAL(";

/// What one night does; stored with the night, so a resumed night keeps its plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Plan {
    quick: bool,
    seed: u64,
    /// The suite that must improve, or `any` (`evals::gate::ANY`).
    target: String,
    suites: Vec<String>,
    /// The families the curriculum trains (empty in plans from before families: the target's).
    #[serde(default)]
    families: Vec<String>,
    eval_items: usize,
    eval_turns: u32,
    #[serde(default = "default_turn_tokens")]
    turn_tokens: u32,
    #[serde(default = "default_completion_length")]
    max_completion_length: usize,
    /// The system prompt's worked examples in rollouts and evals (`prompt.examples`).
    #[serde(default = "yes")]
    examples: bool,
    train_tasks: usize,
    curriculum_tasks: usize,
    group_size: u32,
    rollout_turns: u32,
    hints: bool,
    sft_warm_start: bool,
    sft_steps: usize,
    sft_learning_rate: f64,
    train_steps: usize,
    budget_s: Option<f64>,
    policy: Option<String>,
    #[serde(default)]
    out: Option<String>,
    /// Agent runs in flight at once in rollouts, LADDER and evals (continuous batching).
    #[serde(default = "one")]
    parallel: usize,
    /// The base model file's SHA-256: scores are reused only on the same weights.
    #[serde(default)]
    model_sha256: Option<String>,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn default_turn_tokens() -> u32 {
    256
}

fn default_completion_length() -> usize {
    256
}

impl Plan {
    fn new(options: &NightOptions) -> Plan {
        let policy = &options.policy;
        let n = &policy.nightly;
        let mut target = policy.promotion.target_suite.clone();
        let mut suites: Vec<String> = if target == ANY { Vec::new() } else { vec![target.clone()] };
        suites.extend(n.suites.iter().filter(|s| **s != target).cloned());
        let mut families = if target == ANY { n.families.clone() } else { target_family(&target) };
        if options.quick && target == ANY {
            // The demo: the toy family, scored on toy and arith.
            target = "toy".into();
            suites = vec!["toy".into(), "arith".into()];
            families = vec!["toy".into()];
        }
        let mut plan = Plan {
            quick: options.quick,
            seed: options.seed,
            target,
            suites,
            families,
            eval_items: n.eval_items,
            eval_turns: Policy::preset_eval().recursion.max_iterations,
            turn_tokens: Policy::preset_eval().budget.turn_tokens,
            max_completion_length: policy.training.max_completion_length,
            examples: policy.prompt.examples,
            train_tasks: n.train_tasks,
            curriculum_tasks: n.curriculum_tasks,
            group_size: n.group_size,
            rollout_turns: n.rollout_turns,
            hints: n.hints,
            sft_warm_start: n.sft_warm_start,
            sft_steps: n.sft_steps,
            sft_learning_rate: (policy.training.learning_rate * 10.0).min(1e-3),
            train_steps: n.train_steps,
            budget_s: options.budget.map(|d| d.as_secs_f64()),
            policy: options.policy_path.as_ref().map(|p| p.display().to_string()),
            out: options.out.as_ref().map(|p| p.display().to_string()),
            parallel: options.parallel.max(1),
            model_sha256: None,
        };
        if options.quick {
            plan.eval_items = plan.eval_items.min(16);
            plan.eval_turns = 2;
            plan.turn_tokens = plan.turn_tokens.min(128);
            // The first tokens decide whether a reply follows the protocol.
            plan.max_completion_length = plan.max_completion_length.min(64);
            plan.sft_steps = plan.sft_steps.min(3);
            plan.train_tasks = plan.train_tasks.min(6);
            plan.curriculum_tasks = plan.curriculum_tasks.min(2);
            plan.rollout_turns = plan.rollout_turns.min(2);
            plan.train_steps = plan.train_steps.min(2);
        }
        plan
    }
}

/// One night: its plan, what its finished stages recorded, and the engines its stages share.
/// [`Night::open`] starts a night or resumes the open one; [`Night::run`] runs its stages.
pub struct Night {
    id: String,
    plan: Plan,
    policy: Policy,
    store: Arc<Store>,
    llama: Arc<LlamaCppModel>,
    model: Arc<dyn LanguageModel>,
    sandbox: Sandbox,
    model_path: PathBuf,
    started: Instant,
    outputs: HashMap<String, Value>,
    stop_after: Option<String>,
    events: Events,
}

/// What a night is asked to do.
#[derive(Debug, Clone)]
pub struct NightOptions {
    /// The policy: its `[training]`, `[promotion]` and `[nightly]` sections.
    pub policy: Policy,
    /// The file the policy came from, recorded in the plan.
    pub policy_path: Option<PathBuf>,
    /// Wall-clock budget. Training stops early to leave time for the evaluations; a stage
    /// already running is finished.
    pub budget: Option<Duration>,
    /// A small plan for a demo (6 train tasks, 16 eval items per suite, 2-turn runs of
    /// 128-token turns).
    pub quick: bool,
    /// The base GGUF.
    pub model_path: PathBuf,
    /// Threads for llama.cpp (`None`: all cores).
    pub threads: Option<usize>,
    /// Seed of item choice, sampling and training.
    pub seed: u64,
    /// Abandon an unfinished night (marked failed) instead of resuming it.
    pub fresh: bool,
    /// Where the night's adapters and report go (`None`: adapters in
    /// `$AUTODIDACT_HOME/nights`, the report in `$AUTODIDACT_HOME/reports`).
    pub out: Option<PathBuf>,
    /// Stop after this stage, leaving the night open.
    pub stop_after: Option<String>,
    /// Agent runs in flight at once: the in-process model decodes their turns together.
    pub parallel: usize,
}

impl NightOptions {
    /// The defaults for `policy`: the bootstrapped model, all cores, seed 0, resume, no budget.
    pub fn new(policy: Policy) -> NightOptions {
        NightOptions {
            policy,
            policy_path: None,
            budget: None,
            quick: false,
            model_path: autodidact_runtime::model::smollm2_path(),
            threads: None,
            seed: 0,
            fresh: false,
            out: None,
            stop_after: None,
            parallel: DEFAULT_PARALLEL,
        }
    }
}

/// What a night tells while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NightEvent {
    /// Opening: the night started, resumed or was abandoned.
    Note(String),
    /// A stage starts, or reports what it found.
    Progress(String),
}

type Events = Arc<dyn Fn(NightEvent) + Send + Sync>;

/// How [`Night::run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every stage ran: the night's summary (before, after, decision, evidence, report).
    Finished(Value),
    /// `stop_after` was reached; the night stays open and resumes at the next stage.
    Stopped {
        /// The last stage that ran.
        stage: String,
    },
}

impl Night {
    /// Starts a night on `store`, or resumes the open one (unless `options.fresh`), loads the
    /// model and opens the sandbox. `events` hears what happens, from here on.
    pub async fn open(store: Arc<Store>, options: NightOptions, events: impl Fn(NightEvent) + Send + Sync + 'static) -> Result<Night> {
        let events: Events = Arc::new(events);
        if let Some(stage) = &options.stop_after
            && !STAGES.contains(&stage.as_str())
        {
            return Err(Error::Invalid(format!("unknown stage {stage:?}; the stages are {}", STAGES.join(", "))));
        }
        let writer = store.writer();
        let (id, plan, outputs) = match store.open_night().await? {
            Some(open) if !options.fresh => {
                let plan: Plan = serde_json::from_value(open.plan.clone()).context_with(|| "the open night's plan is unreadable; run with --fresh".into())?;
                let outputs: HashMap<String, Value> = store.night_stages(&open.id).await?.into_iter().map(|s| (s.stage, s.output)).collect();
                events(NightEvent::Note(format!("resuming night {} ({} of {} stages done)", open.id, outputs.len(), STAGES.len())));
                (open.id, plan, outputs)
            }
            open => {
                if let Some(open) = open {
                    writer.end_night(&open.id, NightStatus::Failed, json!({"reason": "abandoned with --fresh"})).await?.committed().await?;
                    events(NightEvent::Note(format!("abandoned night {}", open.id)));
                }
                let plan = Plan::new(&options);
                check_plan(&plan)?;
                let mut plan = plan;
                plan.model_sha256 = Some(crate::adapters::sha256_file(&options.model_path)?);
                let id = writer.begin_night(serde_json::to_value(&plan)?).await?.committed().await?;
                events(NightEvent::Note(format!("night {id}: target `{}`, suites {:?}", plan.target, plan.suites)));
                (id, plan, HashMap::new())
            }
        };
        let model_path = options.model_path.clone();
        let llama = Arc::new(LlamaCppModel::load(LlamaCppConfig { path: model_path.clone(), threads: options.threads, ..LlamaCppConfig::default() }).await?);
        let model: Arc<dyn LanguageModel> = llama.clone();
        let sandbox = Sandbox::open(&SandboxConfig::from_env())?;
        Ok(Night {
            id,
            plan,
            policy: options.policy,
            store,
            llama,
            model,
            sandbox,
            model_path,
            started: Instant::now(),
            outputs,
            stop_after: options.stop_after,
            events,
        })
    }

    /// The night's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs every stage not recorded yet, in order, recording each one's output when it
    /// finishes. A failed stage ends the night as failed, with the reason.
    pub async fn run(&mut self) -> Result<Outcome> {
        for stage in STAGES {
            if self.outputs.contains_key(stage) {
                continue;
            }
            let t0 = now_ms();
            self.say(&format!("stage {stage}"));
            let night = &*self;
            let result = match stage {
                "gather" => gather(night).await,
                "curriculum" => curriculum(night).await,
                "rollouts" => rollouts(night).await,
                "train" => train(night).await,
                "eval_promoted" => evaluate(night, false).await,
                "eval_candidate" => evaluate(night, true).await,
                "gate" => gate(night).await,
                "consolidate" => consolidate(night).await,
                "report" => report(night).await,
                _ => unreachable!("every stage is matched"),
            };
            let output = match result {
                Ok(o) => o,
                Err(e) => {
                    let reason = format!("stage {stage} failed: {}", error_chain(&e));
                    self.store.writer().end_night(&self.id, NightStatus::Failed, json!({"stage": stage, "reason": reason})).await?.committed().await?;
                    return Err(Error::Invalid(reason));
                }
            };
            self.store.writer().record_stage(&self.id, stage, t0, output.clone()).await?.committed().await?;
            self.outputs.insert(stage.to_owned(), output);
            if self.stop_after.as_deref() == Some(stage) {
                self.say(&format!("stopped after {stage}; run `autodidact nightly` again to resume"));
                return Ok(Outcome::Stopped { stage: stage.to_owned() });
            }
        }
        let stages = self.store.night_stages(&self.id).await?;
        let stage_seconds: serde_json::Map<String, Value> =
            stages.iter().map(|s| (s.stage.clone(), json!(((s.finished_ms - s.started_ms) as f64 / 100.0).round() / 10.0))).collect();
        let mut summary = summary(self);
        summary["stage_seconds"] = Value::Object(stage_seconds);
        // Fallbacks the night's runs took instead of failing, by source (0 when none).
        let from = stages.iter().map(|s| s.started_ms).min().unwrap_or(0);
        summary["warnings"] = json!(self.store.warning_counts(from, i64::MAX).await?);
        self.store.writer().end_night(&self.id, NightStatus::Finished, summary.clone()).await?.committed().await?;
        self.store.flush().await?;
        Ok(Outcome::Finished(summary))
    }
}

impl Night {
    fn say(&self, msg: &str) {
        (self.events)(NightEvent::Progress(msg.to_owned()));
    }

    /// This night's folder: adapters and the report.
    fn dir(&self) -> Result<PathBuf> {
        let root = self.plan.out.as_ref().map_or_else(|| autodidact_memory::home_dir().join("nights"), PathBuf::from);
        let dir = root.join(format!("night-{}", self.id));
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(dir)
    }

    fn out(&self, stage: &str) -> &Value {
        self.outputs.get(stage).unwrap_or(&Value::Null)
    }

    /// Seconds left of `--budget`, if one was given.
    fn time_left(&self) -> Option<f64> {
        self.plan.budget_s.map(|b| b - self.started.elapsed().as_secs_f64())
    }

    /// An agent on the shared model with `policy`, logging to memory.
    fn agent(&self, policy: Policy, name: &str) -> Result<Arc<Agent>> {
        let memory = MemoryLog { writer: self.store.writer(), store: self.store.clone() };
        Ok(Arc::new(Agent::new(self.model.clone(), self.sandbox.clone(), policy)?.with_memory(memory).with_name(name)))
    }

    /// The eval preset, with the plan's turn cap: evals of both adapters use it.
    fn eval_policy(&self) -> Policy {
        let mut p = Policy::preset_eval();
        p.recursion.max_iterations = self.plan.eval_turns;
        p.budget.turn_tokens = self.plan.turn_tokens;
        p.prompt.examples = self.plan.examples;
        p
    }

    /// Rollouts: the eval policy's budgets, the plan's turns, and sampling.
    fn rollout_policy(&self) -> Policy {
        let mut p = self.eval_policy();
        p.recursion.max_iterations = self.plan.rollout_turns;
        p.budget.temperature = 0.8;
        p
    }

    /// Applies `adapter` (a registered adapter's file) or the base model to the shared model.
    async fn use_adapter(&self, path: Option<&str>) -> Result<()> {
        self.model.set_adapter(None).await?;
        if let Some(path) = path {
            let h = self.model.load_adapter(std::path::Path::new(path)).await.context_with(|| format!("llama.cpp refused adapter {path}"))?;
            self.model.set_adapter(Some((h, 1.0))).await?;
        }
        Ok(())
    }

    fn harness(&self, k: u32, adapter_id: Option<String>, existing: HashMap<String, String>) -> HarnessOptions {
        HarnessOptions {
            k,
            // The model decodes concurrent runs' turns together (continuous batching), and
            // their shared prompt prefixes are evaluated once.
            concurrency: self.plan.parallel,
            adapter_id,
            writer: Some(self.store.writer()),
            sandbox: self.sandbox.clone(),
            on_sample: None,
            lessons: false,
            existing_tasks: existing,
        }
    }
}

/// The promoted adapter as (id, path), if any: read once per night, at `gather`.
fn promoted(night: &Night) -> (Option<String>, Option<String>) {
    let g = night.out("gather");
    (g["promoted_id"].as_str().map(str::to_owned), g["promoted_path"].as_str().map(str::to_owned))
}

async fn gather(night: &Night) -> Result<Value> {
    let store = &night.store;
    // The day is everything since the last finished night ended: that night's own rollouts were
    // its training data, not today's failures.
    let since = store.nights(20).await?.into_iter().filter(|n| n.status == NightStatus::Finished).filter_map(|n| n.finished_ms).max().unwrap_or(0);
    let runs: Vec<_> = store.runs(100_000).await?.into_iter().filter(|r| r.run.started_ms >= since).collect();
    let mut failed: Vec<String> = Vec::new();
    for r in &runs {
        let id = &r.run.spec.task_id;
        if r.run.reward.unwrap_or(0.0) < 1.0 && !failed.contains(id) && store.task(id).await?.spec.split == Split::Train {
            failed.push(id.clone());
        }
    }
    let promoted = store.promoted_adapter().await?;
    let stats = store.stats().await?;
    Ok(json!({
        "since_ms": since,
        "runs": runs.len(),
        "failed_train_tasks": failed,
        "untrained_groups": stats.untrained_groups,
        "promoted_id": promoted.as_ref().map(|a| a.id.clone()),
        "promoted_path": promoted.as_ref().map(|a| a.spec.path.clone()),
        "generation": promoted.as_ref().and_then(|a| a.spec.metrics["generation"].as_u64()).unwrap_or(0),
    }))
}

/// A new night's plan must name known families and suites.
fn check_plan(plan: &Plan) -> Result<()> {
    if plan.families.is_empty() {
        return Err(Error::Invalid(format!("the target suite `{}` is no trainable family's eval suite; name a family's suite or use `any`", plan.target)));
    }
    for f in &plan.families {
        families::family(f)?;
    }
    for s in &plan.suites {
        if !builtin::BUILTIN.contains(&s.as_str()) {
            return Err(Error::Invalid(format!("nightly.suites: `{s}` is not a built-in suite ({})", builtin::BUILTIN.join(", "))));
        }
    }
    Ok(())
}

/// The families a plan trains: its own list, or for plans from before families, the target's.
fn plan_families(plan: &Plan) -> Vec<String> {
    if !plan.families.is_empty() {
        return plan.families.clone();
    }
    target_family(&plan.target)
}

/// The share of a printed loss that is the consolidation penalty (the loss includes it), so a
/// night on top of a promoted adapter does not read as a model that cannot fit its traces.
fn penalty_note(penalty: f64) -> String {
    if penalty > 0.0 { format!(" (of which consolidation penalty {penalty:.4})") } else { String::new() }
}

/// The family a named target suite measures (none for `any` or an unknown suite).
fn target_family(target: &str) -> Vec<String> {
    families::measured_by(target).map(|f| vec![f.name.to_owned()]).unwrap_or_default()
}

/// Unhinted attempts and successes per family and level, from the rollouts of the last
/// `nights` finished nights.
async fn tallies(night: &Night, nights: usize) -> Result<Tallies> {
    let mut t = Tallies::new();
    let finished = night.store.nights(50).await?.into_iter().filter(|n| n.status == NightStatus::Finished && n.id != night.id).take(nights);
    for n in finished {
        for st in night.store.night_stages(&n.id).await? {
            if st.stage != "rollouts" {
                continue;
            }
            for g in st.output["groups"].as_array().into_iter().flatten() {
                let (Some(family), Some(level)) = (g["family"].as_str(), g["level"].as_u64()) else { continue };
                t.entry((family.to_owned(), level as u32)).or_default().add(Tally::of_group(g));
            }
        }
    }
    Ok(t)
}

async fn curriculum(night: &Night) -> Result<Value> {
    let plan = &night.plan;
    // Where each family stands: its frontier level and tonight's share of the train items.
    let names = plan_families(plan);
    let fams: Vec<&families::Family> = names.iter().filter_map(|n| families::family(n).ok()).collect();
    let picks = curriculum::plan(&fams, &tallies(night, 3).await?, plan.train_tasks);
    for p in &picks {
        night.say(&format!("curriculum: {} level {}: {} items ({})", p.family, p.level, p.items, p.reason));
    }
    // Fresh train items: a different window of each family's level every night. They are
    // regenerated from (family, level, skip, n) by the rollouts, not stored: a haystack is 1 MB.
    let nights_done = night.store.nights(100_000).await?.iter().filter(|n| n.status == NightStatus::Finished).count();
    let skip = nights_done * plan.train_tasks.max(8) + plan.seed as usize * 7;
    let fresh: Vec<Value> = picks.iter().filter(|p| p.items > 0).map(|p| json!({"family": p.family, "level": p.level, "skip": skip, "n": p.items})).collect();
    // The day's failed train tasks: users' tasks with a verifier are tried again; those whose
    // family LADDER can rewrite also get variant trees.
    let mut seeds = Vec::new();
    let mut retried = Vec::new();
    for id in night.out("gather")["failed_train_tasks"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let task = night.store.task(id).await?;
        let Ok(item) = crate::ttrl::item_of(&task) else { continue };
        // Its context was not stored: the task cannot be asked again as it was.
        if task.spec.answer_spec["has_context"] == json!(true) {
            continue;
        }
        if retried.len() < plan.curriculum_tasks.max(4) && !item.id.contains("-train-") {
            retried.push(Item { id: format!("user-{}", task.id), parent_id: Some(task.id.clone()), split: Split::Train, ..item.clone() });
        }
        if seeds.len() < plan.curriculum_tasks && builtin::core_expression(&item).is_some() {
            seeds.push(Item { parent_id: Some(task.id.clone()), ..item });
        }
    }
    let mut variants = Vec::new();
    if !seeds.is_empty() {
        let opts = autodidact_evals::ladder::LadderOptions {
            depth: 1,
            variants: 2,
            group: 0,
            concurrency: plan.parallel,
            sandbox: night.sandbox.clone(),
            writer: Some(night.store.writer()),
            adapter_id: promoted(night).0,
            seed: plan.seed,
            max_tokens: 128,
            on_event: None,
        };
        night.use_adapter(promoted(night).1.as_deref()).await?;
        let agent = night.agent(night.rollout_policy(), "nightly-ladder")?;
        let seeds_suite = Suite { name: "nightly-seeds".into(), items: seeds.clone() };
        // A family whose variants cannot be made must not stop the night.
        match autodidact_evals::ladder::run_ladder(agent, night.model.clone(), &seeds_suite, &opts).await {
            Ok(report) => variants = report.nodes.into_iter().map(|n| n.item).collect(),
            Err(e) => night.say(&format!("curriculum: LADDER failed ({}); going on without variants", error_chain(&Error::from(e)))),
        }
    }
    let items: Vec<Item> = retried.iter().cloned().chain(variants.iter().cloned()).collect();
    let suite = Suite { name: "nightly-curriculum".into(), items };
    let user_tasks: Vec<Value> = retried.iter().map(|i| json!({"task_id": i.parent_id, "item": i.id, "prompt": i.prompt})).collect();
    Ok(json!({
        "picks": picks, "fresh": fresh, "fresh_items": picks.iter().map(|p| p.items).sum::<usize>(),
        "user_tasks": user_tasks, "ladder_seeds": seeds.len(), "ladder_variants": variants.len(), "suite": suite.to_jsonl(),
    }))
}

/// The policy's teacher on `items`: (item id, run id, verified) per run. `reference` runs each
/// item's worked solution through the agent (a scripted reply, executed in the sandbox);
/// `openai:URL#MODEL` runs the agent on that model. Runs attach to the items' tasks.
async fn teach(night: &Night, items: &[Item], task_of: &HashMap<String, String>) -> Result<Vec<(String, String, bool)>> {
    let teacher = night.policy.training.teacher.as_str();
    let mut policy = night.eval_policy();
    policy.recursion.max_iterations = night.plan.rollout_turns.max(2);
    let memory = || MemoryLog { writer: night.store.writer(), store: night.store.clone() };
    let mut reports = Vec::new();
    if teacher == "reference" {
        for item in items.iter().filter(|i| i.solution.is_some()) {
            let model: Arc<dyn LanguageModel> = Arc::new(autodidact_runtime::model::scripted::ScriptedModel::from_text(item.solution.as_deref().unwrap_or_default(), "reference solution"));
            let agent = Arc::new(Agent::new(model, night.sandbox.clone(), policy.clone())?.with_memory(memory()).with_name("nightly-teacher"));
            let one = Suite { name: "nightly-teacher".into(), items: vec![item.clone()] };
            reports.push(run_suite(agent, &one, &night.harness(1, None, task_of.clone())).await?);
        }
    } else {
        let spec = autodidact_runtime::model::ModelSpec::parse(teacher)?;
        let model = autodidact_runtime::model::open(&spec, &autodidact_runtime::model::OpenOptions::default()).await?;
        let agent = Arc::new(Agent::new(model, night.sandbox.clone(), policy)?.with_memory(memory()).with_name("nightly-teacher"));
        let suite = Suite { name: "nightly-teacher".into(), items: items.to_vec() };
        reports.push(run_suite(agent, &suite, &night.harness(2, None, task_of.clone())).await?);
    }
    Ok(reports
        .iter()
        .flat_map(|r| r.items.iter())
        .flat_map(|i| i.samples.iter().filter_map(|s| Some((i.id.clone(), s.run_id.clone()?, s.passed))))
        .collect())
}

/// The items a night rolls out: the curriculum's fresh items, regenerated, then its suite.
fn curriculum_items(night: &Night) -> Result<Vec<Item>> {
    let c = night.out("curriculum");
    let mut items = Vec::new();
    for f in c["fresh"].as_array().into_iter().flatten() {
        let (family, level) = (f["family"].as_str().unwrap_or_default(), f["level"].as_u64().unwrap_or(1) as u32);
        let (skip, n) = (f["skip"].as_u64().unwrap_or(0) as usize, f["n"].as_u64().unwrap_or(0) as usize);
        match families::train_items(family, level, skip, n) {
            Ok(made) => items.extend(made),
            Err(e) => night.say(&format!("curriculum: family {family} level {level} failed to generate ({e}); skipped")),
        }
    }
    let text = c["suite"].as_str().unwrap_or_default();
    if !text.trim().is_empty() {
        items.extend(Suite::parse("nightly-curriculum", "curriculum", text)?.items);
    }
    Ok(items)
}

async fn rollouts(night: &Night) -> Result<Value> {
    let plan = &night.plan;
    let items = curriculum_items(night)?;
    if items.is_empty() {
        return Err(Error::Invalid("the curriculum chose no train items (every family mastered?); nothing to roll out".into()));
    }
    let suite = Suite { name: format!("nightly-{}", plan.target), items };
    let (promoted_id, promoted_path) = promoted(night);
    night.use_adapter(promoted_path.as_deref()).await?;
    let agent = night.agent(night.rollout_policy(), "nightly-rollouts")?;
    let report = run_suite(agent.clone(), &suite, &night.harness(plan.group_size, promoted_id.clone(), HashMap::new())).await?;
    let mut groups: Vec<Value> = Vec::new();
    let mut retry = Vec::new();
    let mut task_of = HashMap::new();
    for (item, r) in suite.items.iter().zip(&report.items) {
        let runs: Vec<Value> = r.samples.iter().filter_map(|s| Some(json!([s.run_id.clone()?, f64::from(u8::from(s.passed)), false]))).collect();
        if let Some(t) = &r.task_id {
            task_of.insert(item.id.clone(), t.clone());
        }
        if plan.hints && r.counts().1 == 0 {
            retry.push(Item { hint: Some(HINT.to_owned()), ..item.clone() });
        }
        groups.push(json!({"item": item.id, "task_id": r.task_id, "prompt": item.prompt, "family": item.family, "level": item.level, "runs": runs}));
    }
    night.say(&format!("rollouts: pass rate {:.3}; {} groups without a success", report.pass_at_1, retry.len()));
    let mut hinted_rate = Value::Null;
    if !retry.is_empty() {
        let hinted = Suite { name: suite.name.clone(), items: retry };
        let h = run_suite(agent, &hinted, &night.harness(plan.group_size, promoted_id, task_of.clone())).await?;
        hinted_rate = json!(h.pass_at_1);
        for r in &h.items {
            if let Some(g) = groups.iter_mut().find(|g| g["item"] == r.id.as_str()) {
                let runs = g["runs"].as_array_mut().expect("runs is an array");
                runs.extend(r.samples.iter().filter_map(|s| Some(json!([s.run_id.clone()?, f64::from(u8::from(s.passed)), true]))));
            }
        }
        night.say(&format!("hinted retries: pass rate {:.3}", h.pass_at_1));
    }
    // A teacher on the items still without a success; its verified runs join their groups
    // (flagged, so they never count as the student's pass rate).
    let unsolved: Vec<Item> = suite
        .items
        .iter()
        .filter(|it| groups.iter().find(|g| g["item"] == it.id.as_str()).is_some_and(|g| !g["runs"].as_array().into_iter().flatten().any(|r| r[1].as_f64().unwrap_or(0.0) >= 1.0)))
        .cloned()
        .collect();
    let mut teacher = json!({"kind": night.policy.training.teacher, "items": unsolved.len(), "verified": 0});
    if !unsolved.is_empty() && night.policy.training.teacher != "none" {
        match teach(night, &unsolved, &task_of).await {
            Ok(runs) => {
                let verified = runs.iter().filter(|(_, _, passed)| *passed).count();
                night.say(&format!("teacher ({}): {verified} of {} unsolved items verified", night.policy.training.teacher, unsolved.len()));
                teacher["verified"] = json!(verified);
                for (item, run_id, passed) in runs {
                    if let Some(g) = groups.iter_mut().find(|g| g["item"] == item.as_str()) {
                        g["runs"].as_array_mut().expect("runs is an array").push(json!([run_id, f64::from(u8::from(passed)), true, "teacher"]));
                    }
                }
            }
            Err(e) => {
                // A teacher that is down must not stop the night.
                let reason = error_chain(&e);
                night.say(&format!("teacher ({}) failed: {reason}; going on without it", night.policy.training.teacher));
                teacher["error"] = json!(reason);
            }
        }
    }
    Ok(json!({"items": suite.items.len(), "pass_rate": report.pass_at_1, "hinted_pass_rate": hinted_rate, "teacher": teacher, "groups": groups}))
}

/// One rollout group as trainer input: the agent's first-turn messages for the task (without
/// any hint) and each attempt's first model turn with the attempt's reward.
async fn train_group(night: &Night, agent: &Agent, g: &Value, context: Option<&String>) -> Result<Option<(TrainGroup, (usize, usize))>> {
    // The agent's first messages describe the context (its length and start): rebuild them with
    // the context the attempts saw.
    let task = TaskInput::new(g["prompt"].as_str().unwrap_or_default(), context.map_or(Value::Null, |c| Value::String(c.clone())));
    let messages: Vec<Message> = agent.first_messages(&task).await;
    let mut completions = Vec::new();
    let mut prompt_tokens = Vec::new();
    let mut hinted_successes = 0;
    let mut partial_rewards = 0;
    for run in g["runs"].as_array().into_iter().flatten() {
        let (Some(run_id), Some(reward), hinted) = (run[0].as_str(), run[1].as_f64(), run[2].as_bool().unwrap_or(false)) else { continue };
        // A teacher's run is trained on only when verified: its failures are not the student's.
        if run[3] == "teacher" && reward < 1.0 {
            continue;
        }
        let steps = night.store.steps(run_id).await?;
        let Some(first) = steps.iter().find(|s| s.data.kind == autodidact_memory::StepKind::ModelTurn) else { continue };
        if first.data.output.trim().is_empty() {
            continue;
        }
        let (p, c) = night.llama.tokenize_chat(&messages, first_block(&first.data.output)).await?;
        prompt_tokens = p;
        if c.is_empty() {
            continue;
        }
        hinted_successes += usize::from(hinted && reward >= 1.0 && run[3] != "teacher");
        // A partial reward, kept apart from correctness: a failed attempt whose first turn
        // wrote a code block that ran without an error followed the protocol.
        let ran = steps.iter().find(|s| s.data.kind == autodidact_memory::StepKind::CodeCell).is_some_and(|c| c.data.error.is_none());
        let partial = if reward < 1.0 && ran { PARTIAL_REWARD } else { 0.0 };
        partial_rewards += usize::from(partial > 0.0);
        completions.push(Completion { tokens: c, reward: reward + partial, truncated: false });
    }
    if completions.is_empty() {
        return Ok(None);
    }
    let task = g["item"].as_str().unwrap_or_default().to_owned();
    Ok(Some((TrainGroup { task, split: TrainSplit::Train, prompt_tokens, completions }, (hinted_successes, partial_rewards))))
}

/// A reply up to the end of its first fenced code block: the agent runs that block first, and
/// an answering block ends the run, so what follows it rarely mattered. A reply without a
/// closed block is kept whole.
fn first_block(reply: &str) -> &str {
    let Some(open) = reply.find("```") else { return reply };
    let body = open + 3 + reply[open + 3..].find('\n').unwrap_or(0);
    match reply[body..].find("```") {
        Some(close) => &reply[..body + close + 3],
        None => reply,
    }
}

async fn train(night: &Night) -> Result<Value> {
    let plan = &night.plan;
    let (promoted_id, promoted_path) = promoted(night);
    let agent = night.agent(night.rollout_policy(), "nightly-train")?;
    let mut groups = Vec::new();
    let (mut hinted_successes, mut partial_rewards) = (0, 0);
    let contexts: HashMap<String, String> = curriculum_items(night)?.into_iter().filter_map(|i| Some((i.id, i.context?))).collect();
    for g in night.out("rollouts")["groups"].as_array().into_iter().flatten() {
        if let Some((tg, (h, p))) = train_group(night, &agent, g, g["item"].as_str().and_then(|id| contexts.get(id))).await? {
            hinted_successes += h;
            partial_rewards += p;
            groups.push(tg);
        }
    }
    if groups.is_empty() {
        return Err(Error::Invalid("no rollout produced a model turn to train on".into()));
    }
    let out = night.dir()?;
    let base = BaseModel::load_gguf(&night.model_path, DType::F32).context_with(|| format!("loading {} into the trainer", night.model_path.display()))?;
    let past = match &promoted_path {
        Some(p) => Some(LoraAdapter::load_gguf(std::path::Path::new(p), DType::F32).context_with(|| format!("loading the promoted adapter {p}"))?.0),
        None => None,
    };
    let mut config = TrainConfig::from_policy(&night.policy.training);
    config.seed = plan.seed;
    config.loss.max_completion_length = plan.max_completion_length;
    // With shared prompts a micro-batch runs its prompt once: take whole groups (attempts and
    // hinted retries) per micro-batch.
    config.micro_batch = config.micro_batch.max(2 * plan.group_size as usize);
    let mut trainer = crate::train::trainer_with_past(base, config.clone(), past.clone())?;
    let mut curve = Vec::new();
    let mut signals = json!({"hinted_successes": hinted_successes, "partial_rewards": partial_rewards, "sft_steps": 0, "grpo_updates": 0});
    let successes: usize = groups.iter().map(|g| g.completions.iter().filter(|c| c.reward >= 1.0).count()).sum();
    // Supervised warm start on verified first turns (each distinct success once per group).
    if plan.sft_warm_start && successes > 0 {
        let sft: Vec<TrainGroup> = groups
            .iter()
            .filter_map(|g| {
                let mut seen = std::collections::HashSet::new();
                let ok: Vec<Completion> = g.completions.iter().filter(|c| c.reward >= 1.0 && seen.insert(c.tokens.clone())).cloned().collect();
                (!ok.is_empty()).then(|| TrainGroup { completions: ok, ..g.clone() })
            })
            .collect();
        trainer.config.loss.loss_type = LossType::Sft;
        trainer.config.optim.lr = plan.sft_learning_rate;
        for step in 0..plan.sft_steps {
            if night.time_left().is_some_and(|t| t < 900.0) {
                break;
            }
            for r in trainer.train_batch(&sft)? {
                night.say(&format!("sft {}: loss {:.4}{}", step + 1, r.loss, penalty_note(r.penalty)));
                curve.push(crate::train::curve_point(&r, json!({"phase": "sft"})));
            }
            signals["sft_steps"] = json!(step + 1);
        }
        trainer.config.loss = config.loss.clone();
        trainer.config.optim = config.optim.clone();
    }
    // GRPO/DAPO batches over the groups.
    let per_step = groups.len().div_ceil(plan.train_steps.max(1)).max(1);
    for (i, batch) in groups.chunks(per_step).enumerate() {
        if night.time_left().is_some_and(|t| t < 900.0) {
            break;
        }
        for r in trainer.train_batch(batch)? {
            night.say(&format!("grpo {}: loss {:.4}{}, reward {:.3}, {} groups kept", i + 1, r.loss, penalty_note(r.penalty), r.mean_reward, r.groups_used));
            if r.skipped.is_none() {
                signals["grpo_updates"] = json!(signals["grpo_updates"].as_u64().unwrap_or(0) + 1);
            }
            curve.push(crate::train::curve_point(&r, json!({"phase": "grpo", "batch": i + 1})));
        }
    }
    // The candidate: the promoted update and tonight's, merged into one adapter.
    let delta_path = out.join("delta.gguf");
    trainer.export_adapter(&delta_path)?;
    let candidate_path = out.join("candidate.gguf");
    crate::train::merge_adapters(past.as_ref(), &trainer, &candidate_path, &night.policy)?;
    let generation = night.out("gather")["generation"].as_u64().unwrap_or(0) + 1;
    let metrics = json!({
        "night": night.id, "generation": generation, "mode": "nightly", "curve": curve, "signals": signals,
        "delta": delta_path.display().to_string(), "groups": groups.len(), "successes": successes,
    });
    let (candidate_id, _) = crate::adapters::register_checked(&night.store, night.llama.as_ref(), &candidate_path, promoted_id, metrics).await?;
    Ok(json!({"candidate_id": candidate_id, "candidate_path": candidate_path.display().to_string(), "groups": groups.len(), "successes": successes, "signals": signals, "updates": curve.len()}))
}

async fn evaluate(night: &Night, candidate: bool) -> Result<Value> {
    let plan = &night.plan;
    let (id, path) = if candidate {
        let t = night.out("train");
        (t["candidate_id"].as_str().map(str::to_owned), t["candidate_path"].as_str().map(str::to_owned))
    } else {
        promoted(night)
    };
    // The promoted adapter was scored on the same items by an earlier night (as its candidate):
    // reuse those scores instead of spending the time again.
    let mut suites = if candidate { serde_json::Map::new() } else { earlier_scores(night, &id).await? };
    night.use_adapter(path.as_deref()).await?;
    let agent = night.agent(night.eval_policy(), if candidate { "nightly-eval-candidate" } else { "nightly-eval-promoted" })?;
    for name in &plan.suites {
        if let Some(v) = suites.get(name) {
            night.say(&format!("promoted on {name}: pass@1 {:.3} (scored by night {})", v["pass_at_1"].as_f64().unwrap_or(0.0), v["night"].as_str().unwrap_or("?")));
            continue;
        }
        let suite = builtin::generate(name, Split::Eval, plan.eval_items)?;
        let report = run_suite(agent.clone(), &suite, &night.harness(1, id.clone(), HashMap::new())).await?;
        night.say(&format!("{} on {name}: pass@1 {:.3} ({} items)", if candidate { "candidate" } else { "promoted" }, report.pass_at_1, report.n));
        suites.insert(name.clone(), suite_scores(&report));
    }
    Ok(json!({"adapter_id": id, "suites": suites}))
}

/// Scores of `adapter_id` (per suite) from earlier finished nights with the same eval plan,
/// newest first.
async fn earlier_scores(night: &Night, adapter_id: &Option<String>) -> Result<serde_json::Map<String, Value>> {
    let mut found = serde_json::Map::new();
    let mine = serde_json::to_value(&night.plan)?;
    for n in night.store.nights(50).await? {
        // Same weights, same items, same turns and tokens (the eval preset is greedy).
        let same = ["eval_items", "eval_turns", "turn_tokens", "examples", "model_sha256"].iter().all(|k| n.plan[*k] == mine[*k]);
        if n.id == night.id || n.status != NightStatus::Finished || !same {
            continue;
        }
        for st in night.store.night_stages(&n.id).await? {
            if (st.stage == "eval_candidate" || st.stage == "eval_promoted") && st.output["adapter_id"] == json!(adapter_id) {
                for (suite, v) in st.output["suites"].as_object().into_iter().flatten() {
                    if !found.contains_key(suite) && v["items"].is_array() {
                        let mut v = v.clone();
                        v["night"] = json!(v["night"].as_str().unwrap_or(&n.id));
                        found.insert(suite.clone(), v);
                    }
                }
            }
        }
    }
    Ok(found)
}

fn suite_scores(r: &Report) -> Value {
    let items: Vec<Value> = r.items.iter().map(|i| {
        let (n, c) = i.counts();
        json!([i.id, if n == 0 { 0.0 } else { c as f64 / n as f64 }])
    }).collect();
    json!({"pass_at_1": r.pass_at_1, "n": r.n, "eval_id": r.eval_id, "items": items})
}

fn rates(v: &Value) -> Vec<(String, f64)> {
    v["items"].as_array().into_iter().flatten().filter_map(|x| Some((x[0].as_str()?.to_owned(), x[1].as_f64()?))).collect()
}

async fn gate(night: &Night) -> Result<Value> {
    let before = &night.out("eval_promoted")["suites"];
    let after = &night.out("eval_candidate")["suites"];
    let comparisons: Vec<SuiteComparison> = night
        .plan
        .suites
        .iter()
        .map(|s| SuiteComparison { suite: s.clone(), promoted: rates(&before[s]), candidate: rates(&after[s]) })
        .collect();
    // The plan's target (a resumed night keeps its own).
    let promotion = autodidact_policies::PromotionPolicy { target_suite: night.plan.target.clone(), ..night.policy.promotion.clone() };
    let decision = decide(&comparisons, &promotion, night.plan.seed);
    let candidate = night.out("train")["candidate_id"].as_str().unwrap_or_default().to_owned();
    let status = if decision.promote { AdapterStatus::Promoted } else { AdapterStatus::Rejected };
    night.store.writer().set_adapter_status(&candidate, status).await?.committed().await?;
    night.say(&format!("gate: {} ({})", if decision.promote { "promoted" } else { "rejected" }, decision.reason));
    Ok(json!({"decision": if decision.promote { "promoted" } else { "rejected" }, "reason": decision.reason, "evidence": decision.evidence, "candidate_id": candidate}))
}

async fn consolidate(night: &Night) -> Result<Value> {
    let g = night.out("gate");
    if g["decision"] != "promoted" {
        return Ok(json!({"consolidated": false, "generation": night.out("gather")["generation"]}));
    }
    // The promoted candidate already holds every promoted update merged into one adapter: it
    // is the accumulated past update of the next night, and what every runtime now serves.
    let adapters = night.store.adapters().await?;
    let mut lineage = Vec::new();
    let mut at = g["candidate_id"].as_str().map(str::to_owned);
    while let Some(id) = at {
        let a = adapters.iter().find(|a| a.id == id);
        lineage.push(id);
        at = a.and_then(|a| a.spec.parent_id.clone());
    }
    let path = night.out("train")["candidate_path"].as_str().unwrap_or_default().to_owned();
    let (adapter, _) = LoraAdapter::load_gguf(std::path::Path::new(&path), DType::F32)?;
    Ok(json!({"consolidated": true, "generation": lineage.len(), "lineage": lineage, "rank": adapter.config.rank, "params": adapter.num_params()}))
}

async fn report(night: &Night) -> Result<Value> {
    let html = autodidact_evals::report::render(&night.store).await?;
    // Beside the other reports (where `serve` lists them), unless the night has its own folder.
    let path = match &night.plan.out {
        Some(_) => night.dir()?.join("report.html"),
        None => {
            let dir = autodidact_memory::home_dir().join("reports");
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            dir.join(format!("night-{}.html", night.id))
        }
    };
    std::fs::write(&path, html).map_err(io("writing", &path))?;
    Ok(json!({"path": path.display().to_string()}))
}

/// The users' failed tasks the night tried again, by name, with tonight's unhinted results.
fn user_tasks(night: &Night) -> Value {
    let groups = night.out("rollouts")["groups"].as_array().cloned().unwrap_or_default();
    let tasks: Vec<Value> = night.out("curriculum")["user_tasks"].as_array().into_iter().flatten().map(|u| {
        let t = groups.iter().find(|g| g["item"] == u["item"]).map(Tally::of_group).unwrap_or_default();
        json!({"task_id": u["task_id"], "prompt": u["prompt"], "attempts": t.attempts, "passed": t.successes})
    }).collect();
    json!(tasks)
}

fn summary(night: &Night) -> Value {
    // With `any`, the suite the gate judged on (its evidence lists it first).
    let judged = night.out("gate")["evidence"][0]["suite"].as_str().map(str::to_owned);
    let target = if night.plan.target == ANY { judged.as_ref().unwrap_or(&night.plan.target) } else { &night.plan.target };
    let side = |stage: &str| {
        let s = &night.out(stage)["suites"];
        let by_suite: serde_json::Map<String, Value> = night.plan.suites.iter().map(|n| (n.clone(), s[n]["pass_at_1"].clone())).collect();
        json!({"adapter_id": night.out(stage)["adapter_id"], "suite": target, "pass_at_1": s[target]["pass_at_1"], "n": s[target]["n"], "by_suite": by_suite})
    };
    let gate = night.out("gate");
    json!({
        "night": night.id,
        "before": side("eval_promoted"),
        "after": side("eval_candidate"),
        "decision": gate["decision"],
        "reason": gate["reason"],
        "evidence": {"gate": gate["evidence"], "signals": night.out("train")["signals"], "rollouts": {"pass_rate": night.out("rollouts")["pass_rate"], "hinted_pass_rate": night.out("rollouts")["hinted_pass_rate"], "teacher": night.out("rollouts")["teacher"]}},
        "candidate": night.out("train")["candidate_id"],
        "curriculum": night.out("curriculum")["picks"],
        "user_tasks": user_tasks(night),
        "generation": night.out("consolidate")["generation"],
        "report": night.out("report")["path"],
        "seconds": night.started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_block_cuts_after_the_first_closed_block() {
        assert_eq!(first_block("```repl\nFINAL(2 + 3)\n```\nThis code is an example."), "```repl\nFINAL(2 + 3)\n```");
        assert_eq!(first_block("Let me see.\n```python\nx = 1\n```\n```repl\nFINAL(x)\n```"), "Let me see.\n```python\nx = 1\n```");
        assert_eq!(first_block("The answer is 5."), "The answer is 5.");
        assert_eq!(first_block("```repl\nx = 1"), "```repl\nx = 1");
    }

}
