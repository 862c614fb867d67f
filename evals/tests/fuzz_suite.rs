//! Property tests of what reads untrusted text in evals: the JSONL suite parser (any text, and
//! valid lines with keys removed, retyped or added), the answer checks (`last_number`, the
//! `numeric`, `exact` and `contains` verifiers) and the toy family's reply reader and
//! evaluator. Each gives a value or an error, never a panic; valid suites read back equal, and
//! numbers and expressions read back their value. `PROPTEST_CASES` scales the run.

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;

use autodidact_evals::verify::{last_number, numeric_matches};
use autodidact_evals::{Error, Item, Suite, Verifier, VerifierKind, toy};
use autodidact_memory::Split;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

const FILE: &str = "fuzz.jsonl";

/// A JSON value of any type.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |x| x.is_finite()).prop_map(Value::from),
        prop_oneof![Just(0u64), Just(1), Just(100), Just(101)].prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop_oneof![Just("numeric"), Just("exact"), Just("contains"), Just("python"), Just("train"), Just("eval"), Just(""), Just("  ")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A non-blank string (required fields must not be blank).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9 ]{1,12}"].prop_map(|s| format!("{s}x"))
}

/// A valid item with index `i` in its id (ids are unique within a suite).
fn item(i: usize) -> impl Strategy<Value = Item> {
    let verifier = prop_oneof![Just(VerifierKind::Numeric), Just(VerifierKind::Exact), Just(VerifierKind::Contains), Just(VerifierKind::Python)];
    (
        (text(), text(), text(), prop::option::of(any::<String>()), any::<String>(), verifier, any::<String>()),
        (any::<bool>(), prop::option::of(any::<String>()), prop::option::of(any::<String>()), 0u32..=100, prop::option::of(any::<String>())),
    )
        .prop_map(move |((id, family, prompt, context, answer, verifier, check), (train, parent_id, hint, level, solution))| {
            let split = if train { Split::Train } else { Split::Eval };
            Item {
                id: format!("{i}-{id}"),
                family,
                prompt,
                context,
                answer,
                verifier,
                check: (verifier == VerifierKind::Python).then(|| format!("def check(answer):\n    return {check:?} in answer\n")),
                split,
                parent_id,
                hint: hint.filter(|_| split == Split::Train),
                level,
                solution,
            }
        })
}

fn suite() -> impl Strategy<Value = Suite> {
    (1usize..6).prop_flat_map(|n| (0..n).map(item).collect::<Vec<_>>()).prop_map(|items| Suite { name: "fuzz".into(), items })
}

/// Parses `text`: a suite, or a `Suite` error naming the file and a line of the text (0 for
/// "no items").
fn parse_and_check(text: &str) -> Result<(), TestCaseError> {
    match Suite::parse("fuzz", FILE, text) {
        Ok(s) => prop_assert!(!s.items.is_empty()),
        Err(Error::Suite { file, line, message }) => {
            prop_assert_eq!(file, FILE);
            prop_assert!(line <= text.lines().count(), "line {} of {} lines: {}", line, text.lines().count(), message);
            prop_assert!(line > 0 || message.contains("no items"), "line 0 is only for an empty suite: {}", message);
        }
        Err(other) => return Err(TestCaseError::fail(format!("not a suite error: {other}"))),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(Index),
    Retype(Index, Value),
    Add(String, Value),
    DuplicateLine(Index),
    ReplaceLine(Index, String),
    CutLine(Index, Index),
    BlankLine(Index),
}

const KEYS: &[&str] = &["id", "family", "prompt", "context", "answer", "verifier", "check", "split", "parent_id", "hint", "level", "solution"];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), json()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        (any::<Index>(), json()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        ("[a-z_]{1,8}", json()).prop_map(|(k, v)| Mutation::Add(k, v)),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<String>()).prop_map(|(i, s)| Mutation::ReplaceLine(i, s)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, at)| Mutation::CutLine(i, at)),
        any::<Index>().prop_map(Mutation::BlankLine),
    ]
}

/// The suite's lines with `mutations` applied to the objects (keys) and to the lines.
fn mutate(suite: &Suite, mutations: &[Mutation]) -> String {
    let mut objects: Vec<Map<String, Value>> =
        suite.items.iter().map(|i| serde_json::from_str::<Value>(&i.to_line()).unwrap().as_object().unwrap().clone()).collect();
    let n = objects.len();
    for (k, m) in mutations.iter().enumerate() {
        let obj = &mut objects[k % n];
        match m {
            Mutation::Remove(i) => {
                obj.remove(KEYS[i.index(KEYS.len())]);
            }
            Mutation::Retype(i, v) => {
                obj.insert(KEYS[i.index(KEYS.len())].to_owned(), v.clone());
            }
            Mutation::Add(key, v) => {
                obj.insert(key.clone(), v.clone());
            }
            _ => {}
        }
    }
    let mut lines: Vec<String> = objects.into_iter().map(|o| Value::Object(o).to_string()).collect();
    for m in mutations {
        let n = lines.len();
        match m {
            Mutation::DuplicateLine(i) => {
                let l = lines[i.index(n)].clone();
                lines.push(l);
            }
            Mutation::ReplaceLine(i, s) => lines[i.index(n)] = s.clone(),
            Mutation::CutLine(i, at) => {
                let l = &mut lines[i.index(n)];
                let mut at = at.index(l.len() + 1);
                while !l.is_char_boundary(at) {
                    at -= 1;
                }
                l.truncate(at);
            }
            Mutation::BlankLine(i) => lines.insert(i.index(n + 1), "   ".into()),
            _ => {}
        }
    }
    lines.join("\n")
}

