//! `autodidact train --online --suite toy`, two steps: rollouts with the current adapter,
//! rewards, training, export and hot-swap run end to end, and the adapter they leave is one
//! llama.cpp loads and generates with. Tiny settings keep it short; learning is measured by
//! running the command for longer, not here.

use std::process::Command;

fn autodidact() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autodidact"))
}

#[test]
fn two_online_steps_yield_a_loadable_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[training]\nnum_generations = 2\nmicro_batch = 2\nlora_rank = 4\nlora_targets = [\"q\", \"v\"]\n\
         dynamic_sampling = false\nlearning_rate = 1e-3\n",
    )
    .unwrap();
    let out = dir.path().join("adapter");
    let t = std::time::Instant::now();
    let res = autodidact()
        .args(["train", "--online", "--suite", "toy", "--steps", "2", "--groups-per-step", "1", "--max-tokens", "16"])
        .args(["--threads", "1", "--db", &url, "--policy", policy.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    println!("online train took {:.1} s", t.elapsed().as_secs_f64());
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let m = &v["metrics"];
    assert_eq!(m["mode"], "online");
    assert_eq!(m["updates"], 2, "{v}");
    assert_eq!(m["mean_reward_per_step"].as_array().unwrap().len(), 2);
    assert_eq!(v["status"], "candidate");

    let adapter = out.join("adapter.gguf");
    let res = autodidact()
        .args(["generate", "--threads", "1", "--max-tokens", "4", "--json", "--adapter", adapter.to_str().unwrap(), "What is 2 + 3?"])
        .output()
        .unwrap();
    assert!(res.status.success(), "llama.cpp could not use the adapter: {}", String::from_utf8_lossy(&res.stderr));
}
