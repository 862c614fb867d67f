//! LADDER (arXiv 2503.00735): for each seed problem the model writes easier variants, guided
//! by sampled transformation hints, recursively; the sandbox verifies each variant and computes
//! its reference answer; the verified variants are then solved, easiest first, in groups that
//! the trainer learns from.
//!
//! Supported families are those whose built-in prompts LADDER can rewrite: `integrals` (the
//! sandbox integrates each variant with sympy; a variant without a closed form is dropped),
//! `arith` and `toy` (the sandbox evaluates a restricted arithmetic expression).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use autodidact_memory::{Split, Writer};
use autodidact_runtime::model::{LanguageModel, Message, Sampling};
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::{Limits, Sandbox, Session, Status, ToolSet};
use serde::Serialize;
use serde_json::{Value, json};

use crate::builtin::{Rng, arith_item, core_expression, integrals_item, toy_item};
use crate::harness::{HarnessOptions, new_task, run_suite};
use crate::suite::{Item, Suite};
use crate::Result;

/// The temperatures variant generation cycles through (LADDER's 0.8–1.4).
pub const TEMPERATURES: &[f32] = &[0.8, 1.0, 1.2, 1.4];

/// A transformation hint and how much easier it makes a problem (more negative = easier).
type Hint = (&'static str, i32);

const INTEGRAL_HINTS: &[Hint] = &[
    ("lower the exponent of a power of x", -1),
    ("remove one term", -2),
    ("drop a constant coefficient", -1),
    ("replace k*x inside sin, cos or exp by x", -1),
    ("replace an exp, sin or cos term by a power of x", -2),
    ("keep the same form but change the numbers", 0),
    ("use a single power of x", -3),
];

const ARITH_HINTS: &[Hint] = &[
    ("use smaller numbers", -1),
    ("remove one operation", -2),
    ("remove the parentheses", -1),
    ("replace // or % by + or -", -1),
    ("keep the same form but change the numbers", 0),
    ("use only two numbers", -3),
];

/// How to grow and solve variant trees.
#[derive(Clone)]
pub struct LadderOptions {
    /// Levels of variants below each seed (LADDER uses 2–3).
    pub depth: u32,
    /// Variants asked for per prompt, and kept per parent.
    pub variants: u32,
    /// Samples per variant when solving (0: grow the trees only).
    pub group: u32,
    /// Runs in flight when solving.
    pub concurrency: usize,
    /// Where variants are verified.
    pub sandbox: Sandbox,
    /// Where tasks (with parent ids), runs and groups are stored.
    pub writer: Option<Writer>,
    /// The adapter the solving model runs with.
    pub adapter_id: Option<String>,
    /// Seeds the hint sampling and the model's sampling.
    pub seed: u64,
    /// Tokens per variant-writing reply.
    pub max_tokens: usize,
    /// Progress messages.
    pub on_event: Option<Arc<dyn Fn(&str) + Send + Sync>>,
}

/// One verified variant.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// The variant as a suite item (train split, with its parent's task id).
    #[serde(skip)]
    pub item: Item,
    /// Its id.
    pub id: String,
    /// The id of the item it was derived from.
    pub parent: String,
    /// 1 for a seed's direct variants.
    pub depth: u32,
    /// The rewritten expression.
    pub expression: String,
    /// Its memory task, when stored.
    pub task_id: Option<String>,
    /// Fraction of its group's samples that passed, once solved.
    pub solved: Option<f64>,
}

/// What a LADDER run did.
#[derive(Debug, Clone, Serialize)]
pub struct LadderReport {
    /// Seeds used (seeds whose family LADDER cannot rewrite are skipped).
    pub seeds: usize,
    /// Candidate variants the model wrote.
    pub variants_generated: usize,
    /// Variants that parsed, had a reference answer, and were neither duplicates nor degenerate.
    pub variants_verified: usize,
    /// GRPO groups stored for the trainer.
    pub groups: usize,
    /// Per depth, the fraction of variants with at least one passing sample.
    pub solved_fraction_by_depth: BTreeMap<u32, f64>,
    /// Every verified variant.
    pub nodes: Vec<Node>,
}

impl LadderReport {
    /// The object `autodidact ladder --json` prints.
    pub fn summary(&self) -> Value {
        json!({
            "seeds": self.seeds, "variants_generated": self.variants_generated,
            "variants_verified": self.variants_verified, "groups": self.groups,
            "solved_fraction_by_depth": self.solved_fraction_by_depth,
        })
    }
}

