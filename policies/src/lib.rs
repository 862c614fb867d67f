//! The agent's rules, as typed TOML.
//!
//! A *policy* is a TOML file that says what an agent may do and how much of it: how long a
//! code cell may run, how much memory the guest may take, which host folders it sees, and (as
//! later sections arrive) which tools it may call, how deep it may recurse and how it trains.
//! This crate parses and validates that file; it enforces nothing by itself. The other crates
//! read the typed values and apply them: `autodidact-sandbox` turns [`SandboxPolicy`] into its
//! own limits, for instance.
//!
//! Every field has a default, so an empty file is a valid policy and the preset
//! `presets/default.toml` only spells the defaults out. Unknown keys and bad values are errors
//! that name the file, the line and the dotted key, because a typo in a security limit that
//! silently falls back to a default is worse than a refusal to start.
//!
//! The main types are [`Policy`] (the whole file), [`SandboxPolicy`] (the `[sandbox]` section)
//! and [`Error`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The text of the built-in default preset, `policies/presets/default.toml`.
pub const DEFAULT_PRESET: &str = include_str!("../presets/default.toml");

/// The text of the evaluation preset, `policies/presets/eval.toml`: short runs, no retrieval.
pub const EVAL_PRESET: &str = include_str!("../presets/eval.toml");

/// A whole policy file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Limits and grants for the Python sandbox.
    pub sandbox: SandboxPolicy,
    /// How deep and how wide an agent may recurse (`[recursion]`).
    pub recursion: RecursionPolicy,
    /// Token and time budgets of a run, and budget forcing (`[budget]`).
    pub budget: BudgetPolicy,
    /// Which domain tools the guest may call, how often and for how long (`[tools]`).
    pub tools: ToolsPolicy,
    /// Training-free experience: lessons retrieved before a task (`[experience]`).
    pub experience: ExperiencePolicy,
    /// What the system prompt shows besides the REPL's description (`[prompt]`).
    pub prompt: PromptPolicy,
    /// LoRA training settings, named as in TRL's `GRPOConfig` (`[training]`).
    pub training: TrainingPolicy,
    /// When a candidate adapter replaces the promoted one (`[promotion]`).
    pub promotion: PromotionPolicy,
    /// What one night of the self-improvement loop does (`[nightly]`).
    pub nightly: NightlyPolicy,
}

/// The `[training]` section: how the trainer turns groups of attempts into a LoRA update.
/// Names follow TRL's `GRPOConfig` so that they mean what TRL users expect.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingPolicy {
    /// `grpo`, `bnpo`, `dr_grpo`, `dapo` or `sft` (`training.loss_type`).
    pub loss_type: LossType,
    /// Completions sampled per prompt (`training.num_generations`).
    pub num_generations: usize,
    /// Weight of the k3 KL to the base model; 0 skips the reference pass (`training.beta`).
    pub beta: f64,
    /// Lower clip of the ratio, `1 − epsilon` (`training.epsilon`).
    pub epsilon: f64,
    /// Upper clip of the ratio, `1 + epsilon_high` (DAPO's clip-higher) (`training.epsilon_high`).
    pub epsilon_high: f64,
    /// `group`, `batch` or `none` (`training.scale_rewards`).
    pub scale_rewards: ScaleRewards,
    /// Updates per batch of groups (`training.num_iterations`).
    pub num_iterations: usize,
    /// Completion tokens trained on per sample (`training.max_completion_length`).
    pub max_completion_length: usize,
    /// Give truncated completions no weight (`training.mask_truncated_completions`).
    pub mask_truncated_completions: bool,
    /// Drop groups whose rewards are all equal (DAPO) (`training.dynamic_sampling`).
    pub dynamic_sampling: bool,
    /// Peak AdamW learning rate (`training.learning_rate`).
    pub learning_rate: f64,
    /// Linear warm-up steps (`training.warmup_steps`).
    pub warmup_steps: u64,
    /// Global gradient-norm clip; 0 disables it (`training.max_grad_norm`).
    pub max_grad_norm: f64,
    /// Decoupled weight decay (`training.weight_decay`).
    pub weight_decay: f64,
    /// Sequences per forward/backward pass (`training.micro_batch`).
    pub micro_batch: usize,
    /// LoRA rank (`training.lora_rank`).
    pub lora_rank: usize,
    /// LoRA alpha; the update is scaled by alpha / rank (`training.lora_alpha`).
    pub lora_alpha: f64,
    /// Adapted layers among `q`, `k`, `v`, `o`, `gate`, `up`, `down` (`training.lora_targets`).
    pub lora_targets: Vec<LoraTarget>,
    /// How a night's update is kept from overwriting what earlier nights promoted: `ella`,
    /// `olora` or `none` (`training.consolidation`).
    pub consolidation: Consolidation,
    /// The penalty's weight `λ` (`training.consolidation_lambda`).
    pub consolidation_lambda: f64,
    /// The largest rank of the one merged adapter that carries every promoted update; above it
    /// the merge is truncated by SVD (`training.merged_rank_cap`).
    pub merged_rank_cap: usize,
    /// Who shows the way on train items no attempt solved, hinted or not (`training.teacher`):
    /// `reference` (the items' worked solutions, run through the agent in the sandbox),
    /// `openai:URL#MODEL` (an OpenAI-compatible server, R1-style distillation), `scripted:PATH`
    /// (replies from a file, for tests) or `none`. Only
    /// verified runs are trained on, under the student's own prompt.
    pub teacher: String,
}

