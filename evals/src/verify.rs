//! The verifiers. Agent answers are data: the `python` verifier runs the item's `check` in a
//! fresh sandbox session under a deadline, and never evaluates anything on the host.
//!
//! A `check` that evaluates the answer as code (sympy's `parse_expr` does) lets the answer run
//! inside that session and, in principle, fake the verdict; the built-in checks therefore
//! refuse any answer with a name outside a small allowlist before parsing it.

use std::time::Duration;

use autodidact_runtime::rlm::Reward;
use autodidact_sandbox::{Limits, Sandbox, Status, ToolSet};
use serde_json::{Value, json};

use crate::suite::{Item, VerifierKind};

/// Checks answers to one item. It is also the item's [`Reward`]: 1.0 for a pass, else 0.0.
#[derive(Clone)]
pub struct Verifier {
    kind: VerifierKind,
    answer: String,
    check: Option<String>,
    sandbox: Option<Sandbox>,
    deadline: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("kind", &self.kind).field("answer", &self.answer).finish()
    }
}

/// The default deadline of a `python` check (it may import sympy, which takes a few seconds).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(30);

impl Verifier {
    /// A verifier for `item`. `python` items need a `sandbox`; without one they always fail.
    pub fn new(item: &Item, sandbox: Option<Sandbox>) -> Verifier {
        Verifier { kind: item.verifier, answer: item.answer.clone(), check: item.check.clone(), sandbox, deadline: CHECK_DEADLINE }
    }

    /// The same verifier with another deadline for `python` checks.
    pub fn with_deadline(mut self, deadline: Duration) -> Verifier {
        self.deadline = deadline;
        self
    }

    /// Whether `given` is a correct answer.
    pub async fn passes(&self, given: &str) -> bool {
        match self.kind {
            VerifierKind::Numeric => numeric_matches(given, &self.answer),
            VerifierKind::Exact => fold(given) == fold(&self.answer),
            VerifierKind::Contains => fold(given).contains(&fold(&self.answer)),
            VerifierKind::Python => match (&self.sandbox, &self.check) {
                (Some(sb), Some(check)) => python_check(sb, check, given, self.deadline).await.unwrap_or(false),
                _ => false,
            },
        }
    }
}

#[async_trait::async_trait]
impl Reward for Verifier {
    async fn reward(&self, answer: Option<&str>) -> f64 {
        match answer {
            Some(a) if self.passes(a).await => 1.0,
            _ => 0.0,
        }
    }
}

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The last number in `text` (commas removed), if any: `-1,234.5` reads as -1234.5.
pub fn last_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = if i > 0 && b[i - 1] == b'-' && (i < 2 || !b[i - 2].is_ascii_alphanumeric()) { i - 1 } else { i };
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || (b[j] == b',' && j + 1 < b.len() && b[j + 1].is_ascii_digit())) {
            j += 1;
        }
        if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
            j += 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        }
        let s: String = text[start..j].chars().filter(|c| *c != ',').collect();
        last = s.parse::<f64>().ok().or(last);
        i = j;
    }
    last
}

/// The `numeric` rule: the last number of `given` equals `expected` to 1e-6 relative.
pub fn numeric_matches(given: &str, expected: &str) -> bool {
    let (Some(a), Some(b)) = (last_number(given), last_number(expected)) else { return false };
    if b == 0.0 {
        return a.abs() <= 1e-9;
    }
    (a - b).abs() <= 1e-6 * b.abs()
}

const VERDICT: &str = "try:\n    __autodidact_verdict = check(__answer) is True\nexcept BaseException:\n    __autodidact_verdict = False\n";

/// Runs `check(given)` in a fresh sandbox session; only a returned `True` passes. `Err` when
/// the session cannot start (the caller counts that as a failure too).
async fn python_check(sandbox: &Sandbox, check: &str, given: &str, deadline: Duration) -> Result<bool, autodidact_sandbox::Error> {
    let limits = Limits { deadline, ..Limits::default() };
    let mut s = sandbox.session(limits, ToolSet::new())?;
    if s.exec_async(check).await?.status != Status::Ok {
        return Ok(false);
    }
    s.set_var_async("__answer", &json!(given)).await?;
    // Assigned after `check` returns or raises anything (SystemExit included), so a check
    // that sets the variable and escapes the cell still fails.
    let cell = s.exec_async(VERDICT).await?;
    if cell.status != Status::Ok {
        return Ok(false);
    }
    Ok(s.get_var_async("__autodidact_verdict").await? == Value::Bool(true))
}
