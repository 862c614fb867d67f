//! The nightly crate's one error type.
//!
//! The machinery's failures: a store, an engine, a trainer or a file that fails. A model's
//! mistakes (a failed attempt, a malformed reply) are data in the trajectory, never errors.

use std::path::PathBuf;

/// Everything that can go wrong in a night, a training session or a TTRL run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trajectory store failed.
    #[error(transparent)]
    Memory(#[from] autodidact_memory::Error),
    /// A model backend or the agent failed.
    #[error(transparent)]
    Runtime(#[from] autodidact_runtime::Error),
    /// The trainer failed.
    #[error(transparent)]
    Trainer(#[from] autodidact_trainer::Error),
    /// A suite, the harness or LADDER failed.
    #[error(transparent)]
    Evals(#[from] autodidact_evals::Error),
    /// The sandbox failed as a host.
    #[error(transparent)]
    Sandbox(#[from] autodidact_sandbox::Error),
    /// A policy file is invalid.
    #[error(transparent)]
    Policy(#[from] autodidact_policies::Error),
    /// A file or folder could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done ("creating", "writing", "cannot read adapter").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A JSON value could not be (de)serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// What was being done when `source` failed (printed as `context: source` by reporters
    /// that walk the chain, as the CLI's does).
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
    /// A request that cannot be carried out, with the reason (no groups to train on, an
    /// unknown adapter id, a stage that failed).
    #[error("{0}")]
    Invalid(String),
}

/// The nightly crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to an error, as `anyhow::Context` does for the CLI.
pub trait Context<T> {
    /// Wraps the error with `context()`.
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Context { context: context(), source: Box::new(e.into()) })
    }
}

/// An [`Error::Io`] for `path`.
pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}

/// An error and its sources, joined by `: ` (what `anyhow`'s `{:#}` prints): the reason a
/// failed stage records.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}
