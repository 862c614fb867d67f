//! Property tests of the policy parser: any text, and the presets mutated line by line (lines
//! deleted, duplicated, swapped, replaced, values swapped for values of other types, the file
//! cut short), give a `Policy` that passes its own checks or an error that names the file;
//! never a panic. `PROPTEST_CASES` scales the run (`make fuzz`).

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;

use std::path::Path;

use autodidact_policies::{DEFAULT_PRESET, EVAL_PRESET, Error, Policy};
use proptest::prelude::*;
use proptest::sample::Index;

const FILE: &str = "fuzz/policy.toml";

/// Parses `text` and checks what came back: a policy that satisfies the documented limits, or
/// an `Invalid` error whose message starts with the file and whose line is inside the text.
fn parse_and_check(text: &str) -> Result<(), TestCaseError> {
    match Policy::parse(text, Path::new(FILE)) {
        Ok(p) => {
            prop_assert!((1..=4096).contains(&p.sandbox.memory_mb), "memory_mb {}", p.sandbox.memory_mb);
            prop_assert!(p.sandbox.deadline_ms > 0 && p.budget.turn_tokens > 0 && p.budget.run_tokens > 0);
            prop_assert!(p.budget.min_thinking_tokens <= p.budget.turn_tokens);
            prop_assert!((0.0..=5.0).contains(&p.budget.temperature));
            prop_assert!(p.nightly.group_size >= 2 && p.training.num_generations >= 2);
            prop_assert!(p.training.epsilon > 0.0 && p.training.epsilon < 1.0);
            prop_assert!(p.training.learning_rate > 0.0 && p.training.learning_rate.is_finite());
            prop_assert!(p.promotion.confidence > 0.5 && p.promotion.confidence < 1.0);
            prop_assert!(p.sandbox.grants.iter().all(|g| g.guest.starts_with('/') && !g.guest.split('/').any(|c| c == "..")));
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.starts_with(FILE), "the error does not name the file: {message}");
            let Error::Invalid { line, .. } = &e else { return Err(TestCaseError::fail(format!("not an Invalid error: {e:?}"))) };
            if let Some(line) = line {
                let lines = text.lines().count().max(1) + 1;
                prop_assert!((1..=lines).contains(line), "line {line} is outside the text's {lines} lines: {message}");
            }
        }
    }
    Ok(())
}

/// Section headers and keys the presets use, plus near misses.
fn names() -> (Vec<String>, Vec<String>) {
    let mut sections = vec!["sandbox.grants".to_owned(), "sandbx".to_owned(), "".to_owned()];
    let mut keys = vec!["host".to_owned(), "guest".to_owned(), "mode".to_owned(), "fuel".to_owned()];
    for line in DEFAULT_PRESET.lines().chain(EVAL_PRESET.lines()).map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(s.to_owned());
        } else if let Some((k, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            keys.push(k.trim().to_owned());
        }
    }
    sections.sort();
    sections.dedup();
    keys.sort();
    keys.dedup();
    (sections, keys)
}

/// A TOML value of any type (and some that are not TOML at all).
fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}0")),
        prop_oneof![Just(0i64), Just(1), Just(2), Just(-1), Just(4096), Just(4097), Just(100)].prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        prop_oneof![Just("nan"), Just("+inf"), Just("-inf"), Just("1e400"), Just("-0.0"), Just("0.5"), Just("1.0"), Just("0x1F"), Just("1_000"), Just("0o777")]
            .prop_map(str::to_owned),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| format!("{s:?}")),
        "[^'\n]{0,20}".prop_map(|s| format!("'{s}'")),
        "[ -~]{0,20}".prop_map(|s| format!("\"\"\"{s}\"\"\"")),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("\"/usr/local/lib/x\"".to_owned()),
        Just("\"../..\"".to_owned()),
        "[ -~]{0,12}",
    ];
    scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..3)
                .prop_map(|kv| format!("{{ {} }}", kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", "))),
        ]
    })
}

