//! The store's vocabulary: what goes in (`New*`), what comes out, and the closed sets of
//! values (split, step kind, run status, adapter status) with their text forms in the database.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::Error;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and shown to people.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::Invalid {
                        what: stringify!($name),
                        detail: format!("unknown value {other:?}"),
                    }),
                }
            }
        }
    };
}

text_enum! {
    /// Whether a task may be trained on. Eval tasks never are: the trainer's queries exclude them.
    Split { /// May be trained on.
        Train = "train", /// Held out for evaluation only.
        Eval = "eval" }
}

text_enum! {
    /// What one step of a run was.
    StepKind {
        /// One reply of the model (input: the prompt or the last observation; output: the reply).
        ModelTurn = "model_turn",
        /// One code cell run in the sandbox (input: the code; stdout/stderr: what it printed).
        CodeCell = "code_cell",
        /// A plain sub-LM call made from guest code (`llm_query`).
        Subcall = "subcall",
        /// A host tool called from guest code.
        ToolCall = "tool_call",
    }
}

text_enum! {
    /// Where a run stands.
    RunStatus {
        /// Begun and not yet finished (or its process died before finishing it).
        Running = "running",
        /// The guest set a ready answer.
        Answered = "answered",
        /// A budget (iterations, tokens, time) ran out first.
        BudgetExhausted = "budget_exhausted",
        /// The run stopped on an error of the runtime itself.
        Failed = "failed",
    }
}

text_enum! {
    /// An adapter's place in the registry.
    AdapterStatus {
        /// Trained, not yet evaluated or not yet promoted.
        Candidate = "candidate",
        /// The one the runtime serves. At most one adapter is promoted at a time.
        Promoted = "promoted",
        /// Failed its promotion gate.
        Rejected = "rejected",
        /// Was promoted once and has been replaced.
        Retired = "retired",
    }
}

text_enum! {
    /// What a search hit points at.
    DocKind {
        /// A task's prompt.
        Task = "task",
        /// A step's input, output, stdout, stderr and error.
        Step = "step",
        /// An experience's lesson text.
        Experience = "experience",
    }
}

/// A task to add. Its id is made by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The task family, e.g. `arithmetic` or `integral`.
    pub family: String,
    /// The prompt the model sees.
    pub prompt: String,
    /// Where the (possibly huge) context lives, if anywhere: a path or a URI.
    pub context_ref: Option<String>,
    /// The answer and how to verify it, as JSON the verifier understands.
    pub answer_spec: serde_json::Value,
    /// Train or eval.
    pub split: Split,
    /// The task this one is a LADDER variant of.
    pub parent_id: Option<String>,
    /// A difficulty estimate, when one is known.
    pub difficulty: Option<f64>,
    /// Where the task came from: a suite name, `ladder`, `user`...
    pub source: String,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its id (a UUID).
    pub id: String,
    /// Everything it was added with.
    pub spec: NewTask,
    /// When it was added, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A run to begin.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// The task it attempts.
    pub task_id: String,
    /// The agent's name.
    pub agent: String,
    /// The base model, e.g. the GGUF file name.
    pub model_id: String,
    /// The adapter in use, if any (it must be registered).
    pub adapter_id: Option<String>,
    /// A hash of the policy the run obeys.
    pub policy_hash: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// Anything but [`RunStatus::Running`].
    pub status: RunStatus,
    /// Why it ended, in words (which budget ran out, which error).
    pub end_reason: Option<String>,
    /// The answer given, if any.
    pub final_answer: Option<String>,
    /// The verifier's reward, if it was checked.
    pub reward: Option<f64>,
    /// Prompt tokens over the whole run.
    pub prompt_tokens: u64,
    /// Completion tokens over the whole run.
    pub completion_tokens: u64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id (a UUID).
    pub id: String,
    /// What it was begun with.
    pub spec: NewRun,
    /// When it began (ms since the epoch).
    pub started_ms: i64,
    /// When it finished, if it did.
    pub finished_ms: Option<i64>,
    /// Where it stands.
    pub status: RunStatus,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The answer given.
    pub final_answer: Option<String>,
    /// The verifier's reward.
    pub reward: Option<f64>,
    /// Prompt tokens over the run.
    pub prompt_tokens: u64,
    /// Completion tokens over the run.
    pub completion_tokens: u64,
    /// How many steps the run had when it finished (0 while running).
    pub step_count: u64,
}

/// A step to append to a run. Its index is given by the [`RunHandle`](crate::RunHandle).
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// What the step was.
    pub kind: StepKind,
    /// The prompt, code, sub-call prompt or tool arguments.
    pub input: String,
    /// The reply, the value of the cell's last expression, or the tool's result.
    pub output: String,
    /// What a code cell printed.
    pub stdout: String,
    /// What a code cell printed to stderr.
    pub stderr: String,
    /// An error raised by the guest or a tool; this is data, not a failure of the store.
    pub error: Option<String>,
    /// Tokens read.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// How long the step took, in microseconds.
    pub latency_us: u64,
    /// Per-token log-probabilities of the output, when recorded while sampling.
    pub logprobs: Option<Vec<f32>>,
}

impl NewStep {
    /// A step of `kind` with the given input and output and nothing else.
    pub fn new(kind: StepKind, input: impl Into<String>, output: impl Into<String>) -> NewStep {
        NewStep {
            kind,
            input: input.into(),
            output: output.into(),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_us: 0,
            logprobs: None,
        }
    }
}

