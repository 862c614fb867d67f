//! The online `toy` family: raw replies rewarded without the agent, for online training
//! (`autodidact train --online --suite toy`, `nightly::train`).
//!
//! Small arithmetic (`Task: What is 14 + 95 - 8?`), answered either in answer tags
//! (`<answer>101</answer>`) or in a ` ```repl ` block whose last line is the expression (or
//! `print(expression)`). The verifier evaluates that expression itself, with a tiny integer
//! evaluator (`+ - * ( )`), instead of running the sandbox: the family exists to show that
//! training moves the reward, and must be cheap enough to run many times per step.
//!
//! Rewards ([`reward`]): 1 for the right number through the protocol, 0.5 for the right number
//! in another fenced block, 0.1 for a readable answer with the wrong number (format signals,
//! so that fewer groups have all-equal rewards, which DAPO drops), 0 otherwise.
//! The suite `toy` of [`crate::builtin`] asks the same kind of question through the agent.

use crate::builtin::Rng;

/// One toy task.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyTask {
    /// The expression, e.g. `14 + 95 - 8`.
    pub expr: String,
    /// What the model is asked.
    pub prompt: String,
    /// The right answer.
    pub answer: i64,
}

/// The system prompt: the REPL protocol and one worked example, as the RLM prompt gives it
/// (SmolLM2-135M follows the protocol far more often with the example than without).
pub const SYSTEM: &str = "You solve tasks by writing Python code in a REPL. Write code in ```repl blocks; \
the last expression of a block is printed.\n\nExample.\nTask: What is 17 * 23 + 5?\n```repl\n17 * 23 + 5\n```";

/// A deterministic task drawn from `rng`: two or three operands below 100, `+`, `-` or `*`
/// (at most one `*`, with a one-digit factor).
pub fn task(rng: &mut Rng) -> ToyTask {
    let mut pick = |n: u64| (rng.next_u64() % n) as i64;
    let terms = 2 + pick(2) as usize;
    let mut expr = (pick(90) + 10).to_string();
    let mut used_mul = false;
    for _ in 1..terms {
        let op = pick(3);
        if op == 2 && !used_mul {
            used_mul = true;
            expr.push_str(&format!(" * {}", pick(8) + 2));
        } else if op == 1 {
            expr.push_str(&format!(" - {}", pick(90) + 1));
        } else {
            expr.push_str(&format!(" + {}", pick(90) + 1));
        }
    }
    let answer = eval(&expr).expect("generated expressions evaluate");
    let prompt = format!("Task: What is {expr}? Reply with a ```repl block only.");
    ToyTask { expr, prompt, answer }
}

/// The reward of `reply` for `task`: 1 for the right number in answer tags or a ` ```repl `
/// block (the protocol), 0.5 for the right number in another fenced block (` ```python `, a
/// bare ` ``` `), 0.1 for a readable answer with the wrong number, 0 otherwise.
pub fn reward(task: &ToyTask, reply: &str) -> f64 {
    match answer_of(reply) {
        Some((x, true)) if x == task.answer => 1.0,
        Some((x, false)) if x == task.answer => 0.5,
        Some(_) => 0.1,
        None => 0.0,
    }
}

/// The number a reply answers, and whether it followed the protocol: the first `<answer>`
/// tag's integer (protocol), or else the value of the last line of the first fenced code block
/// (protocol if the block is ` ```repl `).
pub fn answer_of(reply: &str) -> Option<(i64, bool)> {
    if let Some(start) = reply.find("<answer>") {
        let rest = &reply[start + "<answer>".len()..];
        let inner = &rest[..rest.find("</answer>")?];
        return Some((inner.trim().trim_end_matches('.').replace(',', "").parse().ok()?, true));
    }
    let start = reply.find("```")?;
    let rest = &reply[start + 3..];
    let (info, body) = rest.split_once('\n')?;
    let body = &body[..body.find("```")?];
    let last = body.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let last = last.strip_prefix("print(").and_then(|l| l.strip_suffix(')')).unwrap_or(last);
    Some((eval(last)?, info.trim() == "repl"))
}

/// How deeply parentheses and unary minus may nest: a reply stuck repeating `(` would
/// otherwise overflow the stack of the recursive descent (found by `tests/fuzz_suite.rs`).
const MAX_NESTING: usize = 100;

/// Evaluates an integer expression of `+ - * ( )` with the usual precedence; `None` if it is
/// anything else, or nested deeper than 100 parentheses and signs.
pub fn eval(expr: &str) -> Option<i64> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let v = sum(&tokens, &mut pos, 0)?;
    (pos == tokens.len()).then_some(v)
}

fn sum(t: &[char], pos: &mut usize, depth: usize) -> Option<i64> {
    let mut v = product(t, pos, depth)?;
    while let Some(&c) = t.get(*pos) {
        if c != '+' && c != '-' {
            break;
        }
        *pos += 1;
        let r = product(t, pos, depth)?;
        v = if c == '+' { v.checked_add(r)? } else { v.checked_sub(r)? };
    }
    Some(v)
}

fn product(t: &[char], pos: &mut usize, depth: usize) -> Option<i64> {
    let mut v = atom(t, pos, depth)?;
    while t.get(*pos) == Some(&'*') {
        *pos += 1;
        v = v.checked_mul(atom(t, pos, depth)?)?;
    }
    Some(v)
}

fn atom(t: &[char], pos: &mut usize, depth: usize) -> Option<i64> {
    if depth >= MAX_NESTING {
        return None;
    }
    match t.get(*pos)? {
        '(' => {
            *pos += 1;
            let v = sum(t, pos, depth + 1)?;
            (t.get(*pos) == Some(&')')).then(|| *pos += 1)?;
            Some(v)
        }
        '-' => {
            *pos += 1;
            atom(t, pos, depth + 1)?.checked_neg()
        }
        c if c.is_ascii_digit() => {
            let start = *pos;
            while t.get(*pos).is_some_and(|c| c.is_ascii_digit()) {
                *pos += 1;
            }
            t[start..*pos].iter().collect::<String>().parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_reads_tags_and_repl_blocks() {
        let t = ToyTask { expr: "3 + 4 * 2".into(), prompt: "What is 3 + 4 * 2?".into(), answer: 11 };
        assert_eq!(reward(&t, "It is <answer>11</answer>."), 1.0);
        assert_eq!(reward(&t, "<answer> 14 </answer>"), 0.1);
        assert_eq!(reward(&t, "```repl\nx = 1\nprint(3 + 4 * 2)\n```"), 1.0);
        assert_eq!(reward(&t, "```repl\n(3 + 4) * 2\n```"), 0.1);
        assert_eq!(reward(&t, "eleven"), 0.0);
        assert_eq!(reward(&t, "```python\n3 + 4 * 2\n```"), 0.5);
        assert_eq!(reward(&t, "```\n3+4*2\n```"), 0.5);
        assert_eq!(eval("10 - -2 * (3 + 1)"), Some(18));
        assert_eq!(eval("2 +"), None);
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let t = task(&mut rng);
            assert_eq!(eval(&t.expr), Some(t.answer));
            assert!(t.prompt.contains(&t.expr));
        }
    }
}
