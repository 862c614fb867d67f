//! The trainer's one error type, with context variants.

use std::path::PathBuf;

/// Everything that can go wrong in the trainer.
///
/// A model's mistakes are not errors: a completion with reward 0 is data. These variants are
/// for missing assets, malformed files, refused inputs and numerical-library failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base model's GGUF is not where it should be.
    #[error("model file {path} not found; run `scripts/bootstrap.sh` to fetch it")]
    MissingModel {
        /// Where the file was expected.
        path: PathBuf,
    },
    /// A GGUF file lacks a metadata key or tensor, or has one of the wrong type or shape.
    #[error("{path}: {what}")]
    BadGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A candle operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A candle operation failed while doing something with a file.
    #[error("{path}: candle: {source}")]
    CandleAt {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: candle_core::Error,
    },
    /// The caller asked for something inconsistent (empty group, token out of vocabulary, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A group from the evaluation split was offered for training.
    #[error("refusing to train on task {task:?}: it belongs to the eval split")]
    EvalSplitRefused {
        /// The task's identifier, as the caller gave it.
        task: String,
    },
    /// A checkpoint does not match the trainer it is being loaded into.
    #[error("checkpoint {path}: {what}")]
    CheckpointMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },
}

/// The trainer's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn bad_gguf(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadGguf { path: path.into(), what: what.into() }
    }
}