impl Default for TrainingPolicy {
    fn default() -> Self {
        Self {
            loss_type: LossType::Dapo,
            num_generations: 8,
            beta: 0.0,
            epsilon: 0.2,
            epsilon_high: 0.28,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
            max_completion_length: 256,
            mask_truncated_completions: false,
            dynamic_sampling: true,
            learning_rate: 1e-4,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            micro_batch: 2,
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_targets: vec![
                LoraTarget::Q,
                LoraTarget::K,
                LoraTarget::V,
                LoraTarget::O,
                LoraTarget::Gate,
                LoraTarget::Up,
                LoraTarget::Down,
            ],
            consolidation: Consolidation::Olora,
            consolidation_lambda: 1e-2,
            merged_rank_cap: 32,
            teacher: "reference".into(),
        }
    }
}

/// The consolidation penalty against the promoted (past) adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consolidation {
    /// ELLA: `λ ‖ΔW ⊙ W_past‖²_F` per adapted matrix.
    Ella,
    /// O-LoRA: `λ Σ |A_past A_newᵀ|` per adapted matrix.
    Olora,
    /// No penalty.
    None,
}

/// TRL's `loss_type`, plus `sft` (rejection-sampling fine-tuning on successful completions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LossType {
    Grpo,
    Bnpo,
    DrGrpo,
    Dapo,
    Sft,
}

/// TRL's `scale_rewards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ScaleRewards {
    Group,
    Batch,
    None,
}

/// A linear layer LoRA can adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// The `[recursion]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecursionPolicy {
    /// Depth of the RLM tree; at the last level `rlm_query` falls back to `llm_query`
    /// (`recursion.max_depth`; the root is depth 0).
    pub max_depth: u32,
    /// Model turns per run, before the final-answer request (`recursion.max_iterations`).
    pub max_iterations: u32,
    /// Sub-calls (`llm_query`, `rlm_query`) over the whole tree (`recursion.max_subcalls`).
    pub max_subcalls: u32,
    /// Sub-calls running at once over the whole tree (`recursion.max_concurrent_subcalls`).
    pub max_concurrent_subcalls: u32,
    /// The model for sub-calls, as a `--model` name; empty means the root model
    /// (`recursion.sub_model`).
    pub sub_model: String,
}

impl Default for RecursionPolicy {
    fn default() -> Self {
        Self { max_depth: 1, max_iterations: 30, max_subcalls: 64, max_concurrent_subcalls: 4, sub_model: String::new() }
    }
}

