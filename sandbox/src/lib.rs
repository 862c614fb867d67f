//! CPython-WASI sessions in wasmtime.
//!
//! `autodidact-sandbox` runs untrusted Python, written by a language model, inside a
//! WebAssembly sandbox. The guest is CPython 3.15 compiled to `wasm32-wasip1` as a WASI
//! *reactor* (`python-snapshot.wasm`, pre-initialised so a session starts in about a
//! millisecond), with numpy, sympy and much of the scientific stack compiled in.
//!
//! The main types:
//! - [`Sandbox`]: the engine and the compiled module. Compiling `python.wasm` takes minutes,
//!   so the result is cached on disk as a `.cwasm` ([`Sandbox::prepare`]).
//! - [`Session`]: one interpreter whose globals persist across cells. [`Session::exec`] runs a
//!   cell like a REPL input and returns a [`Cell`]; [`Session::set_var`] and
//!   [`Session::get_var`] move JSON values in and out.
//! - [`Limits`]: the wall-clock deadline, memory cap, output caps, file-call and tool-call
//!   caps, tool payload size and optional fuel, each named after its policy key. A limit that
//!   is hit is reported in the cell ([`Cell::trapped`], [`Cell::limits_hit`]), never as a
//!   host error.
//! - [`ToolSet`]: host functions the guest calls through `from host import tools`, behind an
//!   optional gate.
//!
//! Why it is built this way:
//! - **Deny by default.** The guest sees only the standard library (read-only, at
//!   `/usr/local/lib`) and the folders a policy grants. WASI preview 1 has no way to open a
//!   socket, start a process or a thread; the host adds none.
//! - **One safe API.** No wasmtime type appears in a public signature, and users need no
//!   `unsafe`. The only `unsafe` is loading our own cached module.
//! - **Stoppable.** Deadlines and cancellation use wasmtime's epoch interruption (checked
//!   every few milliseconds), and `time.sleep` goes through a `poll_oneoff` that sleeps in
//!   slices, so no guest code can outlive its deadline.
//! - **Concurrent.** Guest code runs on an elastic pool of large-stack threads, so sessions
//!   run side by side, and the `_async` methods never block a tokio worker.
//!
//! See `sandbox/SECURITY.md` for the threat model.

#![deny(missing_docs)]

pub mod bench;
mod compiled;
mod config;
mod engine;
mod host;
mod pool;
mod session;
mod tools;

use std::path::PathBuf;

pub use config::{Grant, Limit, Limits, SandboxConfig, default_home};
pub use engine::Sandbox;
pub use session::{Canceller, Cell, Session, Status};
pub use tools::{Gate, ToolError, ToolResult, ToolSet};

/// Runs `f` on a thread whose stack can hold guest code, blocking until it returns.
///
/// [`Session`] methods already do this; call it to batch many cells on one thread (it saves
/// a thread hand-off per cell) or to measure the sandbox without that hand-off.
pub fn on_guest_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    pool::run(f)
}

/// A failure of the host, as opposed to the guest's code (which is reported in a [`Cell`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An asset is not where the bootstrap puts it.
    #[error("missing sandbox asset {}: {hint}", path.display())]
    MissingAsset {
        /// The expected file.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// No compiled module is cached and compiling was not allowed.
    #[error("the sandbox module is not compiled yet ({}): run `autodidact sandbox prepare`", path.display())]
    NotPrepared {
        /// Where the cache was expected.
        path: PathBuf,
    },
    /// The wasm engine could not be configured.
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    /// Compiling or loading the module failed.
    #[error("cannot compile or load {}: {message}", path.display())]
    Compile {
        /// The module or cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The module cache could not be read or written.
    #[error("module cache {}: {source}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A session could not be started.
    #[error("cannot start a sandbox session: {0}")]
    Instantiate(String),
    /// A granted folder could not be opened.
    #[error("cannot grant {}: {message}", host.display())]
    Grant {
        /// The host folder.
        host: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The session is over and takes no more cells.
    #[error("the session is over: {0}")]
    SessionClosed(String),
    /// Not a Python identifier.
    #[error("`{0}` is not a Python identifier")]
    BadName(String),
    /// `set_var` or `get_var` failed inside the guest.
    #[error("{what}({name}) failed in the guest: {stderr}")]
    Guest {
        /// `set_var` or `get_var`.
        what: &'static str,
        /// The variable.
        name: String,
        /// The guest's error.
        stderr: String,
    },
}
