//! The built-in suites, generated from seeds, and GSM8K from the bootstrap's dataset.
//!
//! Item `i` of split `s` of suite `name` is generated from a seed hashed from `(name, s, i)`,
//! so train and eval items come from disjoint seeds; for the small problem spaces (`toy`,
//! `arith`, `countdown`, `integrals`) train generation also skips any prompt that the first
//! [`EVAL_GUARD`] eval items use, so no eval problem is ever trained on.

use std::collections::HashSet;
use std::path::PathBuf;

use autodidact_memory::Split;

use crate::suite::{Item, Suite, VerifierKind};
use crate::{Error, Result};

/// The built-in suite names.
pub const BUILTIN: &[&str] = &["arith", "integrals", "niah", "countdown", "toy", "gsm8k", "wordproblems", "game24"];

/// How many eval items train generation checks against.
pub const EVAL_GUARD: usize = 2000;

/// The NIAH haystack sizes, cycled by item index: 8 KB to 1 MB.
pub const NIAH_SIZES: &[usize] = &[8_000, 32_000, 128_000, 512_000, 1_000_000];

/// How many items a suite has when no limit is given.
pub fn default_size(name: &str) -> usize {
    match name {
        "niah" => NIAH_SIZES.len() * 2,
        "gsm8k" => 1319,
        "integrals" => 30,
        _ => 50,
    }
}

/// Where the bootstrap puts the GSM8K test set.
pub fn gsm8k_path() -> PathBuf {
    autodidact_memory::home_dir().join("datasets/gsm8k/test.jsonl")
}

/// `n` items of `split` of the built-in suite `name`.
pub fn generate(name: &str, split: Split, n: usize) -> Result<Suite> {
    let make: fn(&mut Rng, usize) -> Item = match name {
        "toy" => toy,
        "arith" => arith,
        "integrals" => integrals,
        "countdown" => countdown,
        "niah" => niah,
        "wordproblems" => wordproblems_mixed,
        "game24" => game24_four,
        "gsm8k" => return gsm8k(split, n),
        other => return Err(Error::UnknownSuite(other.to_owned())),
    };
    let held_out: HashSet<String> = if split == Split::Train && name != "niah" {
        (0..EVAL_GUARD).map(|i| make(&mut Rng::for_item(name, Split::Eval, i), i).prompt).collect()
    } else {
        HashSet::new()
    };
    let mut items = Vec::with_capacity(n);
    let mut i = 0;
    while items.len() < n {
        let mut item = make(&mut Rng::for_item(name, split, i), i);
        i += 1;
        if held_out.contains(&item.prompt) {
            continue;
        }
        item.id = format!("{name}-{}-{:04}", split.as_str(), items.len());
        item.split = split;
        items.push(item);
        if i > n * 50 + 1000 {
            break; // a tiny problem space; return what exists
        }
    }
    Ok(Suite { name: name.to_owned(), items })
}

fn item(family: &str, prompt: String, answer: String, verifier: VerifierKind) -> Item {
    Item { id: String::new(), family: family.into(), prompt, context: None, answer, verifier, check: None, split: Split::Eval, parent_id: None, hint: None, level: 0, solution: None }
}

/// Small sums and products: the family the trainer learns first.
pub(crate) fn toy(r: &mut Rng, _: usize) -> Item {
    let (a, b) = (r.range(2, 20), r.range(2, 20));
    let (op, v) = match r.below(3) {
        0 => ("+", a + b),
        1 => ("-", a - b),
        _ => ("*", a * b),
    };
    toy_item(&format!("{a} {op} {b}"), v)
}

/// A `toy` item asking for `expr`, whose value is `value`.
pub fn toy_item(expr: &str, value: i64) -> Item {
    let mut it = item("toy", format!("What is {expr}?"), value.to_string(), VerifierKind::Numeric);
    it.solution = Some(repl(&format!("FINAL({expr})")));
    it
}

/// A reply holding one REPL block with `code`.
fn repl(code: &str) -> String {
    format!("```repl\n{code}\n```")
}

