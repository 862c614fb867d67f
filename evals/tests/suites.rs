//! Suite files: the format, errors that name the line, and the built-in generators
//! (deterministic, train and eval disjoint, reference answers pass their own verifiers).

use std::collections::HashSet;
use std::time::Duration;

use autodidact_evals::builtin::{self, NIAH_SIZES};
use autodidact_evals::families;
use autodidact_evals::suite::Suite;
use autodidact_evals::{Error, Verifier, VerifierKind};
use autodidact_memory::Split;
use autodidact_sandbox::{Sandbox, SandboxConfig};

fn line_error(text: &str) -> (usize, String) {
    match Suite::parse("s", "s.jsonl", text) {
        Err(Error::Suite { line, message, .. }) => (line, message),
        other => panic!("expected a suite error, got {other:?}"),
    }
}

#[test]
fn suite_file_errors_name_the_line() {
    let good = r#"{"id":"a","family":"f","prompt":"p","answer":"1","verifier":"numeric"}"#;
    let cases = [
        ("{not json", "not JSON"),
        (r#"[1,2]"#, "JSON object"),
        (r#"{"family":"f","prompt":"p","answer":"1","verifier":"numeric"}"#, "`id` is missing"),
        (r#"{"id":"b","family":"f","prompt":"p","answer":"1","verifier":"regex"}"#, "unknown verifier `regex`"),
        (r#"{"id":"b","family":"f","prompt":"p","answer":[1],"verifier":"exact"}"#, "`answer` must be a string or a number"),
        (r#"{"id":"b","family":"f","prompt":"p","answer":"1","verifier":"python"}"#, "needs a `check`"),
        (r#"{"id":"b","family":"f","prompt":"p","answer":"1","verifier":"exact","check":"def check(a): return True"}"#, "only for the python verifier"),
        (r#"{"id":"b","family":"f","prompt":"p","answer":"1","verifier":"exact","split":"test"}"#, "`train` or `eval`"),
        (r#"{"id":"b","family":"f","prompt":"","answer":"1","verifier":"exact"}"#, "`prompt` is empty"),
        (r#"{"id":"a","family":"f","prompt":"p","answer":"1","verifier":"exact"}"#, "duplicate id `a`"),
    ];
    for (bad, want) in cases {
        let (line, message) = line_error(&format!("{good}\n\n{bad}\n"));
        assert_eq!(line, 3, "{bad}");
        assert!(message.contains(want), "{bad}: {message}");
    }
    let e = Suite::parse("s", "s.jsonl", "\n\n").unwrap_err().to_string();
    assert!(e.contains("no items"), "{e}");
}

#[test]
fn suite_files_round_trip_with_defaults() {
    let text = r#"{"id":"a","family":"f","prompt":"p","answer":42,"verifier":"numeric","note":"ignored"}
{"id":"b","family":"g","prompt":"q","context":"long text","answer":"x","verifier":"contains","split":"train"}"#;
    let suite = Suite::parse("s", "s.jsonl", text).unwrap();
    assert_eq!(suite.items[0].answer, "42");
    assert_eq!(suite.items[0].split, Split::Eval);
    assert_eq!(suite.items[1].split, Split::Train);
    assert_eq!(suite.items[1].context.as_deref(), Some("long text"));
    let again = Suite::parse("s", "s.jsonl", &suite.to_jsonl()).unwrap();
    assert_eq!(again, suite);
}

#[test]
fn generators_are_deterministic_and_splits_are_disjoint() {
    for name in ["toy", "arith", "integrals", "countdown", "wordproblems", "game24"] {
        let eval = builtin::generate(name, Split::Eval, 200).unwrap();
        assert_eq!(eval, builtin::generate(name, Split::Eval, 200).unwrap(), "{name} is not deterministic");
        let train = builtin::generate(name, Split::Train, 200).unwrap();
        let held: HashSet<_> = builtin::generate(name, Split::Eval, builtin::EVAL_GUARD).unwrap().items.into_iter().map(|i| i.prompt).collect();
        assert!(train.items.iter().all(|i| !held.contains(&i.prompt) && i.split == Split::Train), "{name}: a train item is an eval item");
        let ids: HashSet<_> = eval.items.iter().map(|i| &i.id).collect();
        assert_eq!(ids.len(), 200, "{name}: ids repeat");
    }
    assert!(matches!(builtin::generate("nope", Split::Eval, 1), Err(Error::UnknownSuite(_))));
}

#[test]
fn numeric_references_pass_their_own_verifier() {
    for name in ["toy", "arith", "wordproblems"] {
        for item in builtin::generate(name, Split::Eval, 50).unwrap().items {
            assert!(autodidact_evals::verify::numeric_matches(&item.answer, &item.answer));
            assert!(item.answer.parse::<i64>().is_ok(), "{name}: {}", item.answer);
        }
    }
    // Spot-check arith against hand-computed Python semantics.
    let item = &builtin::generate("arith", Split::Eval, 1).unwrap().items[0];
    assert!(item.prompt.starts_with("Compute "), "{}", item.prompt);
}

#[test]
fn niah_hides_one_needle_in_haystacks_from_8kb_to_1mb() {
    let suite = builtin::generate("niah", Split::Eval, NIAH_SIZES.len()).unwrap();
    for (item, size) in suite.items.iter().zip(NIAH_SIZES) {
        let hay = item.context.as_ref().unwrap();
        assert!(hay.len() >= *size && hay.len() < size + 200, "{} vs {size}", hay.len());
        assert_eq!(hay.matches("magic number").count(), 1);
        assert!(hay.contains(&format!("is {}.", item.answer)));
        assert_eq!(item.verifier, VerifierKind::Numeric);
    }
}

#[test]
fn gsm8k_comes_from_the_bootstrap_and_is_eval_only() {
    let suite = builtin::generate("gsm8k", Split::Eval, 1319).unwrap();
    assert_eq!(suite.items.len(), 1319);
    assert_eq!(suite.items[0].answer, "18");
    assert!(suite.items.iter().all(|i| i.answer.parse::<f64>().is_ok()), "an answer is not a number");
    let e = builtin::generate("gsm8k", Split::Train, 10).unwrap_err().to_string();
    assert!(e.contains("eval-only"), "{e}");
}

#[tokio::test]
async fn python_references_pass_their_own_checks() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    for name in ["integrals", "countdown", "game24"] {
        for item in builtin::generate(name, Split::Eval, 6).unwrap().items {
            let v = Verifier::new(&item, Some(sandbox.clone())).with_deadline(Duration::from_secs(30));
            assert!(v.passes(&item.answer).await, "{name} {}: reference {:?} fails its check", item.id, item.answer);
            assert!(!v.passes("0").await, "{name} {}: `0` passes", item.id);
        }
    }
}

#[test]
fn train_families_never_repeat_an_eval_prompt() {
    for f in families::FAMILIES {
        let mut held: HashSet<String> = HashSet::new();
        for suite in f.eval_suites.iter().filter(|s| **s != "niah") {
            held.extend(builtin::generate(suite, Split::Eval, if *suite == "gsm8k" { 1319 } else { builtin::EVAL_GUARD }).unwrap().items.into_iter().map(|i| i.prompt));
        }
        for level in 1..=f.levels {
            let items = families::train_items(f.name, level, 0, 60).unwrap();
            assert_eq!(items.len(), 60, "{} L{level}", f.name);
            assert!(items.iter().all(|i| !held.contains(&i.prompt)), "{} L{level}: a train item is an eval item", f.name);
            let ids: HashSet<_> = items.iter().map(|i| &i.id).collect();
            assert_eq!(ids.len(), 60, "{} L{level}: ids repeat", f.name);
            // Another night's window holds other items.
            let later = families::train_items(f.name, level, 500, 5).unwrap();
            assert!(later.iter().all(|i| !ids.contains(&i.id)), "{} L{level}", f.name);
        }
    }
}

#[test]
fn varied_train_needles_hide_one_keyed_number_per_level_size() {
    for (level, size) in (1..=5).zip(NIAH_SIZES) {
        for item in families::train_items("niah", level, 0, 5).unwrap() {
            let hay = item.context.as_ref().unwrap();
            assert!(hay.len() >= *size && hay.len() < size + 200, "L{level}: {} vs {size}", hay.len());
            assert_eq!(hay.matches(item.answer.as_str()).count(), 1, "{}", item.prompt);
        }
    }
    let prompts: HashSet<String> = families::train_items("niah", 1, 0, 40).unwrap().into_iter().map(|i| i.prompt.split(" What").next().unwrap().to_owned()).collect();
    assert!(prompts.iter().any(|p| p.contains("locker")) && prompts.iter().any(|p| p.contains("JSON")), "{prompts:?}");
}

#[tokio::test]
async fn every_level_of_the_python_checked_families_accepts_its_reference() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    for (name, levels) in [("integrals", 4), ("countdown", 3), ("game24", 2)] {
        for level in 1..=levels {
            for item in families::train_items(name, level, 0, 3).unwrap() {
                let v = Verifier::new(&item, Some(sandbox.clone())).with_deadline(Duration::from_secs(30));
                assert!(v.passes(&item.answer).await, "{name} L{level}: reference {:?} fails its check ({})", item.answer, item.prompt);
                assert!(!v.passes("0").await, "{name} L{level}: `0` passes");
            }
        }
    }
    // The Game of 24 needs every card.
    let it = builtin::generate("game24", Split::Eval, 1).unwrap().items.remove(0);
    let v = Verifier::new(&it, Some(sandbox.clone())).with_deadline(Duration::from_secs(30));
    assert!(v.passes(&it.answer).await);
    let g = autodidact_evals::suite::Item { check: Some(builtin::game24_check(&[4, 6, 1, 1])), ..it.clone() };
    let v = Verifier::new(&g, Some(sandbox)).with_deadline(Duration::from_secs(30));
    assert!(v.passes("4 * 6 * 1 * 1").await);
    assert!(!v.passes("4 * 6").await, "two cards unused");
    assert!(builtin::solve24(&[1, 1, 1, 1]).is_none());
    assert_eq!(builtin::solve24(&[4, 6, 1, 1]).is_some(), true);
}
