//! `kill -9` anywhere in a night. A tiny night is killed at random moments (each attempt picks
//! a random stage and is killed 0–4 s after the night reaches it, so kills land mid-rollout,
//! mid-training, mid-eval and mid-report), started again each time, then left to finish; a
//! night that ends before its kill is followed by the next one. Afterwards: every night
//! finished, once, with every stage recorded once and one gate decision; every adapter row names an existing file whose SHA-256
//! matches, with at most one live row per file; `memory verify` (PRAGMA integrity_check) ok.
//!
//! `make test` kills it twice; `make kill-night` (or NIGHT_KILLS=20) runs the long version.
//! NIGHT_KILL_SEED picks the moments (printed, so a failure can be replayed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autodidact_memory::{AdapterStatus, Store};

const POLICY: &str = include_str!("data/tiny-night.toml");

const STAGES: [&str; 9] = ["gather", "curriculum", "rollouts", "train", "eval_promoted", "eval_candidate", "gate", "consolidate", "report"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Stages the open night has recorded (0 before it starts).
async fn recorded(url: &str) -> usize {
    let store = Store::open(url).await.unwrap();
    let n = match store.open_night().await.unwrap() {
        Some(n) => store.night_stages(&n.id).await.unwrap().len(),
        None => 0,
    };
    store.close().await.unwrap();
    n
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
    let mut nights_finished = 0;
    let mut attempt = 0;
    while killed_in.len() < kills as usize {
        attempt += 1;
        assert!(attempt < 10 * kills + 10, "the kills never landed: {killed_in:?}");
        let mut finished_early = false;
        // A stage to kill in, then a random moment inside it: kills cover every stage, and
        // the night still gets through the stages before it.
        let target = (next(&mut rng) % STAGES.len() as u64) as usize;
        let extra = Duration::from_millis(next(&mut rng) % 4_000);
        let mut child = night().spawn().unwrap();
        let mut reached: Option<Instant> = None;
        let mut stage = "start";
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "attempt {attempt} failed on its own: {status}");
                finished_early = true;
                break;
            }
            if let Some(at) = reached {
                if at.elapsed() >= extra {
                    break;
                }
            } else {
                let done = recorded(&url).await;
                stage = STAGES.get(done).copied().unwrap_or("end");
                if done >= target {
                    reached = Some(Instant::now());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if finished_early {
            nights_finished += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let done = recorded(&url).await;
        killed_in.push(format!("mid-{} (aimed at {stage} +{:.1}s)", STAGES.get(done).copied().unwrap_or("end"), extra.as_secs_f64()));
    }
    println!("killed: {killed_in:?}");
    // The last killed night is resumed to its end.
    let done = night().stderr(Stdio::piped()).output().unwrap();
    assert!(done.status.success(), "the night did not finish after the kills: {}", String::from_utf8_lossy(&done.stderr));
    nights_finished += 1;
    println!("{} kills survived over {nights_finished} nights in {:.0} s", killed_in.len(), started.elapsed().as_secs_f64());

    let store = Store::open(&url).await.unwrap();
    let nights = store.nights(1000).await.unwrap();
    // A night started twice would leave its first start running forever.
    assert!(nights.len() >= nights_finished, "{nights:?}");
    for n in &nights {
        assert_eq!(n.status.as_str(), "finished", "{n:?}");
        let summary = n.summary.clone().unwrap();
        assert!(summary["decision"].is_string(), "one gate decision: {summary}");
        // Stages are listed by start time; a gate and a consolidate that start in the same
        // millisecond may come in either order, so they are compared in the loop's order.
        let mut stages: Vec<String> = store.night_stages(&n.id).await.unwrap().into_iter().map(|s| s.stage).collect();
        stages.sort_by_key(|s| STAGES.iter().position(|x| x == s).unwrap_or(usize::MAX));
        assert_eq!(stages, STAGES, "every stage recorded once");
    }
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
