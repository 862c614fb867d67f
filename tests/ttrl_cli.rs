//! `autodidact ttrl` on the real model: one short step of test-time RL on a stored integrals
//! task. It grows variants, trains a temporary adapter on them only, attempts the task before
//! and after, and leaves nothing behind: no adapter is registered. (Whether SmolLM2 solves it
//! is recorded, not required.)

use std::process::Command;

fn autodidact(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
    c.env("AUTODIDACT_DB", db);
    c
}

fn json_of(c: &mut Command) -> serde_json::Value {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn ttrl_trains_a_temporary_adapter_and_rolls_back() {
    let dir = std::env::temp_dir().join(format!("autodidact-ttrl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("m.db").display());
    // Store one integrals eval task (a scripted model answers it, wrongly).
    let script = dir.join("s.txt");
    std::fs::write(&script, "```repl\nFINAL(\"x\")\n```").unwrap();
    json_of(autodidact(&db).args(["eval", "--suite", "integrals", "--limit", "1", "--adapter", "none", "--json", "--model"]).arg(format!("scripted:{}", script.display())));
    let runs = autodidact(&db).args(["memory", "runs", "--limit", "1"]).output().unwrap();
    let run_id = String::from_utf8_lossy(&runs.stdout).split_whitespace().next().unwrap().to_owned();
    let shown = autodidact(&db).args(["memory", "show", &run_id]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    let task = shown.lines().find_map(|l| l.strip_prefix("task")).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();

    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[training]\nnum_generations = 2\n").unwrap();
    let v = json_of(
        autodidact(&db)
            .args(["ttrl", "--task", &task, "--steps", "1", "--variants", "2", "--groups-per-step", "1", "--max-tokens", "48", "--threads", "1", "--json"])
            .args(["--policy", policy.to_str().unwrap()]),
    );
    assert_eq!(v["task"], task.as_str());
    let attempts = v["attempts"].as_array().unwrap();
    assert!(!attempts.is_empty() && attempts[0]["step"] == 0, "{v}");
    assert!(v["solved"].is_boolean());
    // One attempt per step after the first, when there was anything to train on.
    let variants = v["variants"].as_array().unwrap().len();
    assert_eq!(attempts.len(), if variants > 0 { 2 } else { 1 }, "{v}");
    // The temporary adapter is gone: nothing was registered or promoted.
    let stats = json_of(autodidact(&db).args(["memory", "stats", "--json"]));
    assert_eq!(stats["adapters"], 0, "{stats}");
}
