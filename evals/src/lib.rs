//! Evaluation for autodidact: task suites with verifiers, and the harness that runs them
//! through the RLM runtime and reports pass@k, tokens and latency.
//!
//! - [`suite`]: the JSONL suite format (`id`, `family`, `prompt`, `context`, `answer`,
//!   `verifier`, `check`, `split`) with errors that name the line.
//! - [`verify`]: the four verifiers. `python` checks run in the sandbox, never on the host.
//! - [`bench`]: eval items per minute, one prompt at a time against continuous batching.
//! - [`builtin`]: seeded generators for the built-in suites (`arith`, `integrals`, `niah`,
//!   `countdown`, `toy`, `wordproblems`, `game24`) and the GSM8K test set from the bootstrap.
//! - [`families`]: the trainable families and their difficulty levels (train items only);
//!   [`wordproblems`] and [`calculus`] generate two of them.
//! - [`curriculum`]: which families and levels a night trains on, from their pass rates.
//! - [`passk`]: the unbiased pass@k estimator.
//! - [`gate`]: the promotion gate (paired bootstrap over items).
//! - [`harness`]: runs a suite, stores every run and the eval record in memory.
//! - [`ladder`]: LADDER variant trees, verified in the sandbox and solved in groups.
//! - [`report`]: the self-contained HTML report with inline SVG plots.
//! - [`toy`]: the online toy family: raw replies rewarded by a tiny evaluator, for online
//!   training.

pub mod bench;
pub mod builtin;
pub mod calculus;
pub mod curriculum;
pub mod families;
pub mod gate;
pub mod harness;
pub mod ladder;
pub mod passk;
pub mod report;
pub mod suite;
pub mod toy;
pub mod verify;
pub mod wordproblems;

mod error;

pub use error::{Error, Result};
pub use harness::{FamilyScore, HarnessOptions, ItemResult, Report, Sample, run_suite};
pub use suite::{Item, Suite, VerifierKind};
pub use verify::Verifier;
