//! `autodidact train` end to end on a temporary SQLite memory: it trains on the untrained
//! groups of train tasks (never the eval task's), exports an adapter llama.cpp loads, registers
//! it as a candidate with its learning curve in the metrics, and marks the groups trained.

use std::process::Command;

use autodidact_memory::{AdapterStatus, NewRun, NewStep, NewTask, RunEnd, RunStatus, Split, StepKind, Store};

fn task(prompt: &str, split: Split) -> NewTask {
    NewTask {
        family: "arithmetic".into(),
        prompt: prompt.into(),
        context_ref: None,
        answer_spec: serde_json::json!({"answer": "7"}),
        split,
        parent_id: None,
        difficulty: None,
        source: "test".into(),
    }
}

/// Writes one group of runs of `task_id` whose replies and rewards are given.
async fn group(store: &Store, task_id: &str, replies: &[(&str, f64)]) -> String {
    let w = store.writer();
    let mut ids = Vec::new();
    for (reply, reward) in replies {
        let run = NewRun {
            task_id: task_id.into(),
            agent: "test".into(),
            model_id: "smollm2".into(),
            adapter_id: None,
            policy_hash: "p".into(),
        };
        let (h, _) = w.begin_run(run).await.unwrap();
        h.step(NewStep::new(StepKind::ModelTurn, "prompt", *reply)).await.unwrap().committed().await.unwrap();
        let end = RunEnd {
            status: RunStatus::Answered,
            end_reason: None,
            final_answer: Some("7".into()),
            reward: Some(*reward),
            prompt_tokens: 10,
            completion_tokens: 10,
        };
        h.finish(end).await.unwrap().committed().await.unwrap();
        ids.push(h.id().to_owned());
    }
    w.add_group(task_id, None, &ids).await.unwrap().committed().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_uses_untrained_train_groups_and_registers_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::open(&url).await.unwrap();
    let w = store.writer();
    let t1 = w.add_task(task("What is 3 + 4?", Split::Train)).await.unwrap().committed().await.unwrap();
    let t2 = w.add_task(task("What is 2 * 5?", Split::Train)).await.unwrap().committed().await.unwrap();
    let te = w.add_task(task("What is 9 - 1?", Split::Eval)).await.unwrap().committed().await.unwrap();
    group(&store, &t1, &[("<answer>7</answer>", 1.0), ("<answer>8</answer>", 0.0)]).await;
    group(&store, &t2, &[("```repl\n2 * 5\n```", 1.0), ("It is twelve.", 0.0)]).await;
    let eval_group = group(&store, &te, &[("<answer>8</answer>", 1.0), ("<answer>9</answer>", 0.0)]).await;
    store.close().await.unwrap();

    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[training]\nlora_rank = 4\nmicro_batch = 4\nnum_generations = 2\nlearning_rate = 1e-3\n").unwrap();
    let out = dir.path().join("adapter");
    let t = std::time::Instant::now();
    let res = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["train", "--db", &url, "--policy", policy.to_str().unwrap(), "--steps", "2", "--groups-per-step", "1"])
        .args(["--out", out.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    println!("train took {:.1} s", t.elapsed().as_secs_f64());
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let m = &v["metrics"];
    assert_eq!(m["groups_trained"], 2, "{v}");
    let curve = m["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 2, "one point per update: {v}");
    for p in curve {
        assert!(p["loss"].as_f64().unwrap().is_finite() && p["skipped"].is_null(), "{p}");
        assert!(p["tokens"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["mean_reward"], 0.5, "{p}");
    }
    assert!(out.join("adapter.gguf").is_file() && out.join("checkpoint.gguf").is_file());

    let store = Store::open(&url).await.unwrap();
    let adapters = store.adapters().await.unwrap();
    assert_eq!(adapters.len(), 1);
    assert_eq!(adapters[0].id, v["adapter_id"].as_str().unwrap());
    assert_eq!(adapters[0].status, AdapterStatus::Candidate);
    assert_eq!(adapters[0].spec.metrics["curve"].as_array().unwrap().len(), 2);
    assert!(store.untrained_groups(10).await.unwrap().is_empty(), "both train groups are marked trained");
    let all = store.train_groups(10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|g| g.trained_ms.is_some() && g.id != eval_group));
    store.close().await.unwrap();

    // Nothing left to train on is an error that says so.
    let res = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["train", "--db", &url, "--policy", policy.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("no untrained groups"), "{}", String::from_utf8_lossy(&res.stderr));
}
