//! `kill -9` anywhere in a night. A tiny night is killed at random moments (each attempt lives
//! a random 2–60 s, so kills land mid-rollout, mid-training, mid-eval and mid-report), started
//! again each time, then left to finish. Afterwards: one finished night with every stage
//! recorded once and one gate decision; every adapter row names an existing file whose SHA-256
//! matches, with at most one live row per file; `memory verify` (PRAGMA integrity_check) ok.
//!
//! `make test` kills it twice; `make kill-night` (or NIGHT_KILLS=20) runs the long version.
//! NIGHT_KILL_SEED picks the moments (printed, so a failure can be replayed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autodidact_memory::{AdapterStatus, Store};

const POLICY: &str = r#"
[nightly]
suites = ["toy"]
eval_items = 2
train_tasks = 2
curriculum_tasks = 0
group_size = 2
rollout_turns = 1
sft_steps = 1
train_steps = 1
"#;

const STAGES: [&str; 9] = ["gather", "curriculum", "rollouts", "train", "eval_promoted", "eval_candidate", "gate", "consolidate", "report"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small xorshift generator: the kill moments are reproducible from the seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_killed_at_random_moments_finishes_once_with_nothing_duplicated() {
    let kills = env_u64("NIGHT_KILLS", 2);
    let seed = env_u64("NIGHT_KILL_SEED", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    println!("NIGHT_KILLS={kills} NIGHT_KILL_SEED={seed}");
    let mut rng = seed | 1;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let policy = dir.path().join("tiny.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = dir.path().join("out");
    let night = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
        c.args(["nightly", "--quick", "--threads", "1", "--db", &url, "--policy", policy.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    Store::open(&url).await.unwrap().close().await.unwrap();
    let started = Instant::now();
    let mut killed_in = Vec::new();
    let mut finished_early = false;
    for k in 0..kills {
        let life = Duration::from_millis(2_000 + next(&mut rng) % 58_000);
        let mut child = night().spawn().unwrap();
        let t = Instant::now();
        while t.elapsed() < life && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "attempt {k} failed on its own: {status}");
            finished_early = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = Store::open(&url).await.unwrap();
        let stage = match store.open_night().await.unwrap() {
            Some(n) => STAGES.get(store.night_stages(&n.id).await.unwrap().len()).copied().unwrap_or("end"),
            None => "start",
        };
        store.close().await.unwrap();
        killed_in.push(format!("{:.1}s in {stage}", life.as_secs_f64()));
    }
    println!("killed: {killed_in:?}");
    if !finished_early {
        let done = night().stderr(Stdio::piped()).output().unwrap();
        assert!(done.status.success(), "the night did not finish after the kills: {}", String::from_utf8_lossy(&done.stderr));
    }
    println!("{} kills survived in {:.0} s", killed_in.len(), started.elapsed().as_secs_f64());

    let store = Store::open(&url).await.unwrap();
    let nights = store.nights(100).await.unwrap();
    assert_eq!(nights.len(), 1, "one night, resumed, not several: {nights:?}");
    assert_eq!(nights[0].status.as_str(), "finished");
    let summary = nights[0].summary.clone().unwrap();
    assert!(summary["decision"].is_string(), "one gate decision: {summary}");
    let stages: Vec<String> = store.night_stages(&nights[0].id).await.unwrap().into_iter().map(|s| s.stage).collect();
    assert_eq!(stages, STAGES, "every stage recorded once, in order");
    let adapters = store.adapters().await.unwrap();
    let mut live_paths = std::collections::HashSet::new();
    for a in &adapters {
        if a.status == AdapterStatus::Retired {
            continue;
        }
        let path = std::path::Path::new(&a.spec.path);
        assert!(path.is_file(), "adapter {} names a missing file {}", a.id, a.spec.path);
        assert_eq!(autodidact_nightly::adapters::sha256_file(path).unwrap(), a.spec.sha256, "adapter {} does not describe its file", a.id);
        assert!(live_paths.insert(a.spec.path.clone()), "two live adapter rows for {}", a.spec.path);
    }
    store.close().await.unwrap();
    let verify = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["memory", "verify", "--json", "--db", &url]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&verify.stderr)));
    assert_eq!(v["ok"], true, "{v}");
}
