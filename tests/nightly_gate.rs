//! The nightly's `gate` stage on fixed eval records: a night whose earlier stages are already
//! recorded in the store (a registered candidate, per-item eval results under the promoted
//! adapter and the candidate) is resumed up to its gate. A candidate that improves the target
//! suite without regressing the other is promoted; one that improves the target but regresses
//! the other suite is rejected. The decision and its evidence are stored with the night.

use std::process::Command;

use autodidact_memory::{AdapterStatus, NewAdapter, Store};
use serde_json::{Value, json};

fn items(prefix: &str, passed: &[bool]) -> Value {
    json!({
        "pass_at_1": passed.iter().filter(|p| **p).count() as f64 / passed.len() as f64,
        "n": passed.len(),
        "items": passed.iter().enumerate().map(|(i, p)| json!([format!("{prefix}-{i}"), if *p { 1.0 } else { 0.0 }])).collect::<Vec<_>>(),
    })
}

fn plan() -> Value {
    json!({
        "quick": true, "seed": 0, "target": "toy", "suites": ["toy", "arith"], "eval_items": 30,
        "eval_turns": 2, "train_tasks": 2, "curriculum_tasks": 0, "group_size": 2, "rollout_turns": 1,
        "hints": true, "sft_warm_start": true, "sft_steps": 1, "sft_learning_rate": 0.0005,
        "train_steps": 1, "budget_s": null, "policy": null
    })
}

/// Records a night up to `eval_candidate` and runs `nightly --stop-after gate`; returns the
/// candidate's status and the gate's output.
async fn run_gate(target_after: &[bool], other_after: &[bool]) -> (AdapterStatus, Value) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::open(&url).await.unwrap();
    let w = store.writer();
    let candidate = NewAdapter { parent_id: None, path: "/nonexistent/candidate.gguf".into(), sha256: "0".repeat(64), metrics: json!({"generation": 1}) };
    let candidate = w.register_adapter(candidate).await.unwrap().committed().await.unwrap();
    let night = w.begin_night(plan()).await.unwrap().committed().await.unwrap();
    let target_before = [false; 30];
    let mut other_before = [false; 30];
    other_before[..15].iter_mut().for_each(|p| *p = true);
    let stages = [
        ("gather", json!({"promoted_id": null, "promoted_path": null, "generation": 0, "failed_train_tasks": []})),
        ("curriculum", json!({"suite": ""})),
        ("rollouts", json!({"groups": []})),
        ("train", json!({"candidate_id": candidate, "candidate_path": "/nonexistent/candidate.gguf", "signals": {}})),
        ("eval_promoted", json!({"adapter_id": null, "suites": {"toy": items("toy", &target_before), "arith": items("arith", &other_before)}})),
        ("eval_candidate", json!({"adapter_id": candidate, "suites": {"toy": items("toy", target_after), "arith": items("arith", other_after)}})),
    ];
    for (stage, output) in stages {
        w.record_stage(&night, stage, 0, output).await.unwrap().committed().await.unwrap();
    }
    store.close().await.unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["nightly", "--db", &url, "--stop-after", "gate", "--threads", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "nightly failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming night"), "it must resume the recorded night");

    let store = Store::open(&url).await.unwrap();
    let status = store.adapters().await.unwrap().into_iter().find(|a| a.id == candidate).unwrap().status;
    let stages = store.night_stages(&night).await.unwrap();
    assert_eq!(stages.len(), 7, "six recorded stages plus the gate, none repeated");
    let gate = stages.into_iter().find(|s| s.stage == "gate").expect("the gate stage is recorded").output;
    assert_eq!(store.open_night().await.unwrap().map(|n| n.id), Some(night), "stopped after the gate, the night stays open");
    store.close().await.unwrap();
    (status, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_promotes_an_improvement_and_rejects_a_regression() {
    let mut improved = [false; 30];
    improved[..12].iter_mut().for_each(|p| *p = true);
    let mut other_same = [false; 30];
    other_same[..15].iter_mut().for_each(|p| *p = true);
    let (status, gate) = run_gate(&improved, &other_same).await;
    assert_eq!(status, AdapterStatus::Promoted, "gate: {gate}");
    assert_eq!(gate["decision"], "promoted");
    let evidence = gate["evidence"].as_array().unwrap();
    assert_eq!(evidence[0]["suite"], "toy", "the target suite's evidence comes first");
    assert_eq!(evidence[0]["n"], 30);
    assert!((evidence[0]["delta"].as_f64().unwrap() - 0.4).abs() < 1e-9);
    assert!(evidence[0]["delta_low"].as_f64().unwrap() > 0.0);

    let mut other_worse = [false; 30];
    other_worse[..10].iter_mut().for_each(|p| *p = true);
    let (status, gate) = run_gate(&improved, &other_worse).await;
    assert_eq!(status, AdapterStatus::Rejected, "gate: {gate}");
    assert_eq!(gate["decision"], "rejected");
    assert!(gate["reason"].as_str().unwrap().contains("arith"), "the reason names the regressed suite: {gate}");
}
