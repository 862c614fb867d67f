//! A night killed with SIGKILL resumes where it stopped: the stages it had recorded are not
//! run again (their records and the rollout runs are unchanged), and the resumed night goes
//! on from the first unrecorded stage. Real model, real sandbox, real SQLite; a tiny plan.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autodidact_memory::Store;

const POLICY: &str = include_str!("data/tiny-night.toml");

async fn stages(url: &str) -> Vec<(String, i64)> {
    let store = Store::open(url).await.unwrap();
    let out = match store.open_night().await.unwrap() {
        Some(n) => store.night_stages(&n.id).await.unwrap().into_iter().map(|s| (s.stage, s.finished_ms)).collect(),
        None => Vec::new(),
    };
    store.close().await.unwrap();
    out
}

async fn rollout_runs(url: &str) -> usize {
    let store = Store::open(url).await.unwrap();
    let n = store.runs(10_000).await.unwrap().iter().filter(|r| r.run.spec.agent == "nightly-rollouts").count();
    store.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_night_resumes_without_repeating_a_stage() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let policy = dir.path().join("tiny.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let args = |stop: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
        let out = dir.path().to_str().unwrap();
        c.args(["nightly", "--quick", "--threads", "1", "--db", &url, "--policy", policy.to_str().unwrap(), "--out", out, "--stop-after", stop]);
        c
    };
    // Create the store first: two processes migrating a new SQLite file at once can collide.
    Store::open(&url).await.unwrap().close().await.unwrap();
    // Start a night and kill it once the rollouts are recorded (it is then training).
    let log = dir.path().join("first.log");
    let mut child = args("train").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(900), "the rollouts never finished");
        assert!(child.try_wait().unwrap().is_none(), "nightly exited before it was killed: {}", std::fs::read_to_string(&log).unwrap_or_default());
        if stages(&url).await.iter().any(|(s, _)| s == "rollouts") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = stages(&url).await;
    let names: Vec<&str> = before.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["gather", "curriculum", "rollouts"], "killed while training");
    let runs = rollout_runs(&url).await;
    assert!(runs >= 4, "two tasks, two attempts each: {runs} rollout runs");

    let out = args("train").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the resumed night failed: {stderr}");
    assert!(stderr.contains("resuming night"), "{stderr}");
    assert!(!stderr.contains("stage rollouts"), "a recorded stage ran again: {stderr}");
    let after = stages(&url).await;
    assert_eq!(&after[..3], &before[..], "recorded stages are untouched");
    assert_eq!(after.len(), 4);
    assert_eq!(after[3].0, "train");
    assert_eq!(rollout_runs(&url).await, runs, "no rollout ran again");
}
