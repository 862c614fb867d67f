//! The `autodidact memory` commands a person uses: stats, runs, show, search, export.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "autodidact {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_search_and_export_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let log = dir.path().join("acks.log");
    let log_s = log.to_str().unwrap();
    run(&[
        "memory",
        "stress",
        "--db",
        &db,
        "--writers",
        "2",
        "--runs",
        "2",
        "--ack-log",
        log_s,
    ]);

    let stats: serde_json::Value =
        serde_json::from_str(&run(&["memory", "stats", "--json", "--db", &db])).unwrap();
    assert_eq!(
        (stats["runs"].as_u64(), stats["steps"].as_u64()),
        (Some(4), Some(40)),
        "{stats}"
    );
    assert_eq!(stats["schema_version"], 4, "the highest migration (4: run warnings)");

    let runs = run(&["memory", "runs", "--limit", "3", "--db", &db]);
    assert_eq!(runs.lines().count(), 3, "{runs}");
    let id = runs.split_whitespace().next().unwrap();

    let shown = run(&["memory", "show", &id[..32], "--db", &db]);
    assert!(
        shown.contains(id) && shown.contains("== step 9") && shown.contains("final answer\n63"),
        "{shown}"
    );

    let hits = run(&["memory", "search", "multiples seven", "--db", &db]);
    assert!(hits.contains("task"), "{hits}");
    let steps = run(&[
        "memory", "search", "print", "--kind", "step", "-k", "3", "--db", &db,
    ]);
    assert_eq!(
        steps.lines().count(),
        6,
        "three hits, two lines each: {steps}"
    );

    let out = dir.path().join("log.jsonl");
    run(&[
        "memory",
        "export",
        "--format",
        "rlm-log",
        "--out",
        out.to_str().unwrap(),
        "--db",
        &db,
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.iter().filter(|l| l["type"] == "metadata").count(), 4);

    let bad = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args([
            "memory", "export", "--format", "parquet", "--out", "x", "--db", &db,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use trl-grpo, sft or rlm-log"));
}
