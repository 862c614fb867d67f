//! `kill -9` during `autodidact memory stress` with 8 writers loses no acknowledged run, and
//! the database's integrity stays ok. Twice: the second stress resumes on the killed store.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_autodidact")
}

/// Acknowledged lines: complete lines only (a kill can cut the last one).
fn acked(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .count()
}

fn stress_then_kill(db: &str, log: &Path, at_least: usize) {
    let mut child = Command::new(bin())
        .args([
            "memory",
            "stress",
            "--db",
            db,
            "--writers",
            "8",
            "--runs",
            "1000000",
            "--ack-log",
        ])
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stress starts");
    let start = Instant::now();
    while acked(log) < at_least {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("stress exited early ({status}): {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "stress made too little progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix: no cleanup runs.
    child.wait().unwrap();
}

fn verify(db: &str, log: &Path) -> serde_json::Value {
    let out = Command::new(bin())
        .args(["memory", "verify", "--db", db, "--json", "--ack-log"])
        .arg(log)
        .output()
        .expect("verify runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "verify failed: {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[test]
fn kill_9_during_stress_loses_no_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stress.db").display());
    let log = dir.path().join("acks.log");

    stress_then_kill(&db, &log, 300);
    let first = acked(&log);
    let report = verify(&db, &log);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    let runs = report["runs"].as_u64().unwrap() as usize;
    assert!(runs >= first, "{report}: {first} runs were acknowledged");
    eprintln!("first kill: {first} acknowledged, {runs} in the store");

    stress_then_kill(&db, &log, first + 300);
    let second = acked(&log);
    let report = verify(&db, &log);
    assert_eq!(
        (report["ok"].as_bool(), report["missing"].as_u64()),
        (Some(true), Some(0)),
        "{report}"
    );
    assert!(
        report["runs"].as_u64().unwrap() as usize >= second,
        "{report}"
    );
    assert!(
        report["steps"].as_u64().unwrap() as usize >= second * 10,
        "{report}"
    );
    eprintln!("second kill: {second} acknowledged, report {report}");
}

#[test]
fn verify_reports_a_lost_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("v.db").display());
    let log = dir.path().join("acks.log");
    let ok = Command::new(bin())
        .args([
            "memory",
            "stress",
            "--db",
            &db,
            "--writers",
            "2",
            "--runs",
            "3",
            "--ack-log",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(acked(&log), 6);
    // A run the store never saw, acknowledged all the same.
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("00000000-0000-7000-8000-000000000000\n");
    std::fs::write(&log, text).unwrap();
    let out = Command::new(bin())
        .args(["memory", "verify", "--db", &db, "--json", "--ack-log"])
        .arg(&log)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"ok": false, "runs": 6, "steps": 60, "missing": 1})
    );
    assert!(!out.status.success());
}
