//! The serve crate's one error type: the host's failures while starting or running the
//! service (a config file, the store, the model, the listener). A request's own mistakes are
//! [`crate::ApiError`]s, answered as JSON; a model's mistakes are data in the trajectory.

use std::path::PathBuf;

/// What can go wrong in the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trajectory store failed.
    #[error(transparent)]
    Memory(#[from] autodidact_memory::Error),
    /// A model backend, a tool file or the agent failed.
    #[error(transparent)]
    Runtime(#[from] autodidact_runtime::Error),
    /// The sandbox failed as a host.
    #[error(transparent)]
    Sandbox(#[from] autodidact_sandbox::Error),
    /// A policy (the server's, or an agent's) is invalid.
    #[error(transparent)]
    Policy(#[from] autodidact_policies::Error),
    /// The config file could not be read.
    #[error("cannot read the config file {}: {cause}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The configuration is invalid: a TOML error, a bad address or schedule, an unsafe
    /// setting. The text says which.
    #[error("{0}")]
    Config(String),
    /// The listener could not be opened, or the server failed while serving.
    #[error("{what}: {cause}")]
    Net {
        /// What was being done ("cannot listen on 0.0.0.0:80").
        what: String,
        /// Why.
        cause: std::io::Error,
    },
    /// A request that cannot be carried out (an agent deleted while its run was queued).
    #[error("{0}")]
    Invalid(String),
}

/// The serve crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