/// The `[budget]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetPolicy {
    /// Most tokens one model turn may generate (`budget.turn_tokens`).
    pub turn_tokens: u32,
    /// Most tokens, prompt and completion, over a whole run and its sub-calls
    /// (`budget.run_tokens`).
    pub run_tokens: u64,
    /// Wall-clock limit of a run, in milliseconds (`budget.wall_clock_ms`).
    pub wall_clock_ms: u64,
    /// Budget forcing (s1): a turn may not end before this many tokens
    /// (`budget.min_thinking_tokens`; 0 is off).
    pub min_thinking_tokens: u32,
    /// Budget forcing (s1): what to append when the model stops too early
    /// (`budget.continuations`, e.g. `["Wait"]`).
    pub continuations: Vec<String>,
    /// Sampling temperature of model turns; 0 is greedy (`budget.temperature`).
    pub temperature: f32,
    /// Characters of one code block's output fed back to the model; the rest is cut and
    /// marked (`budget.output_chars`).
    pub output_chars: usize,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            turn_tokens: 512,
            run_tokens: 200_000,
            wall_clock_ms: 600_000,
            min_thinking_tokens: 0,
            continuations: Vec::new(),
            temperature: 0.0,
            output_chars: 20_000,
        }
    }
}

/// The `[tools]` section: domain tools are denied unless allowed here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsPolicy {
    /// Tool names the guest may call; `"*"` allows every loaded tool (`tools.allow`).
    pub allow: Vec<String>,
    /// Calls per tool per run (`tools.max_calls`).
    pub max_calls: u32,
    /// One call's deadline, in milliseconds (`tools.timeout_ms`).
    pub timeout_ms: u64,
}

impl Default for ToolsPolicy {
    fn default() -> Self {
        Self { allow: vec!["memory_search".into()], max_calls: 32, timeout_ms: 30_000 }
    }
}

/// The `[experience]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperiencePolicy {
    /// Retrieve similar solved tasks and lessons before a task (`experience.retrieve`).
    pub retrieve: bool,
    /// How many solved tasks, and how many lessons, to retrieve (`experience.k`).
    pub k: u32,
}

impl Default for ExperiencePolicy {
    fn default() -> Self {
        Self { retrieve: true, k: 3 }
    }
}

/// The `[prompt]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptPolicy {
    /// Show the system prompt's two worked examples, an arithmetic one and a search over
    /// `context` (`prompt.examples`). Off, the prompt is zero-shot: the REPL's description only.
    pub examples: bool,
}

impl Default for PromptPolicy {
    fn default() -> Self {
        Self { examples: true }
    }
}

/// The `[promotion]` section: the eval gate a candidate adapter must pass.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromotionPolicy {
    /// The suite that must improve (`promotion.target_suite`), or `any`: the suite that
    /// improved most confidently, with the confidence corrected for the number of suites.
    pub target_suite: String,
    /// The least pass@1 gain on the target suite, as a fraction (0.05 = 5 points).
    pub min_gain: f64,
    /// The most pass@1 any suite may lose, as a fraction (0.01 = 1 point).
    pub max_regression: f64,
    /// Confidence of the paired bootstrap's one-sided interval on the target gain.
    pub confidence: f64,
    /// Bootstrap resamples.
    pub bootstrap_samples: u32,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        Self { target_suite: "any".into(), min_gain: 0.05, max_regression: 0.01, confidence: 0.9, bootstrap_samples: 2000 }
    }
}

