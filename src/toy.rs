//! `toy`: a built-in verifiable task family for `autodidact train --online --suite toy`.
//!
//! Small arithmetic (`What is 14 + 95 - 8?`), answered either in answer tags
//! (`<answer>101</answer>`) or in a ` ```repl ` block whose last line is the expression (or
//! `print(expression)`). The verifier evaluates that expression itself, with a tiny integer
//! evaluator (`+ - * ( )`), instead of running the sandbox: the family exists to show that
//! training moves the reward, and must be cheap enough to run many times per step.
//!
//! Rewards: 1 for the right number, 0.1 for a well-formed answer with the wrong number (a
//! format signal, so that groups in which nobody is right are not all equal), 0 otherwise.
//! There is no `evals` crate on this branch; when it arrives this family belongs there.

use autodidact_trainer::Rng;

/// One toy task.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyTask {
    /// What the model is asked.
    pub prompt: String,
    /// The right answer.
    pub answer: i64,
}

/// The system prompt: the protocol and one worked example of each answer form.
pub const SYSTEM: &str = "You solve arithmetic. Answer with the number inside <answer></answer> tags, \
for example: What is 3 + 4 * 2? <answer>11</answer>. You may instead compute it in a repl block:\n\
```repl\n3 + 4 * 2\n```";

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
    ToyTask { prompt: format!("What is {expr}?"), answer }
}

/// The reward of `reply` for `task`.
pub fn reward(task: &ToyTask, reply: &str) -> f64 {
    match answer_of(reply) {
        Some(x) if x == task.answer => 1.0,
        Some(_) => 0.1,
        None => 0.0,
    }
}

/// The number a reply answers: the first `<answer>` tag's integer, or else the value of the
/// last line of the first ` ```repl ` block.
pub fn answer_of(reply: &str) -> Option<i64> {
    if let Some(start) = reply.find("<answer>") {
        let rest = &reply[start + "<answer>".len()..];
        let inner = &rest[..rest.find("</answer>")?];
        return inner.trim().trim_end_matches('.').replace(',', "").parse().ok();
    }
    let start = reply.find("```repl")?;
    let body = &reply[start + "```repl".len()..];
    let body = &body[..body.find("```")?];
    let last = body.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let last = last.strip_prefix("print(").and_then(|l| l.strip_suffix(')')).unwrap_or(last);
    eval(last)
}

/// Evaluates an integer expression of `+ - * ( )` with the usual precedence; `None` if it is
/// anything else.
pub fn eval(expr: &str) -> Option<i64> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let v = sum(&tokens, &mut pos)?;
    (pos == tokens.len()).then_some(v)
}

fn sum(t: &[char], pos: &mut usize) -> Option<i64> {
    let mut v = product(t, pos)?;
    while let Some(&c) = t.get(*pos) {
        if c != '+' && c != '-' {
            break;
        }
        *pos += 1;
        let r = product(t, pos)?;
        v = if c == '+' { v.checked_add(r)? } else { v.checked_sub(r)? };
    }
    Some(v)
}

fn product(t: &[char], pos: &mut usize) -> Option<i64> {
    let mut v = atom(t, pos)?;
    while t.get(*pos) == Some(&'*') {
        *pos += 1;
        v = v.checked_mul(atom(t, pos)?)?;
    }
    Some(v)
}

fn atom(t: &[char], pos: &mut usize) -> Option<i64> {
    match t.get(*pos)? {
        '(' => {
            *pos += 1;
            let v = sum(t, pos)?;
            (t.get(*pos) == Some(&')')).then(|| *pos += 1)?;
            Some(v)
        }
        '-' => {
            *pos += 1;
            atom(t, pos)?.checked_neg()
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
        let t = ToyTask { prompt: "What is 3 + 4 * 2?".into(), answer: 11 };
        assert_eq!(reward(&t, "It is <answer>11</answer>."), 1.0);
        assert_eq!(reward(&t, "<answer> 14 </answer>"), 0.1);
        assert_eq!(reward(&t, "```repl\nx = 1\nprint(3 + 4 * 2)\n```"), 1.0);
        assert_eq!(reward(&t, "```repl\n(3 + 4) * 2\n```"), 0.1);
        assert_eq!(reward(&t, "eleven"), 0.0);
        assert_eq!(eval("10 - -2 * (3 + 1)"), Some(18));
        assert_eq!(eval("2 +"), None);
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let t = task(&mut rng);
            let expr = t.prompt.trim_start_matches("What is ").trim_end_matches('?');
            assert_eq!(eval(expr), Some(t.answer));
        }
    }
}
