//! The evals crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in a suite or the harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A suite file line is malformed.
    #[error("{file}:{line}: {message}")]
    Suite {
        /// The file (or suite name).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A suite file cannot be read.
    #[error("cannot read suite file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An unknown built-in suite name.
    #[error("unknown suite `{0}`; built-in suites: arith, integrals, niah, countdown, toy, gsm8k")]
    UnknownSuite(String),
    /// A dataset the bootstrap fetches is missing.
    #[error("{path} is missing; run `scripts/bootstrap.sh` (or `make test`) to fetch it")]
    MissingDataset {
        /// The file that should exist.
        path: PathBuf,
    },
    /// A plot could not be drawn.
    #[error("cannot draw a plot: {0}")]
    Plot(String),
    /// The runtime failed (not the model's mistakes, which are data).
    #[error(transparent)]
    Runtime(#[from] autodidact_runtime::Error),
    /// The memory store failed.
    #[error(transparent)]
    Memory(#[from] autodidact_memory::Error),
    /// The sandbox failed to start a verifier session.
    #[error(transparent)]
    Sandbox(#[from] autodidact_sandbox::Error),
}

/// The evals crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
