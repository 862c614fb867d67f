//! `autodidact run` and Ctrl-C: the running cell (a loop that never ends) stops, the process
//! exits with 130, and the run is stored as cancelled with its turn and the interrupted cell.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_cancels_a_run_whose_cell_loops_forever() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let replies = dir.path().join("replies.txt");
    std::fs::write(&replies, "```repl\nwhile True:\n    pass\n```\n").unwrap();
    // The cell's own deadline is far away: only the cancel can stop it in time.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[sandbox]\ndeadline_ms = 120000\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["run", "--json", "--model", &format!("scripted:{}", replies.display()), "--policy", policy.to_str().unwrap(), "loop until stopped"])
        .env("AUTODIDACT_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The scripted model replies at once; a few seconds put the run well inside its cell.
    std::thread::sleep(Duration::from_secs(6));
    let sig = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sig.success());
    let sent = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(5), "the process took {took:?} to end after Ctrl-C");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(v["status"], "cancelled", "{v}");
    let run_id = v["run_id"].as_str().unwrap();
    let shown = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["memory", "show", run_id, "--db", &db]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("cancelled"), "{shown}");
    assert!(shown.contains("while True"), "the interrupted cell is stored: {shown}");
}