/// Multi-step integer arithmetic with Python's `//` and `%`, best done in the REPL.
pub(crate) fn arith(r: &mut Rng, _: usize) -> Item {
    let (a, b, c, d, e) = (r.range(100, 999), r.range(11, 99), r.range(100, 9999), r.range(3, 19), r.range(10, 99));
    let (expr, v) = match r.below(4) {
        0 => (format!("({a} * {b} - {c}) // {d} + {e}"), floor_div(a * b - c, d) + e),
        1 => (format!("{a} * {b} + {c} * {d} - {e}"), a * b + c * d - e),
        2 => (format!("({a} + {c}) * ({b} - {e}) % {d}"), floor_mod((a + c) * (b - e), d)),
        _ => (format!("{b} ** 3 - {a} * {d} + {c} // {e}"), b * b * b - a * d + floor_div(c, e)),
    };
    arith_item(&expr, v)
}

/// An `arith` item asking for `expr`, whose value is `value`.
pub fn arith_item(expr: &str, value: i64) -> Item {
    let prompt = format!("Compute {expr}. Use Python's meaning of the operators: // is floor division and % is the remainder.");
    let mut it = item("arith", prompt, value.to_string(), VerifierKind::Numeric);
    it.solution = Some(repl(&format!("FINAL({expr})")));
    it
}

/// The expression at the heart of a built-in `toy`, `arith` or `integrals` prompt (what LADDER
/// rewrites), if the prompt has the built-in shape.
pub fn core_expression(item: &Item) -> Option<String> {
    let between = |start: &str, end: &str| {
        let rest = item.prompt.split_once(start)?.1;
        Some(rest.split_once(end)?.0.trim().to_owned())
    };
    match item.family.as_str() {
        "toy" => between("What is ", "?"),
        "arith" => between("Compute ", ". Use Python"),
        "integrals" => between("f(x) = ", ". Answer"),
        _ => None,
    }
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) - if b < 0 && a.rem_euclid(b) != 0 { 1 } else { 0 }
}

fn floor_mod(a: i64, b: i64) -> i64 {
    a - b * floor_div(a, b)
}

/// The `check` of an integrals item: differentiate the answer with sympy and compare it with
/// the integrand at random points. `INTEGRAND` is substituted as a Python string literal.
const INTEGRAL_CHECK: &str = r#"INTEGRAND = __INTEGRAND__

def check(answer: str) -> bool:
    import random
    import sympy as sp
    from sympy.parsing.sympy_parser import (parse_expr, standard_transformations,
        implicit_multiplication_application, convert_xor)
    x = sp.Symbol("x")
    text = answer.strip().strip("`$").replace("\u2212", "-")
    if "=" in text:
        text = text.rsplit("=", 1)[1]
    text = text.strip().rstrip(".")
    import re
    if len(text) > 500 or re.search(r"[^0-9A-Za-z_+\-*/^()., ]", text):
        return False
    allowed = {"x", "sin", "cos", "tan", "exp", "log", "ln", "sqrt", "pi", "e", "E", "C", "c",
               "asin", "acos", "atan", "sinh", "cosh", "tanh", "Abs", "abs"}
    if any(name not in allowed for name in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text)):
        return False
    text = text.replace("ln(", "log(")
    try:
        rules = standard_transformations + (implicit_multiplication_application, convert_xor)
        F = parse_expr(text, local_dict={"x": x, "e": sp.E}, transformations=rules)
        f = sp.sympify(INTEGRAND, locals={"x": x})
        d = sp.diff(F, x)
    except Exception:
        return False
    if d.free_symbols - {x}:
        return False
    rng = random.Random(7)
    for _ in range(6):
        v = rng.uniform(0.3, 2.5)
        try:
            got, want = complex(d.subs(x, v).evalf()), complex(f.subs(x, v).evalf())
        except Exception:
            return False
        if not abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            return False
    return True
"#;

