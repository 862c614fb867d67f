//! Shared helpers for the sandbox's behaviour tests: the real bootstrapped assets.

#![allow(dead_code)]

use std::time::Duration;

use autodidact_sandbox::{Cell, Limits, Sandbox, SandboxConfig, Session, Status, ToolSet};

/// The sandbox on the bootstrapped assets (`scripts/bootstrap.sh`).
pub fn sandbox() -> Sandbox {
    Sandbox::open(&SandboxConfig::from_env()).unwrap_or_else(|e| panic!("{e}"))
}

/// A session with default limits and no tools.
pub fn session() -> Session {
    session_with(Limits::default())
}

/// A session with `limits` and no tools.
pub fn session_with(limits: Limits) -> Session {
    sandbox().session(limits, ToolSet::new()).expect("session starts")
}

/// Limits with a short deadline.
pub fn quick(ms: u64) -> Limits {
    Limits { deadline: Duration::from_millis(ms), ..Limits::default() }
}

/// Runs `code` and asserts it ran cleanly.
pub fn ok(s: &mut Session, code: &str) -> Cell {
    let cell = s.exec(code).expect("host works");
    assert_eq!(cell.status, Status::Ok, "cell failed: {code}\nstdout: {}\nstderr: {}", cell.stdout, cell.stderr);
    cell
}

/// Runs `code` and returns its stripped stdout.
pub fn out(s: &mut Session, code: &str) -> String {
    ok(s, code).stdout.trim_end().to_owned()
}