/// A stored step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The run it belongs to.
    pub run_id: String,
    /// Its place in the run, from 0.
    pub idx: u64,
    /// What it was.
    pub data: NewStep,
    /// When it was submitted (ms since the epoch).
    pub created_ms: i64,
}

/// A run with its task and all its steps: what `autodidact memory show` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The task attempted.
    pub task: Task,
    /// The run.
    pub run: Run,
    /// Its steps in order.
    pub steps: Vec<Step>,
    /// The fallbacks it took, in order.
    pub warnings: Vec<RunWarning>,
}

/// A fallback a run took instead of failing (retrieval that failed, a step that could not be
/// logged, ...), recorded so that it is never silent.
#[derive(Debug, Clone, PartialEq)]
pub struct RunWarning {
    /// The run.
    pub run_id: String,
    /// Its number within the run, from 0.
    pub idx: u64,
    /// What fell back: `retrieval`, `memory`, `scaffold`, ...
    pub source: String,
    /// What went wrong and what the run did instead.
    pub message: String,
    /// When it was recorded (ms since the epoch).
    pub created_ms: i64,
}

/// A GRPO group: several runs of one task under one adapter, trained on together.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Its id (a UUID).
    pub id: String,
    /// The task the runs attempted.
    pub task: Task,
    /// The adapter that produced the runs (`None`: the base model).
    pub adapter_id: Option<String>,
    /// The member runs, in group order.
    pub runs: Vec<Run>,
    /// When it was recorded.
    pub created_ms: i64,
    /// When it was trained on, if it was.
    pub trained_ms: Option<i64>,
}

/// An adapter to register as a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAdapter {
    /// The adapter it was trained from, if any.
    pub parent_id: Option<String>,
    /// Where its GGUF file is.
    pub path: String,
    /// The file's SHA-256, in hex.
    pub sha256: String,
    /// Training metrics, as JSON.
    pub metrics: serde_json::Value,
}

/// A registered adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    /// Its id (a UUID).
    pub id: String,
    /// What it was registered with.
    pub spec: NewAdapter,
    /// Its place in the registry.
    pub status: AdapterStatus,
    /// When it was registered.
    pub created_ms: i64,
    /// When its status last changed.
    pub updated_ms: i64,
}

/// One evaluation of an adapter (or of the base model) on a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecord {
    /// The adapter evaluated; `None` for the base model.
    pub adapter_id: Option<String>,
    /// The suite's name.
    pub suite: String,
    /// How many tasks were run.
    pub n: u64,
    /// How many passed.
    pub passed: u64,
    /// pass@k for each k measured.
    pub pass_at_k: BTreeMap<u32, f64>,
    /// When the evaluation started (ms since the epoch).
    pub started_ms: i64,
    /// When it finished.
    pub finished_ms: i64,
}

/// A lesson to keep, learned by comparing runs (training-free GRPO).
#[derive(Debug, Clone, PartialEq)]
pub struct NewExperience {
    /// The lesson, as text the model reads.
    pub text: String,
    /// The runs it was learned from.
    pub source_runs: Vec<String>,
    /// How useful it has proved.
    pub score: f64,
}

/// A stored experience.
#[derive(Debug, Clone, PartialEq)]
pub struct Experience {
    /// Its id (a UUID).
    pub id: String,
    /// What it was added with.
    pub spec: NewExperience,
    /// When it was added.
    pub created_ms: i64,
}

/// Counts of everything in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The highest migration applied.
    pub schema_version: i64,
    /// Tasks stored.
    pub tasks: u64,
    /// Runs stored.
    pub runs: u64,
    /// Steps stored.
    pub steps: u64,
    /// GRPO groups stored.
    pub groups: u64,
    /// Groups of train-split tasks not yet trained on.
    pub untrained_groups: u64,
    /// Adapters registered.
    pub adapters: u64,
    /// Evaluation records.
    pub evals: u64,
    /// Experiences stored.
    pub experiences: u64,
}

/// A short view of a run, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run.
    pub run: Run,
    /// Its task's family.
    pub family: String,
}

/// What to restrict a search to. The default restricts nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchFilters {
    /// Only these kinds of document (empty: all kinds).
    pub kinds: Vec<DocKind>,
    /// Only documents of tasks of this family (tasks and steps).
    pub family: Option<String>,
    /// Only documents of tasks of this split (tasks and steps).
    pub split: Option<Split>,
    /// Only steps of this run.
    pub run_id: Option<String>,
    /// Only this task and the steps of its runs.
    pub task_id: Option<String>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// What it points at.
    pub kind: DocKind,
    /// The task's or experience's id, or the step's run id.
    pub id: String,
    /// The step's index, for steps.
    pub step_idx: Option<u64>,
    /// BM25 score; higher is better.
    pub score: f32,
    /// The start of the matched text, read from the database.
    pub preview: String,
}

/// What [`Store::verify`](crate::Store::verify) found.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Integrity is fine and no acknowledged run is missing or incomplete.
    pub ok: bool,
    /// Runs in the store.
    pub runs: u64,
    /// Steps in the store.
    pub steps: u64,
    /// Acknowledged runs that are missing, unfinished, or lack some of their steps.
    pub missing: u64,
    /// How many acknowledged run ids were checked.
    pub acknowledged: u64,
    /// The integrity check's verdict (`ok`, or what SQLite reported).
    pub integrity: String,
    /// Up to 20 examples of what is wrong.
    pub problems: Vec<String>,
}