/// The `check` source for the antiderivative of `integrand`.
pub fn integral_check(integrand: &str) -> String {
    INTEGRAL_CHECK.replace("__INTEGRAND__", &serde_json::to_string(integrand).expect("strings serialize"))
}

/// Elementary antiderivatives: sums of one to three terms with known antiderivatives.
fn integrals(r: &mut Rng, i: usize) -> Item {
    let terms = 1 + (i % 3).min(r.below(3) as usize);
    let mut f = Vec::new();
    let mut big_f = Vec::new();
    for _ in 0..terms {
        let c = r.range(1, 9);
        let k = r.range(2, 5);
        let (t, a) = match r.below(5) {
            0 => {
                let n = r.range(1, 5);
                (format!("{c}*x**{n}"), format!("{c}*x**{}/{}", n + 1, n + 1))
            }
            1 => (format!("{c}*sin({k}*x)"), format!("-{c}*cos({k}*x)/{k}")),
            2 => (format!("{c}*cos({k}*x)"), format!("{c}*sin({k}*x)/{k}")),
            3 => (format!("{c}*exp({k}*x)"), format!("{c}*exp({k}*x)/{k}")),
            _ => (format!("{c}/x"), format!("{c}*log(x)")),
        };
        if f.contains(&t) {
            continue;
        }
        f.push(t);
        big_f.push(a);
    }
    integrals_item(&f.join(" + "), &big_f.join(" + "))
}

/// An `integrals` item for `integrand`, with a reference antiderivative.
pub fn integrals_item(integrand: &str, antiderivative: &str) -> Item {
    let prompt = format!("Find an antiderivative F(x) of f(x) = {integrand}. Answer with the expression for F(x) in SymPy syntax, without the constant.");
    let mut it = item("integrals", prompt, antiderivative.to_owned(), VerifierKind::Python);
    it.check = Some(integral_check(integrand));
    // Let sympy integrate it in the REPL.
    it.solution = Some(repl(&format!("import sympy as sp\nx = sp.Symbol('x')\nF = sp.integrate(sp.sympify({integrand:?}), x)\nFINAL(str(F))")));
    it
}

/// The `check` of a countdown item: the answer uses the numbers at most once each (exactly
/// once each when `ALL`, as in the Game of 24), with `+ - * /` and parentheses only, and
/// equals the target exactly.
const COUNTDOWN_CHECK: &str = r#"NUMBERS = __NUMBERS__
TARGET = __TARGET__
ALL = __ALL__