/// Grows a variant tree under every seed of `seeds`, then solves the variants with `agent`,
/// easiest (deepest) first, `opts.group` samples each.
pub async fn run_ladder(agent: Arc<Agent>, model: Arc<dyn LanguageModel>, seeds: &Suite, opts: &LadderOptions) -> Result<LadderReport> {
    let mut checker = Checker::new(opts.sandbox.clone());
    let mut report = LadderReport { seeds: 0, variants_generated: 0, variants_verified: 0, groups: 0, solved_fraction_by_depth: BTreeMap::new(), nodes: Vec::new() };
    let mut calls = 0u64;
    for seed in &seeds.items {
        let Some(core) = core_expression(seed) else {
            say(opts, &format!("skipping {}: LADDER rewrites only built-in integrals, arith and toy prompts", seed.id));
            continue;
        };
        report.seeds += 1;
        let seed_task = match &opts.writer {
            Some(w) => Some(w.add_task(new_task(&format!("suite:{}", seeds.name), seed)).await?.committed().await?),
            None => None,
        };
        let mut seen: HashSet<String> = HashSet::new();
        if let Some(v) = checker.verify(&seed.family, &core).await {
            seen.insert(v.canon);
        }
        let mut frontier = vec![(seed.id.clone(), core, seed_task)];
        for depth in 1..=opts.depth {
            let mut next = Vec::new();
            for (parent_id, expr, parent_task) in &frontier {
                let mut rng = Rng::for_item(&format!("ladder-{}", opts.seed), Split::Train, calls as usize);
                let prompt = variant_prompt(&seed.family, expr, opts.variants, &mut rng);
                let temperature = TEMPERATURES[calls as usize % TEMPERATURES.len()];
                let sampling = Sampling::seeded(temperature, opts.seed.wrapping_add(calls), opts.max_tokens);
                calls += 1;
                let reply = match model.chat(&[Message::user(prompt)], &sampling).await {
                    Ok(c) => c.text,
                    Err(e) => {
                        say(opts, &format!("variant writing failed for {parent_id}: {e}"));
                        continue;
                    }
                };
                let candidates = candidates(&reply, &seed.family);
                say(opts, &format!("{} candidate lines for {parent_id} at temperature {temperature}: {:?}", candidates.len(), reply.chars().take(400).collect::<String>()));
                report.variants_generated += candidates.len();
                let mut kept = 0;
                for cand in candidates {
                    if kept >= opts.variants {
                        break;
                    }
                    let Some(v) = checker.verify(&seed.family, &cand).await else { continue };
                    if !seen.insert(v.canon.clone()) {
                        continue;
                    }
                    kept += 1;
                    let mut item = match seed.family.as_str() {
                        "integrals" => integrals_item(&v.expression, &v.answer),
                        "arith" => arith_item(&v.expression, v.answer.parse().unwrap_or_default()),
                        _ => toy_item(&v.expression, v.answer.parse().unwrap_or_default()),
                    };
                    item.id = format!("{parent_id}.{kept}");
                    item.split = Split::Train;
                    item.parent_id = parent_task.clone();
                    let task_id = match &opts.writer {
                        Some(w) => Some(w.add_task(new_task("ladder", &item)).await?.committed().await?),
                        None => None,
                    };
                    say(opts, &format!("depth {depth}: {} -> {}", expr, v.expression));
                    next.push((item.id.clone(), v.expression.clone(), task_id.clone()));
                    report.nodes.push(Node { id: item.id.clone(), parent: parent_id.clone(), depth, expression: v.expression, task_id, solved: None, item });
                }
            }
            frontier = next;
        }
    }
    report.variants_verified = report.nodes.len();
    if opts.group > 0 && !report.nodes.is_empty() {
        solve(agent, &mut report, opts).await?;
    }
    Ok(report)
}

/// Solves every node, deepest first, `opts.group` samples each; records groups and solve rates.
async fn solve(agent: Arc<Agent>, report: &mut LadderReport, opts: &LadderOptions) -> Result<()> {
    let mut order: Vec<usize> = (0..report.nodes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(report.nodes[i].depth), report.nodes[i].expression.len()));
    let suite = Suite { name: "ladder".into(), items: order.iter().map(|&i| report.nodes[i].item.clone()).collect() };
    let existing = order.iter().filter_map(|&i| Some((report.nodes[i].id.clone(), report.nodes[i].task_id.clone()?))).collect();
    let hopts = HarnessOptions {
        k: opts.group,
        concurrency: opts.concurrency,
        adapter_id: opts.adapter_id.clone(),
        writer: opts.writer.clone(),
        sandbox: opts.sandbox.clone(),
        on_sample: None,
        lessons: true,
        existing_tasks: existing,
    };
    let solved = run_suite(agent, &suite, &hopts).await?;
    report.groups = solved.groups;
    let mut by_depth: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (result, &i) in solved.items.iter().zip(&order) {
        let (n, c) = result.counts();
        let node = &mut report.nodes[i];
        node.solved = Some(if n == 0 { 0.0 } else { c as f64 / n as f64 });
        let e = by_depth.entry(node.depth).or_default();
        e.0 += 1;
        e.1 += usize::from(c > 0);
    }
    report.solved_fraction_by_depth = by_depth.into_iter().map(|(d, (n, s))| (d, s as f64 / n as f64)).collect();
    Ok(())
}

