//! `autodidact eval` and `autodidact ladder` end to end on the scripted model, the real
//! sandbox and a scratch SQLite store: the JSON shapes other checks rely on, exit codes, and
//! suite-file errors that name the line.

use std::path::PathBuf;
use std::process::Command;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autodidact-eval-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn autodidact(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
    c.env("AUTODIDACT_DB", format!("sqlite://{}", dir.join("m.db").display()));
    c
}

fn fin(answer: &str) -> String {
    format!("```repl\nFINAL({answer:?})\n```")
}

#[test]
fn eval_prints_the_summary_and_stores_the_record() {
    let dir = scratch("eval");
    let suite = dir.join("s.jsonl");
    std::fs::write(&suite, concat!(
        r#"{"id":"a","family":"add","prompt":"What is 2 + 3?","answer":"5","verifier":"numeric"}"#, "\n",
        r#"{"id":"b","family":"word","prompt":"Capital of France?","answer":"Paris","verifier":"exact"}"#, "\n",
    )).unwrap();
    let script = dir.join("replies.txt");
    std::fs::write(&script, [fin("The answer is 5"), fin("Lyon")].join("\n---\n")).unwrap();
    let out = autodidact(&dir)
        .args(["eval", "--suite-file", suite.to_str().unwrap(), "--model", &format!("scripted:{}", script.display()), "--adapter", "none", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["suite"], "s");
    assert_eq!(v["n"], 2);
    assert_eq!(v["k"], 1);
    assert_eq!(v["pass_at_1"], 0.5);
    assert_eq!(v["by_family"]["add"]["pass_at_1"], 1.0);
    assert_eq!(v["by_family"]["word"]["pass_at_1"], 0.0);
    assert!(v["mean_latency_ms"].as_f64().unwrap() > 0.0);
    let stats = autodidact(&dir).args(["memory", "stats", "--json"]).output().unwrap();
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(s["evals"], 1, "{s}");
    assert_eq!(s["runs"], 2, "{s}");
}

#[test]
fn a_bad_suite_file_is_a_clear_error_naming_the_line() {
    let dir = scratch("bad");
    let suite = dir.join("bad.jsonl");
    std::fs::write(&suite, "{\"id\":\"a\",\"family\":\"f\",\"prompt\":\"p\",\"answer\":\"1\",\"verifier\":\"numeric\"}\n{\"id\":\"b\"}\n").unwrap();
    let out = autodidact(&dir).args(["eval", "--suite-file", suite.to_str().unwrap(), "--model", "scripted:/dev/null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2:") && err.contains("`family` is missing"), "{err}");
    let out = autodidact(&dir).args(["eval", "--suite", "nonesuch"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("built-in suites: arith"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ladder_prints_its_summary() {
    let dir = scratch("ladder");
    let script = dir.join("replies.txt");
    // One seed, depth 1: the model writes two variants, then solves each twice, shortest first
    // (2*x, then x**2); one sample of each passes.
    let replies = ["x**2\n2*x".to_owned(), fin("x**2"), fin("0"), fin("x**3/3"), fin("1")];
    std::fs::write(&script, replies.join("\n---\n")).unwrap();
    let out = autodidact(&dir)
        .args(["ladder", "--suite", "integrals", "--limit", "1", "--depth", "1", "--variants", "2", "--group", "2", "--json"])
        .args(["--model", &format!("scripted:{}", script.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seeds"], 1, "{v}");
    assert_eq!(v["variants_verified"], 2, "{v}");
    assert_eq!(v["groups"], 2, "{v}");
    assert_eq!(v["solved_fraction_by_depth"]["1"], 1.0, "{v}");
}