#[test]
fn arbitrary_text_is_a_suite_or_an_error_naming_file_and_line() {
    let line = prop_oneof![any::<String>(), json().prop_map(|v| v.to_string()), "[{}\\[\\]\":,a-z0-9 ]{0,30}"];
    let input = prop_oneof![any::<String>(), prop::collection::vec(line, 0..6).prop_map(|l| l.join("\n"))];
    fuzz_common::check("suite_arbitrary_text", 1000, input, |t| parse_and_check(&t));
}

#[test]
fn valid_suites_read_back_equal() {
    fuzz_common::check("suite_roundtrip", 1000, suite(), |s| {
        let back = Suite::parse("fuzz", FILE, &s.to_jsonl()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, s);
        Ok(())
    });
}

#[test]
fn mutated_suites_are_a_suite_or_an_error_naming_file_and_line() {
    let input = (suite(), prop::collection::vec(mutation(), 1..6));
    fuzz_common::check("suite_mutated_lines", 1000, input, |(s, mutations)| parse_and_check(&mutate(&s, &mutations)));
}

/// `n` with thousands separators: 1234567 -> "1,234,567".
fn with_commas(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[test]
fn last_number_reads_the_number_written_last() {
    let prose = "[^0-9]{0,20}";
    let input = (prose, any::<i64>(), "[0-9]{0,6}", any::<bool>(), prose);
    fuzz_common::check("answer_last_number", 1000, input, |(before, n, frac, commas, after)| {
        let whole = if commas { with_commas(n) } else { n.to_string() };
        let written = if frac.is_empty() { whole } else { format!("{whole}.{frac}") };
        let expected: f64 = written.replace(',', "").parse().unwrap();
        let text = format!("{before} {written} {after}");
        prop_assert_eq!(last_number(&text), Some(expected), "{:?}", text);
        prop_assert!(numeric_matches(&text, &written));
        Ok(())
    });
}

#[test]
fn verifiers_never_panic_and_accept_the_answer_itself() {
    let input = (any::<String>(), any::<String>(), "[0-9,.\\- a-zé]{0,16}");
    fuzz_common::check("answer_verifiers", 1000, input, |(given, answer, numberish)| {
        for a in [&answer, &numberish] {
            for kind in [VerifierKind::Numeric, VerifierKind::Exact, VerifierKind::Contains] {
                let v = Verifier::new(&Item::user("q", a, kind), None);
                let _ = futures::executor::block_on(v.passes(&given));
                let own = futures::executor::block_on(v.passes(a));
                let want = match kind {
                    VerifierKind::Numeric => last_number(a).is_some_and(f64::is_finite),
                    _ => true,
                };
                prop_assert_eq!(own, want, "{:?} does not pass its own {:?} check", a, kind);
            }
            let _ = numeric_matches(&given, a);
        }
        Ok(())
    });
}

/// An integer expression (fully parenthesised) and its value, `None` on overflow.
fn expr() -> impl Strategy<Value = (String, Option<i64>)> {
    let leaf = prop_oneof![0i64..1000, 0..=i64::MAX]
        .prop_map(|n| (n.to_string(), Some(n)));
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), prop_oneof![Just('+'), Just('-'), Just('*')], inner.clone(), " {0,2}").prop_map(|((a, x), op, (b, y), sp)| {
                let v = match (x, y) {
                    (Some(x), Some(y)) => match op {
                        '+' => x.checked_add(y),
                        '-' => x.checked_sub(y),
                        _ => x.checked_mul(y),
                    },
                    _ => None,
                };
                (format!("({a}{sp}{op}{sp}{b})"), v)
            }),
            inner.prop_map(|(a, x)| (format!("-{a}"), x.and_then(i64::checked_neg))),
        ]
    })
}

#[test]
fn toy_evaluator_computes_expressions_and_reads_any_reply() {
    let input = (expr(), any::<String>(), prop_oneof![Just("repl"), Just("python"), Just("")], any::<bool>());
    fuzz_common::check("toy_answer", 1000, input, |((e, value), noise, tag, tags)| {
        prop_assert_eq!(toy::eval(&e), value, "{}", e);
        let reply = if tags { format!("{noise}<answer>{e}</answer>") } else { format!("{}\n```{tag}\n{e}\n```\n{noise}", noise.replace(['`', '<'], "")) };
        let _ = toy::answer_of(&reply);
        let _ = toy::answer_of(&noise);
        let _ = toy::eval(&noise);
        let task = toy::ToyTask { expr: e.clone(), prompt: String::new(), answer: value.unwrap_or(0) };
        let r = toy::reward(&task, &reply);
        prop_assert!([0.0, 0.1, 0.5, 1.0].contains(&r));
        if let (false, Some(v)) = (tags, value) {
            prop_assert_eq!(toy::answer_of(&reply), Some((v, tag == "repl")), "{:?}", reply);
        }
        Ok(())
    });
}

/// A reply of a model stuck repeating `(` or `-` reaches the evaluator's recursion, which
/// overflowed the stack before nesting was bounded (online training rewards raw replies).
#[test]
fn toy_evaluator_survives_deep_nesting() {
    assert_eq!(toy::eval(&format!("{}7{}", "(".repeat(50), ")".repeat(50))), Some(7));
    assert_eq!(toy::eval(&format!("{}7", "-".repeat(50))), Some(7));
    for depth in [100, 10_000, 1_000_000] {
        assert_eq!(toy::eval(&format!("{}1{}", "(".repeat(depth), ")".repeat(depth))), None);
        assert_eq!(toy::eval(&format!("{}1", "-".repeat(depth))), None);
        assert_eq!(toy::eval(&"-(".repeat(depth)), None);
        assert_eq!(toy::answer_of(&format!("```repl\n{}\n```", "(".repeat(depth))), None);
    }
}