fn say(opts: &LadderOptions, msg: &str) {
    if let Some(f) = &opts.on_event {
        f(msg);
    }
}

/// The variant-writing prompt: the problem, 3–5 sampled hints, and the output format.
pub fn variant_prompt(family: &str, expr: &str, n: u32, rng: &mut Rng) -> String {
    let (hints, what, form, example) = match family {
        "integrals" => (
            INTEGRAL_HINTS,
            format!("find an antiderivative of f(x) = {expr}"),
            "a SymPy expression in x",
            "For f(x) = 6*x**3 + 4*sin(2*x), easier variants are:\n6*x**2\n4*sin(x)\nx**3 + sin(x)",
        ),
        _ => (
            ARITH_HINTS,
            format!("compute {expr}"),
            "an arithmetic expression with integers",
            "For (48 * 17 - 250) // 6, easier variants are:\n48 * 17 - 250\n(48 - 25) // 6\n17 * 6",
        ),
    };
    let mut pool: Vec<Hint> = hints.to_vec();
    rng.shuffle(&mut pool);
    let take = 3 + rng.below(3) as usize;
    pool.truncate(take);
    pool.sort_by_key(|h| h.1);
    let hints: Vec<&str> = pool.iter().map(|h| h.0).collect();
    format!(
        "{example}\n\nHere is a problem: {what}.\nWrite {n} easier variants of it. To make a variant easier: {}.\nWrite each variant on its own line, as {form}. Write nothing else.",
        hints.join("; ")
    )
}

/// Names a span of an `integrals` candidate may contain.
const MATH_NAMES: &[&str] = &["x", "sin", "cos", "tan", "exp", "log", "ln", "sqrt", "pi", "e"];

/// Candidate variants in a reply. Small models wrap expressions in prose, so every line
/// (numbering and bullets stripped) is cut into maximal spans of formula characters (digits,
/// operators, parentheses and, for integrals, [`MATH_NAMES`]); a span is a candidate when its
/// parentheses balance and it has an `x` (integrals) or an operator (arithmetic).
pub fn candidates(reply: &str, family: &str) -> Vec<String> {
    let integrals = family == "integrals";
    let mut out = Vec::new();
    for line in reply.lines() {
        let mut t = line.trim().trim_matches('`').trim_matches('$').trim();
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if (1..=2).contains(&digits) && [". ", ") ", ": "].iter().any(|m| t[digits..].starts_with(m)) {
            t = t[digits + 2..].trim_start();
        }
        for bullet in ["- ", "* ", "\u{2022} "] {
            t = t.strip_prefix(bullet).unwrap_or(t);
        }
        for span in formula_spans(t, integrals) {
            let span = span.trim().trim_end_matches('.').trim();
            let balanced = span.matches('(').count() == span.matches(')').count();
            let has_op = span.chars().skip(1).any(|c| "+-*/^%".contains(c));
            let bare_x = span.trim_matches(['(', ')', ' ']) == "x"; // usually the `(x)` of `f(x)`
            let keep = if integrals { span.contains('x') && !bare_x } else { has_op && span.chars().any(|c| c.is_ascii_digit()) };
            if keep && balanced && span.len() <= 200 {
                out.push(span.to_owned());
            }
        }
    }
    out
}

/// Maximal runs of formula characters in `line`; an identifier outside the allowlist (a word
/// of prose) or any other character ends a run.
fn formula_spans(line: &str, names: bool) -> Vec<String> {
    let mut spans = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let word: String = chars[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').collect();
            // `4x` and `2x**2` come through as one word: digits before the name are fine.
            if names && MATH_NAMES.contains(&word.as_str()) {
                cur.push_str(&word);
            } else if !cur.trim().is_empty() {
                spans.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
            i += word.chars().count();
            continue;
        }
        if c.is_ascii_digit() || "+-*/^%(). ".contains(c) {
            cur.push(c);
        } else if !cur.trim().is_empty() {
            spans.push(std::mem::take(&mut cur));
        } else {
            cur.clear();
        }
        i += 1;
    }
    if !cur.trim().is_empty() {
        spans.push(cur);
    }
    spans
}

/// A verified variant.
struct Verified {
    expression: String,
    answer: String,
    canon: String,
}