/// The `[nightly]` section: the sizes of one night of `autodidact nightly` (`--quick` shrinks
/// them for a demo).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NightlyPolicy {
    /// The registered eval suites: every candidate is scored on each (`promotion.target_suite`
    /// is added when missing). Built-in names (`nightly.suites`).
    pub suites: Vec<String>,
    /// The families a night trains when `promotion.target_suite = "any"`: the curriculum
    /// shares the night's train items among those with room to grow (`nightly.families`). A
    /// named target suite trains its own family alone.
    pub families: Vec<String>,
    /// Eval-split items per suite (`nightly.eval_items`).
    pub eval_items: usize,
    /// Fresh train-split items of the target family rolled out each night (`nightly.train_tasks`).
    pub train_tasks: usize,
    /// The day's failed train tasks given LADDER variant trees (`nightly.curriculum_tasks`).
    pub curriculum_tasks: usize,
    /// Attempts per task in a rollout group (`nightly.group_size`).
    pub group_size: u32,
    /// Model turns a rollout may take (`nightly.rollout_turns`); evals use the eval preset's.
    pub rollout_turns: u32,
    /// Scaf-GRPO: a group with no success is retried with a partial-solution prefix, and the
    /// hinted successes are trained on without the hint (`nightly.hints`).
    pub hints: bool,
    /// Supervised warm start on verified traces before the GRPO steps (`nightly.sft_warm_start`).
    pub sft_warm_start: bool,
    /// Passes of the warm start over the verified traces (`nightly.sft_steps`).
    pub sft_steps: usize,
    /// GRPO/DAPO training batches per night (`nightly.train_steps`).
    pub train_steps: usize,
}

impl Default for NightlyPolicy {
    fn default() -> Self {
        Self {
            suites: ["toy", "arith", "wordproblems", "gsm8k", "integrals", "niah", "countdown", "game24"].map(String::from).to_vec(),
            families: ["toy", "arith", "wordproblems", "integrals", "niah", "countdown", "game24"].map(String::from).to_vec(),
            eval_items: 24,
            train_tasks: 24,
            curriculum_tasks: 4,
            group_size: 4,
            rollout_turns: 2,
            hints: true,
            sft_warm_start: true,
            sft_steps: 4,
            train_steps: 6,
        }
    }
}

/// The `[sandbox]` section: every limit a code cell runs under.
///
/// Limits apply per cell unless the field says otherwise. Nothing is granted by default: no
/// folders, no network, no processes, no threads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Wall-clock deadline for one cell, in milliseconds (`sandbox.deadline_ms`).
    pub deadline_ms: u64,
    /// Cap on the guest's linear memory, in MiB (`sandbox.memory_mb`).
    pub memory_mb: u64,
    /// Bytes of stdout kept per cell; the rest is dropped and marked (`sandbox.stdout_bytes`).
    pub stdout_bytes: usize,
    /// Bytes of stderr kept per cell; the rest is dropped and marked (`sandbox.stderr_bytes`).
    pub stderr_bytes: usize,
    /// Filesystem path operations (opens, stats, directory reads) allowed per cell
    /// (`sandbox.max_file_calls`).
    pub max_file_calls: u64,
    /// Host tool calls allowed per cell (`sandbox.max_tool_calls`).
    pub max_tool_calls: u64,
    /// Largest tool request or reply frame, in bytes (`sandbox.tool_payload_bytes`).
    pub tool_payload_bytes: usize,
    /// Deadline for one host tool call, in milliseconds (`sandbox.tool_timeout_ms`).
    pub tool_timeout_ms: u64,
    /// Optional instruction budget per cell (`sandbox.fuel`). Fuel needs its own compiled
    /// module, so it is off unless set.
    pub fuel: Option<u64>,
    /// Host folders the guest may see (`[[sandbox.grants]]`). None by default.
    pub grants: Vec<Grant>,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            deadline_ms: 10_000,
            memory_mb: 1024,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
            max_file_calls: 10_000,
            max_tool_calls: 256,
            tool_payload_bytes: 1 << 20,
            tool_timeout_ms: 60_000,
            fuel: None,
            grants: Vec::new(),
        }
    }
}

/// One host folder shown to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The folder on the host.
    pub host: PathBuf,
    /// Where the guest sees it, an absolute guest path such as `/data`.
    pub guest: String,
    /// `ro` (the default) or `rw`.
    #[serde(default)]
    pub mode: GrantMode,
}

/// Whether a granted folder is writable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantMode {
    /// Read-only.
    #[default]
    Ro,
    /// Read and write.
    Rw,
}

