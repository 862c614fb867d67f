//! What a [`crate::Sandbox`] holds once its module is compiled and linked: the engine, the
//! pre-linked instance and the stdlib folder. Sessions start from it alone, so `session.rs`
//! needs nothing from `engine.rs` (which compiles, caches and shares it).

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{Engine, InstancePre};

use crate::host::HostState;

/// A compiled, linked CPython-WASI module and what starting a session from it needs.
pub(crate) struct Compiled {
    /// The engine the module was compiled for.
    pub engine: Engine,
    /// The module with every import linked.
    pub pre: InstancePre<HostState>,
    /// The host folder mapped read-only at `/usr/local/lib` (the stdlib).
    pub stdlib_dir: PathBuf,
    /// Whether the module meters fuel.
    pub fuel: bool,
    /// How long loading the module took.
    pub module_load: Duration,
}