def check(answer: str) -> bool:
    import ast
    from fractions import Fraction
    lines = [l for l in answer.strip().strip("`$").splitlines() if l.strip()]
    if not lines:
        return False
    text = lines[-1]
    if "=" in text:
        left, right = text.split("=", 1)
        text = left if any(op in left for op in "+-*/") else right
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    used = []
    def ev(n):
        if isinstance(n, ast.BinOp) and type(n.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            if isinstance(n.op, ast.Mult):
                return a * b
            return a / b
        if isinstance(n, ast.Constant) and type(n.value) is int:
            used.append(n.value)
            return Fraction(n.value)
        raise ValueError("only numbers and + - * / are allowed")
    try:
        value = ev(tree.body)
    except (ValueError, ZeroDivisionError, RecursionError):
        return False
    pool = list(NUMBERS)
    for u in used:
        if u not in pool:
            return False
        pool.remove(u)
    if ALL and pool:
        return False
    return value == TARGET
"#;

/// The `check` source for a countdown item.
pub fn countdown_check(numbers: &[i64], target: i64) -> String {
    COUNTDOWN_CHECK.replace("__NUMBERS__", &format!("{numbers:?}")).replace("__TARGET__", &target.to_string()).replace("__ALL__", "False")
}

/// The `check` source for a Game of 24 item: every number exactly once, equal to 24.
pub fn game24_check(numbers: &[i64]) -> String {
    COUNTDOWN_CHECK.replace("__NUMBERS__", &format!("{numbers:?}")).replace("__TARGET__", "24").replace("__ALL__", "True")
}

/// The Game of 24 with four cards: the eval split's shape.
fn game24_four(r: &mut Rng, _: usize) -> Item {
    game24(r, 4)
}

/// The Game of 24 with `cards` numbers from 1 to 13: use each exactly once to make 24. Only
/// solvable draws are kept; the reference is one solution found by search.
pub(crate) fn game24(r: &mut Rng, cards: usize) -> Item {
    loop {
        let numbers: Vec<i64> = (0..cards).map(|_| r.range(1, 13)).collect();
        let Some(solution) = solve24(&numbers) else { continue };
        let prompt = format!(
            "Use each of the numbers {numbers:?} exactly once, with + - * / and parentheses, to write an expression equal to 24. Answer with the expression only."
        );
        let mut it = item("game24", prompt, solution, VerifierKind::Python);
        it.check = Some(game24_check(&numbers));
        it.solution = Some(search_solution(&numbers, 24, true));
        return it;
    }
}

/// A worked countdown or Game of 24 reply: a search over the numbers, in the REPL.
fn search_solution(numbers: &[i64], target: i64, all: bool) -> String {
    let done = if all { "len(xs) == 1 and xs[0][0] == T" } else { "any(v == T for v, _ in xs)" };
    repl(&format!(
        "from fractions import Fraction\nT = {target}\ndef solve(xs):\n    if {done}:\n        return next(e for v, e in xs if v == T)\n    for i, (a, ea) in enumerate(xs):\n        for j, (b, eb) in enumerate(xs):\n            if i == j:\n                continue\n            rest = [x for k, x in enumerate(xs) if k not in (i, j)]\n            for v, e in [(a + b, f'({{ea}} + {{eb}})'), (a - b, f'({{ea}} - {{eb}})'), (a * b, f'{{ea}} * {{eb}}')] + ([(a / b, f'{{ea}} / ({{eb}})')] if b else []):\n                found = solve(rest + [(v, e)])\n                if found:\n                    return found\nFINAL(solve([(Fraction(n), str(n)) for n in {numbers:?}]))"
    ))
}

/// One expression over all of `numbers` equal to 24, by exhaustive search over exact fractions.
pub fn solve24(numbers: &[i64]) -> Option<String> {
    let start: Vec<((i64, i64), String)> = numbers.iter().map(|&n| ((n, 1), n.to_string())).collect();
    search24(&start)
}

fn search24(xs: &[((i64, i64), String)]) -> Option<String> {
    if xs.len() == 1 {
        let ((n, d), e) = &xs[0];
        return (*d != 0 && *n == 24 * *d).then(|| e.clone());
    }
    for i in 0..xs.len() {
        for j in 0..xs.len() {
            if i == j {
                continue;
            }
            let rest: Vec<_> = xs.iter().enumerate().filter(|(k, _)| *k != i && *k != j).map(|(_, x)| x.clone()).collect();
            let (((a, b), ea), ((c, d), ec)) = (&xs[i], &xs[j]);
            let mut options = vec![((a * d + c * b, b * d), format!("({ea} + {ec})")), ((a * d - c * b, b * d), format!("({ea} - {ec})")), ((a * c, b * d), format!("{ea} * {ec}"))];
            if *c != 0 {
                options.push(((a * d, b * c), format!("{ea} / ({ec})")));
            }
            for (v, e) in options {
                let mut next = rest.clone();
                next.push((v, e));
                if let Some(found) = search24(&next) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Reach a target with some of the given numbers (three or four of them are needed).
fn countdown(r: &mut Rng, _: usize) -> Item {
    countdown_using(r, None)
}

/// A countdown item whose reference uses `count` of the four numbers (`None`: three or four).
pub(crate) fn countdown_using(r: &mut Rng, count: Option<usize>) -> Item {
    loop {
        let numbers: Vec<i64> = (0..4).map(|_| if r.below(4) == 0 { [25, 50, 75, 100][r.below(4) as usize] } else { r.range(1, 10) }).collect();
        let count = count.unwrap_or_else(|| 3 + r.below(2) as usize);
        let mut order: Vec<i64> = numbers.clone();
        r.shuffle(&mut order);
        let (mut value, mut expr) = (order[0], order[0].to_string());
        let mut ok = true;
        for &n in &order[1..count] {
            let (v, e) = match r.below(4) {
                0 => (value + n, format!("({expr} + {n})")),
                1 if value > n => (value - n, format!("({expr} - {n})")),
                2 => (value * n, format!("{expr} * {n}")),
                3 if n > 1 && value % n == 0 => (value / n, format!("{expr} / {n}")),
                _ => (value + n, format!("({expr} + {n})")),
            };
            value = v;
            expr = e;
            ok &= v > 0;
        }
        if !ok || !(10..=999).contains(&value) || numbers.contains(&value) {
            continue;
        }
        let expr = expr.strip_prefix('(').and_then(|e| e.strip_suffix(')')).filter(|e| !e.contains('(')).map_or(expr.clone(), str::to_owned);
        let prompt = format!(
            "Using some of the numbers {numbers:?}, each at most once, and + - * / with parentheses, write an expression equal to {value}. Answer with the expression only."
        );
        let mut it = item("countdown", prompt, expr, VerifierKind::Python);
        it.check = Some(countdown_check(&numbers, value));
        it.solution = Some(search_solution(&numbers, value, false));
        return it;
    }
}

const NAMES: &[&str] = &["Ada", "Basil", "Cleo", "Dmitri", "Esme", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lucia", "Mirek", "Nadia", "Otto", "Priya"];
const ADJ: &[&str] = &["quiet", "amber", "distant", "careful", "hollow", "bright", "patient", "rusty", "gentle", "narrow", "early", "silver"];
const NOUN: &[&str] = &["river", "lantern", "orchard", "engine", "harbor", "meadow", "ledger", "tower", "garden", "wagon", "bridge", "archive"];
const VERB: &[&str] = &["follows", "outlasts", "mirrors", "shelters", "crosses", "remembers", "circles", "greets", "measures", "carries"];

/// A needle (one person's magic number) in a generated haystack of the given size.
fn niah(r: &mut Rng, i: usize) -> Item {
    let size = NIAH_SIZES[i % NIAH_SIZES.len()];
    let name = r.pick(NAMES);
    let number = r.range(1_000_000, 9_999_999);
    let needle = format!("The magic number for {name} is {number}. ");
    let prompt = format!("The context is a long text. Somewhere in it is the magic number for {name}. What is that number? Answer with the number only.");
    let mut it = haystack_item(r, size, &needle, prompt, number);
    it.solution = Some(search_context(&format!("magic number for {name} is (\\d+)")));
    it
}

/// A worked NIAH reply: a regular expression over `context`, never reading all of it.
fn search_context(pattern: &str) -> String {
    repl(&format!("import re\nm = re.search(r\"\"\"{pattern}\"\"\", context)\nFINAL(m.group(1))"))
}

/// A train needle of one of several formats and keys, in a haystack of level `level`'s size
/// (1: 8 KB ... 5: 1 MB).
pub(crate) fn niah_varied(r: &mut Rng, level: u32) -> Item {
    let size = NIAH_SIZES[(level.max(1) as usize - 1).min(NIAH_SIZES.len() - 1)];
    let name = r.pick(NAMES);
    let number = r.range(1_000_000, 9_999_999);
    // The needle, what the question calls it, and a regular expression that finds it.
    let (needle, what, pattern) = match r.below(5) {
        0 => (format!("The magic number for {name} is {number}. "), format!("the magic number for {name}"), format!("magic number for {name} is (\\d+)")),
        1 => (format!("{name}'s locker code is {number}. "), format!("{name}'s locker code"), format!("{name}'s locker code is (\\d+)")),
        2 => {
            let account = format!("ACC-{}", r.range(1000, 9999));
            (format!("[ledger] account={account} balance={number}\n"), format!("the balance of account {account}"), format!("account={account} balance=(\\d+)"))
        }
        3 => {
            let (adj, noun) = (r.pick(ADJ), r.pick(NOUN));
            (format!("The {adj} {noun} vault opens with the passcode {number}. "), format!("the passcode of the {adj} {noun} vault"), format!("{adj} {noun} vault opens with the passcode (\\d+)"))
        }
        _ => (format!("{{\"user\": \"{name}\", \"pin\": {number}}}\n"), format!("the pin of the user {name} (in a JSON record)"), format!("\"user\": \"{name}\", \"pin\": (\\d+)")),
    };
    let prompt = format!("The context is a long text. Somewhere in it is {what}. What is that number? Answer with the number only.");
    let mut it = haystack_item(r, size, &needle, prompt, number);
    it.level = level;
    it.solution = Some(search_context(&pattern));
    it
}

/// `needle` placed at a random point of filler sentences of `size` bytes.
fn haystack_item(r: &mut Rng, size: usize, needle: &str, prompt: String, number: i64) -> Item {
    let at = r.below(size as u64) as usize;
    let mut hay = String::with_capacity(size + 200);
    let mut placed = false;
    while hay.len() < size {
        if !placed && hay.len() >= at {
            hay.push_str(needle);
            placed = true;
        }
        hay.push_str(&format!("The {} {} {} the {} {}. ", r.pick(ADJ), r.pick(NOUN), r.pick(VERB), r.pick(ADJ), r.pick(NOUN)));
    }
    if !placed {
        hay.push_str(needle);
    }
    let mut it = item("niah", prompt, number.to_string(), VerifierKind::Numeric);
    it.context = Some(hay);
    it
}

/// Word problems in the GSM8K style, one to four steps, cycled by item index.
fn wordproblems_mixed(r: &mut Rng, i: usize) -> Item {
    wordproblem_item(r, 1 + (i as u32 % crate::wordproblems::LEVELS))
}

/// A word problem of `level` (its number of steps).
pub(crate) fn wordproblem_item(r: &mut Rng, level: u32) -> Item {
    let (question, answer, solution) = crate::wordproblems::wordproblem_solved(r, level);
    let mut it = item("wordproblems", question, answer.to_string(), VerifierKind::Numeric);
    it.level = level;
    it.solution = solution.map(|expr| repl(&format!("FINAL({expr})")));
    it
}

/// The first `n` GSM8K test items (eval only; the answer follows `####`).
fn gsm8k(split: Split, n: usize) -> Result<Suite> {
    let path = gsm8k_path();
    if split == Split::Train {
        return Err(Error::Suite { file: path.display().to_string(), line: 0, message: "GSM8K is eval-only: it is never trained on".into() });
    }
    let text = std::fs::read_to_string(&path).map_err(|_| Error::MissingDataset { path: path.clone() })?;
    let file = path.display().to_string();
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).take(n) {
        let err = |message: &str| Error::Suite { file: file.clone(), line: i + 1, message: message.to_owned() };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(&format!("not JSON: {e}")))?;
        let question = v["question"].as_str().ok_or_else(|| err("no `question`"))?;
        let solution = v["answer"].as_str().ok_or_else(|| err("no `answer`"))?;
        let (_, answer) = solution.rsplit_once("####").ok_or_else(|| err("the answer has no `####`"))?;
        let answer: String = answer.trim().chars().filter(|c| *c != ',').collect();
        let mut it = item("gsm8k", question.to_owned(), answer, VerifierKind::Numeric);
        it.id = format!("gsm8k-{i:04}");
        items.push(it);
    }
    Ok(Suite { name: "gsm8k".into(), items })
}

/// A small deterministic generator (SplitMix64): the suites must not change with a crate.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator for item `i` of `split` of suite `name`.
    pub fn for_item(name: &str, split: Split, i: usize) -> Rng {
        // FNV-1a over the name and split, then the index.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes().chain([0]).chain(split.as_str().bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// One element of `xs`.
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// Shuffles `xs` in place.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}