/// One line of a policy-shaped file.
fn line() -> impl Strategy<Value = String> {
    let (sections, keys) = names();
    prop_oneof![
        prop::sample::select(sections.clone()).prop_map(|s| format!("[{s}]")),
        prop::sample::select(sections).prop_map(|s| format!("[[{s}]]")),
        (prop::sample::select(keys), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        ("[a-z_.\"]{1,12}", value()).prop_map(|(k, v)| format!("{k} = {v}")),
        "#[^\n]{0,20}",
        "[\\[\\]={}\"'#,. a-z0-9\\\\]{0,24}",
        any::<String>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Replace(Index, String),
    Insert(Index, String),
    SetValue(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<Index>(), line()).prop_map(|(i, l)| Mutation::Replace(i, l)),
        (any::<Index>(), line()).prop_map(|(i, l)| Mutation::Insert(i, l)),
        (any::<Index>(), value()).prop_map(|(i, v)| Mutation::SetValue(i, v)),
        (any::<Index>(), value()).prop_map(|(i, v)| Mutation::SetValue(i, v)),
    ]
}

/// `preset` with `mutations` applied in order, then cut at `cut` (a fraction of its length)
/// when given.
fn mutate(preset: &str, mutations: &[Mutation], cut: Option<Index>) -> String {
    let mut lines: Vec<String> = preset.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => {
                lines.remove(i.index(n));
            }
            Mutation::Duplicate(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            Mutation::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Mutation::Replace(i, l) => lines[i.index(n)] = l.clone(),
            Mutation::Insert(i, l) => lines.insert(i.index(n + 1), l.clone()),
            Mutation::SetValue(i, v) => {
                // The i-th assignment (wrapping), so most mutations change a real value.
                let assignments: Vec<usize> = (0..n).filter(|&j| lines[j].contains('=') && !lines[j].trim_start().starts_with('#')).collect();
                if !assignments.is_empty() {
                    let j = assignments[i.index(assignments.len())];
                    let key = lines[j].split_once('=').map(|(k, _)| k.to_owned()).unwrap_or_default();
                    lines[j] = format!("{key}= {v}");
                }
            }
        }
    }
    let mut text = lines.join("\n");
    if let Some(cut) = cut {
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

#[test]
fn arbitrary_text_is_a_policy_or_an_error_naming_the_file() {
    let text = prop_oneof![
        any::<String>(),
        prop::collection::vec(line(), 0..12).prop_map(|l| l.join("\n")),
        prop::collection::vec(line(), 0..12).prop_map(|l| l.join("\r\n")),
    ];
    fuzz_common::check("policy_arbitrary_text", 1000, text, |t| parse_and_check(&t));
}

#[test]
fn mutated_presets_are_a_policy_or_an_error_naming_the_file() {
    let input = (prop::bool::ANY, prop::collection::vec(mutation(), 1..6), prop::option::of(any::<Index>()));
    fuzz_common::check("policy_mutated_presets", 1000, input, |(eval, mutations, cut)| {
        let preset = if eval { EVAL_PRESET } else { DEFAULT_PRESET };
        parse_and_check(&mutate(preset, &mutations, cut))
    });
}

/// Deep nesting is what a recursive parser overflows its stack on; a policy arrives over HTTP
/// (`PUT /agents/{name}`), so it must be refused, not crash the server.
#[test]
fn deeply_nested_values_are_an_error() {
    for depth in [64, 1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{ a = ", " }")] {
            let text = format!("[budget]\ncontinuations = {}1{}\n", open.repeat(depth), close.repeat(depth));
            parse_and_check(&text).unwrap();
            assert!(Policy::parse(&text, Path::new(FILE)).is_err());
            let text = format!("[budget]\ncontinuations = {}\n", open.repeat(depth));
            parse_and_check(&text).unwrap();
        }
    }
}
