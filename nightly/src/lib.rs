//! The self-improvement loop of autodidact, as a library: what `autodidact nightly`,
//! `train`, `ttrl`, `adapters` and `trainer parity` run, for programs that embed the agent.
//!
//! A night ([`Night`]) is a sequence of stages (gather, curriculum, rollouts, train,
//! eval_promoted, eval_candidate, gate, consolidate, report) over the trajectory store. Each
//! stage reads what earlier stages recorded in memory and records its own output when it
//! finishes, so a killed night resumes at its first unfinished stage:
//!
//! ```no_run
//! # async fn night(store: std::sync::Arc<autodidact_memory::Store>) -> autodidact_nightly::Result<()> {
//! use autodidact_nightly::{Night, NightOptions, Outcome};
//! use autodidact_policies::Policy;
//!
//! let mut options = NightOptions::new(Policy::preset_default());
//! options.quick = true;
//! let mut night = Night::open(store, options, |event| eprintln!("{event:?}")).await?;
//! if let Outcome::Finished(summary) = night.run().await? {
//!     println!("{}", summary["decision"]);
//! }
//! # Ok(()) }
//! ```
//!
//! - [`night`]: the stages, the plan a night records, and its summary.
//! - [`train`]: training sessions (offline from memory's untrained groups, or online on the
//!   toy family), the learning-curve points, and the merge of tonight's update with the
//!   promoted one.
//! - [`ttrl`]: test-time RL on one task with a temporary adapter, rolled back at the end.
//! - [`adapters`]: the adapter registry's operations (apply, register after llama.cpp has
//!   loaded the file, promote, roll back).
//! - [`parity`]: the trainer's log-probs against llama.cpp's on the same tokens.
//!
//! This is the one crate that joins the runtime (rollouts, llama.cpp's tokenizer) and the
//! trainer, which never know of each other. It holds no SQL (memory does) and no HTTP (serve
//! does); its errors are one [`Error`] enum.

#![deny(missing_docs)]

pub mod adapters;
mod error;
pub mod night;
pub mod parity;
pub mod train;
pub mod ttrl;

pub use error::{Context, Error, Result, error_chain};
pub use night::{Night, NightEvent, NightOptions, Outcome, STAGES};