/// Verifies candidates in one sandbox session per family (reopened after a trap).
struct Checker {
    sandbox: Sandbox,
    sessions: BTreeMap<String, Session>,
}

const VERIFY_DEADLINE: Duration = Duration::from_secs(20);

impl Checker {
    fn new(sandbox: Sandbox) -> Checker {
        Checker { sandbox, sessions: BTreeMap::new() }
    }

    async fn verify(&mut self, family: &str, candidate: &str) -> Option<Verified> {
        let source = if family == "integrals" { VERIFY_INTEGRAL } else { VERIFY_ARITH };
        if self.sessions.get(family).is_none_or(Session::is_closed) {
            let limits = Limits { deadline: VERIFY_DEADLINE, ..Limits::default() };
            let mut s = self.sandbox.session(limits, ToolSet::new()).ok()?;
            if s.exec_async(source).await.ok()?.status != Status::Ok {
                return None;
            }
            self.sessions.insert(family.to_owned(), s);
        }
        let s = self.sessions.get_mut(family)?;
        s.set_var_async("__cand", &json!(candidate)).await.ok()?;
        let cell = s.exec_async("__out = verify(__cand)").await.ok()?;
        if cell.status != Status::Ok {
            return None;
        }
        let out = s.get_var_async("__out").await.ok()?;
        Some(Verified { expression: out["expression"].as_str()?.to_owned(), answer: out["answer"].as_str()?.to_owned(), canon: out["canon"].as_str()?.to_owned() })
    }
}

/// Parses a candidate integrand (names from an allowlist only: nothing is evaluated that could
/// run code), integrates it with sympy, and keeps it only with a closed-form antiderivative.
const VERIFY_INTEGRAL: &str = r#"
import re
import sympy as sp
from sympy.parsing.sympy_parser import (parse_expr, standard_transformations,
    implicit_multiplication_application, convert_xor)
_x = sp.Symbol("x")
_ALLOWED = {"x", "sin", "cos", "tan", "exp", "log", "ln", "sqrt", "pi", "e", "E"}
_RULES = standard_transformations + (implicit_multiplication_application, convert_xor)

def verify(text):
    t = text.strip().replace("\u2212", "-").replace("\u222b", "")
    t = re.sub(r"^\s*(?:[a-zA-Z]\s*\(x\)|y)\s*=\s*", "", t)
    t = re.sub(r"\s*d\s*x\s*$", "", t).strip().rstrip(".,;")
    if not t or len(t) > 120 or re.search(r"[^0-9A-Za-z_+\-*/^()., ]", t):
        return None
    if any(n not in _ALLOWED for n in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", t)):
        return None
    try:
        f = parse_expr(t.replace("ln(", "log("), local_dict={"x": _x, "e": sp.E}, transformations=_RULES)
    except Exception:
        return None
    if not isinstance(f, sp.Expr) or f.free_symbols != {_x}:
        return None
    F = sp.integrate(f, _x)
    if F.has(sp.Integral) or F.free_symbols != {_x}:
        return None
    return {"expression": str(f), "answer": str(F), "canon": sp.srepr(sp.expand(f))}
"#;

/// Parses a candidate as integer arithmetic (numbers, + - * // %, small powers), evaluates it
/// from its syntax tree, and keeps it when it has at least one operation.
const VERIFY_ARITH: &str = r#"
import ast, re

def _ev(n):
    if isinstance(n, ast.Constant) and type(n.value) is int and abs(n.value) <= 10**6:
        return n.value
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        return -_ev(n.operand)
    if isinstance(n, ast.BinOp):
        a, b = _ev(n.left), _ev(n.right)
        if isinstance(n.op, ast.Add): return a + b
        if isinstance(n.op, ast.Sub): return a - b
        if isinstance(n.op, ast.Mult): return a * b
        if isinstance(n.op, ast.FloorDiv): return a // b
        if isinstance(n.op, ast.Mod): return a % b
        if isinstance(n.op, ast.Pow) and 0 <= b <= 4 and abs(a) <= 10**4: return a ** b
    raise ValueError("not allowed")

def verify(text):
    t = text.strip().rstrip("?.")
    t = re.sub(r"^(?:compute|what is|calculate)\s+", "", t, flags=re.I)
    if "=" in t:
        t = t.split("=")[0]
    t = t.replace("\u00d7", "*").replace("\u2212", "-").strip()
    if not t or len(t) > 120:
        return None
    try:
        tree = ast.parse(t, mode="eval")
        value = _ev(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None
    if not isinstance(tree.body, ast.BinOp) or abs(value) > 10**12:
        return None
    return {"expression": ast.unparse(tree), "answer": str(value), "canon": ast.dump(tree)}
"#;