/// A policy that could not be read or does not validate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read policy {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is wrong.
    #[error("{}", Located(self))]
    Invalid {
        /// The file, or `<inline>` for text without one.
        path: PathBuf,
        /// 1-based line of the offending key or value, when known.
        line: Option<usize>,
        /// The dotted key, such as `sandbox.deadline_ms`, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

struct Located<'a>(&'a Error);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error::Invalid { path, line, key, message } = self.0 else { return Ok(()) };
        write!(f, "{}", path.display())?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {message}")
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// The built-in default policy (`presets/default.toml`).
    pub fn preset_default() -> Self {
        Self::parse(DEFAULT_PRESET, Path::new("presets/default.toml"))
            .expect("the default preset is checked by a test")
    }

    /// The built-in evaluation policy (`presets/eval.toml`): short runs and no retrieval.
    pub fn preset_eval() -> Self {
        Self::parse(EVAL_PRESET, Path::new("presets/eval.toml")).expect("the eval preset is checked by a test")
    }

    /// Parses policy text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            Error::Invalid { path: path.to_owned(), line, key, message: e.message().trim().to_owned() }
        })?;
        policy.validate(text, path)?;
        Ok(policy)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), Error> {
        let s = &self.sandbox;
        let invalid = |key: &str, message: String| {
            let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
            let table = table.split('.').next().unwrap_or(table);
            let line = find_key_line(text, table, name);
            Error::Invalid { path: path.to_owned(), line, key: Some(key.to_owned()), message }
        };
        let r = &self.recursion;
        let b = &self.budget;
        let more_than_zero: [(&str, u64); 7] = [
            ("budget.output_chars", b.output_chars as u64),
            ("recursion.max_iterations", r.max_iterations.into()),
            ("recursion.max_concurrent_subcalls", r.max_concurrent_subcalls.into()),
            ("budget.turn_tokens", b.turn_tokens.into()),
            ("budget.run_tokens", b.run_tokens),
            ("budget.wall_clock_ms", b.wall_clock_ms),
            ("tools.timeout_ms", self.tools.timeout_ms),
        ];
        for (key, value) in more_than_zero {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if b.min_thinking_tokens > b.turn_tokens {
            return Err(invalid("budget.min_thinking_tokens", format!("{} is more than budget.turn_tokens = {}", b.min_thinking_tokens, b.turn_tokens)));
        }
        if !(b.temperature >= 0.0 && b.temperature <= 5.0) {
            return Err(invalid("budget.temperature", "must be between 0 and 5".into()));
        }
        let p = &self.promotion;
        if !(0.0..=1.0).contains(&p.min_gain) {
            return Err(invalid("promotion.min_gain", "must be between 0 and 1 (a pass@1 fraction)".into()));
        }
        if !(0.0..=1.0).contains(&p.max_regression) {
            return Err(invalid("promotion.max_regression", "must be between 0 and 1 (a pass@1 fraction)".into()));
        }
        if !(p.confidence > 0.5 && p.confidence < 1.0) {
            return Err(invalid("promotion.confidence", "must be above 0.5 and below 1".into()));
        }
        if p.bootstrap_samples < 100 {
            return Err(invalid("promotion.bootstrap_samples", "must be at least 100".into()));
        }
        if p.target_suite.trim().is_empty() {
            return Err(invalid("promotion.target_suite", "must name a suite".into()));
        }
        let teacher = self.training.teacher.as_str();
        if !(teacher == "none" || teacher == "reference" || teacher.starts_with("openai:") || teacher.starts_with("scripted:")) {
            return Err(invalid("training.teacher", format!("{teacher:?} is not `none`, `reference`, `openai:URL#MODEL` or `scripted:PATH`")));
        }
        let n = &self.nightly;
        for (key, value) in [
            ("nightly.eval_items", n.eval_items as u64),
            ("nightly.train_tasks", n.train_tasks as u64),
            ("nightly.rollout_turns", n.rollout_turns.into()),
            ("nightly.train_steps", n.train_steps as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if n.group_size < 2 {
            return Err(invalid("nightly.group_size", "must be at least 2 (GRPO compares attempts within a group)".into()));
        }
        if n.suites.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid("nightly.suites", "suite names must not be empty".into()));
        }
        if n.families.iter().any(|s| s.trim().is_empty()) {
            return Err(invalid("nightly.families", "family names must not be empty".into()));
        }
        if p.target_suite == "any" && n.families.is_empty() {
            return Err(invalid("nightly.families", "must name at least one family when promotion.target_suite = \"any\"".into()));
        }
        if b.continuations.iter().any(|c| c.is_empty()) {
            return Err(invalid("budget.continuations", "continuation strings must not be empty".into()));
        }
        let positive: [(&str, u64); 5] = [
            ("sandbox.deadline_ms", s.deadline_ms),
            ("sandbox.memory_mb", s.memory_mb),
            ("sandbox.tool_timeout_ms", s.tool_timeout_ms),
            ("sandbox.stdout_bytes", s.stdout_bytes as u64),
            ("sandbox.stderr_bytes", s.stderr_bytes as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if s.memory_mb > 4096 {
            return Err(invalid(
                "sandbox.memory_mb",
                format!("{} MiB is over wasm32's 4096 MiB address space", s.memory_mb),
            ));
        }
        if s.fuel == Some(0) {
            return Err(invalid("sandbox.fuel", "must be greater than 0 when set".into()));
        }
        for g in &s.grants {
            if !g.guest.starts_with('/') || g.guest.split('/').any(|c| c == "..") {
                return Err(invalid(
                    "sandbox.grants.guest",
                    format!("`{}` must be an absolute guest path without `..`", g.guest),
                ));
            }
            if g.guest == "/usr/local/lib" || g.guest.starts_with("/usr/local/lib/") {
                return Err(invalid(
                    "sandbox.grants.guest",
                    "`/usr/local/lib` is reserved for the Python standard library".into(),
                ));
            }
        }
        let t = &self.training;
        let at_least_one: [(&str, usize); 6] = [
            ("training.merged_rank_cap", t.merged_rank_cap),
            ("training.num_iterations", t.num_iterations),
            ("training.max_completion_length", t.max_completion_length),
            ("training.micro_batch", t.micro_batch),
            ("training.lora_rank", t.lora_rank),
            ("training.lora_targets", t.lora_targets.len()),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if t.num_generations < 2 {
            return Err(invalid("training.num_generations", "must be at least 2: advantages compare samples".into()));
        }
        if !(t.epsilon > 0.0 && t.epsilon < 1.0) {
            return Err(invalid("training.epsilon", format!("{} is not in (0, 1)", t.epsilon)));
        }
        let non_negative = [
            ("training.beta", t.beta),
            ("training.epsilon_high", t.epsilon_high),
            ("training.max_grad_norm", t.max_grad_norm),
            ("training.weight_decay", t.weight_decay),
            ("training.consolidation_lambda", t.consolidation_lambda),
        ];
        for (key, value) in non_negative {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(invalid(key, format!("{value} must be a finite number ≥ 0")));
            }
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            return Err(invalid("training.learning_rate", "must be a finite number greater than 0".into()));
        }
        if !(t.lora_alpha > 0.0 && t.lora_alpha.is_finite()) {
            return Err(invalid("training.lora_alpha", "must be a finite number greater than 0".into()));
        }
        Ok(())
    }
}

/// The 1-based line of byte `offset`, and the dotted key written on that line (with the
/// nearest `[table]` header above it as prefix).
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let mut table = String::new();
    let mut key = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i + 1 > line_no {
            break;
        }
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        }
        if i + 1 == line_no {
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim().trim_matches('"');
                key = Some(if table.is_empty() { k.to_owned() } else { format!("{table}.{k}") });
            } else if t.starts_with('[') {
                key = Some(table.clone());
            }
        }
    }
    (Some(line_no), key)
}

/// The 1-based line where `key` is set inside `[table]`, if it is written there.
fn find_key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        } else if current.starts_with(table)
            && t.split_once('=').is_some_and(|(k, _)| k.trim() == key)
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Policy::parse(text, Path::new("p.toml")).unwrap_err().to_string()
    }

    #[test]
    fn default_preset_parses_and_equals_the_defaults() {
        let p = Policy::preset_default();
        assert_eq!(p, Policy::default());
        let e = Policy::preset_eval();
        assert!(!e.experience.retrieve && e.recursion.max_iterations < p.recursion.max_iterations);
    }

    #[test]
    fn every_example_policy_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nightly");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 4, "{n} example policies in {}", dir.display());
        let zero_shot = Policy::load(&dir.join("zero-shot-eval.toml")).unwrap();
        assert!(!zero_shot.prompt.examples);
        assert_eq!(Policy { prompt: PromptPolicy::default(), ..zero_shot }, Policy::preset_eval());
    }

    #[test]
    fn nightly_section_parses_and_validates() {
        let p = Policy::parse("[nightly]\nsuites = [\"arith\"]\ngroup_size = 8\n", Path::new("x")).unwrap();
        assert_eq!((p.nightly.suites.clone(), p.nightly.group_size, p.nightly.train_steps), (vec!["arith".to_string()], 8, 6));
        assert_eq!(err("[nightly]\ngroup_size = 1\n"), "p.toml:2: key `nightly.group_size`: must be at least 2 (GRPO compares attempts within a group)");
        assert!(err("[nightly]\neval_items = 0\n").contains("nightly.eval_items"));
        assert!(err("[nightly]\nhint = true\n").contains("hint"));
    }

    #[test]
    fn promotion_section_parses_and_validates() {
        let p = Policy::parse("[promotion]\ntarget_suite = \"gsm8k\"\nmin_gain = 0.1\n", Path::new("x")).unwrap();
        assert_eq!((p.promotion.target_suite.as_str(), p.promotion.min_gain, p.promotion.max_regression), ("gsm8k", 0.1, 0.01));
        assert_eq!(err("[promotion]\nmin_gain = 5\n"), "p.toml:2: key `promotion.min_gain`: must be between 0 and 1 (a pass@1 fraction)");
        assert_eq!(err("[promotion]\n\nconfidence = 1.0\n"), "p.toml:3: key `promotion.confidence`: must be above 0.5 and below 1");
        assert!(err("[promotion]\nbootstrap_samples = 10\n").contains("at least 100"));
    }

    #[test]
    fn agent_sections_parse_and_validate() {
        let p = Policy::parse("[recursion]\nmax_depth = 3\n[budget]\nrun_tokens = 10\ncontinuations = [\"Wait\"]\n[tools]\nallow = [\"*\"]\n", Path::new("x")).unwrap();
        assert_eq!(p.recursion.max_depth, 3);
        assert_eq!(p.budget.continuations, vec!["Wait".to_string()]);
        let e = err("[budget]\n\nturn_tokens = 0\n");
        assert_eq!(e, "p.toml:3: key `budget.turn_tokens`: must be greater than 0");
        let e = err("[recursion]\nmax_dept = 2\n");
        assert!(e.starts_with("p.toml:2: key `recursion.max_dept`: unknown field"), "{e}");
        assert!(Policy::default().prompt.examples);
        assert!(!Policy::parse("[prompt]\nexamples = false\n", Path::new("x")).unwrap().prompt.examples);
        let e = err("[prompt]\nexamples = 0\n");
        assert!(e.starts_with("p.toml:2: key `prompt.examples`"), "{e}");
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Policy::parse("", Path::new("x")).unwrap(), Policy::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[sandbox]\ndeadline_ms = 5\nmemroy_mb = 3\n");
        assert!(e.starts_with("p.toml:3: key `sandbox.memroy_mb`: unknown field `memroy_mb`"), "{e}");
    }

    #[test]
    fn bad_value_type_names_line_and_key() {
        let e = err("\n[sandbox]\ndeadline_ms = \"soon\"\n");
        assert!(e.starts_with("p.toml:3: key `sandbox.deadline_ms`:"), "{e}");
        assert!(e.contains("expected u64"), "{e}");
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused() {
        let e = err("[sandbox]\n\nmemory_mb = 0\n");
        assert_eq!(e, "p.toml:3: key `sandbox.memory_mb`: must be greater than 0");
        let e = err("[sandbox]\nmemory_mb = 9000\n");
        assert!(e.contains("4096"), "{e}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let e = err("[sandbx]\n");
        assert!(e.starts_with("p.toml:1: key `sandbx`: unknown field `sandbx`"), "{e}");
    }

    #[test]
    fn training_section_parses_and_checks_its_values() {
        let p = Policy::parse(
            "[training]\nloss_type = \"dr_grpo\"\nscale_rewards = \"none\"\nlora_targets = [\"q\", \"down\"]\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(p.training.loss_type, LossType::DrGrpo);
        assert_eq!(p.training.scale_rewards, ScaleRewards::None);
        assert_eq!(p.training.lora_targets, vec![LoraTarget::Q, LoraTarget::Down]);
        let e = err("[training]\nlora_rank = 8\nlora_rnak = 4\n");
        assert!(e.starts_with("p.toml:3: key `training.lora_rnak`: unknown field `lora_rnak`"), "{e}");
        let e = err("[training]\nloss_type = \"ppo\"\n");
        assert!(e.starts_with("p.toml:2: key `training.loss_type`"), "{e}");
        let e = err("[training]\n\nepsilon = 1.5\n");
        assert_eq!(e, "p.toml:3: key `training.epsilon`: 1.5 is not in (0, 1)");
        let e = err("[training]\nnum_generations = 1\n");
        assert!(e.starts_with("p.toml:2: key `training.num_generations`"), "{e}");
        let e = err("[budget]\nturn_tokens = 5\n[training]\nlora_alpha = 0.0\n");
        assert_eq!(e, "p.toml:4: key `training.lora_alpha`: must be a finite number greater than 0");
    }

    #[test]
    fn consolidation_keys_parse_and_check_their_values() {
        let p = Policy::parse(
            "[training]\nconsolidation = \"olora\"\nconsolidation_lambda = 0.5\nmerged_rank_cap = 16\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(p.training.consolidation, Consolidation::Olora);
        assert_eq!((p.training.consolidation_lambda, p.training.merged_rank_cap), (0.5, 16));
        assert_eq!(Policy::default().training.teacher, "reference");
        assert!(Policy::parse("[training]\nteacher = \"openai:http://127.0.0.1:8080/v1#big\"\n", Path::new("x")).is_ok());
        assert!(err("[training]\nteacher = \"gpt\"\n").contains("training.teacher"));
        let e = err("[training]\nconsolidation = \"ewc\"\n");
        assert!(e.starts_with("p.toml:2: key `training.consolidation`"), "{e}");
        let e = err("[training]\n\nconsolidation_lambda = -1.0\n");
        assert_eq!(e, "p.toml:3: key `training.consolidation_lambda`: -1 must be a finite number ≥ 0");
        let e = err("[training]\nmerged_rank_cap = 0\n");
        assert_eq!(e, "p.toml:2: key `training.merged_rank_cap`: must be at least 1");
    }

    #[test]
    fn grants_parse_and_reject_relative_paths() {
        let p = Policy::parse(
            "[[sandbox.grants]]\nhost = \"/tmp\"\nguest = \"/data\"\nmode = \"rw\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(p.sandbox.grants[0].mode, GrantMode::Rw);
        let e = err("[[sandbox.grants]]\nhost = \"/tmp\"\nguest = \"data/../..\"\n");
        assert!(e.contains("absolute guest path"), "{e}");
        let e = err("[[sandbox.grants]]\nhost = \"/tmp\"\nguest = \"/d\"\nmode = \"wr\"\n");
        assert!(e.starts_with("p.toml:4: key `sandbox.grants.mode`"), "{e}");
    }
}
