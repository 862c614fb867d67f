//! The harness on a scripted model (deterministic), the real sandbox and a real SQLite store:
//! pass@k, per-family scores, runs with rewards sharing one task per item, the eval record,
//! and GRPO groups for train items.

use std::sync::Arc;

use autodidact_evals::{HarnessOptions, Suite, run_suite};
use autodidact_memory::Store;
use autodidact_policies::Policy;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::rlm::{Agent, MemoryLog};
use autodidact_sandbox::{Sandbox, SandboxConfig};

fn reply(answer: &str) -> String {
    format!("```repl\nFINAL({answer:?})\n```")
}

async fn store(tag: &str) -> Arc<Store> {
    let dir = std::env::temp_dir().join(format!("autodidact-evals-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Arc::new(Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap())
}

fn agent(replies: &[String], store: &Arc<Store>, sandbox: &Sandbox) -> Arc<Agent> {
    let model = Arc::new(ScriptedModel::from_text(&replies.join("\n---\n"), "scripted"));
    let memory = MemoryLog { writer: store.writer(), store: store.clone() };
    Arc::new(Agent::new(model, sandbox.clone(), Policy::preset_default()).unwrap().with_memory(memory))
}

const SUITE: &str = r#"{"id":"a","family":"add","prompt":"What is 2 + 3?","answer":"5","verifier":"numeric"}
{"id":"b","family":"add","prompt":"What is 4 + 4?","answer":"8","verifier":"numeric"}
{"id":"c","family":"word","prompt":"Capital of France?","answer":"Paris","verifier":"exact"}
{"id":"d","family":"word","prompt":"Say yes","answer":"","verifier":"python","check":"def check(answer):\n    return answer == 'yes'"}"#;

#[tokio::test]
async fn pass_at_k_and_memory_records() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let store = store("eval").await;
    let suite = Suite::parse("mini", "mini.jsonl", SUITE).unwrap();
    // Concurrency 1 keeps the order: item a (2 samples), b, c, d.
    let replies: Vec<String> = ["5", "6", "7", "9", "paris", "Paris", "no", "yes"].iter().map(|a| reply(a)).collect();
    let opts = HarnessOptions { k: 2, concurrency: 1, adapter_id: None, writer: Some(store.writer()), sandbox: sandbox.clone(), on_sample: None, lessons: false, existing_tasks: Default::default() };
    let report = run_suite(agent(&replies, &store, &sandbox), &suite, &opts).await.unwrap();
    store.flush().await.unwrap();

    // Passes per item: a 1/2, b 0/2, c 2/2, d 1/2.
    assert_eq!(report.n, 4);
    assert!((report.pass_at_1 - (0.5 + 0.0 + 1.0 + 0.5) / 4.0).abs() < 1e-12, "{}", report.pass_at_1);
    assert!((report.pass_at_k - 3.0 / 4.0).abs() < 1e-12, "{}", report.pass_at_k);
    assert!((report.by_family["add"].pass_at_1 - 0.25).abs() < 1e-12);
    assert!((report.by_family["word"].pass_at_k - 1.0).abs() < 1e-12);
    let summary = report.summary();
    for key in ["suite", "n", "pass_at_1", "pass_at_k", "k", "mean_tokens", "mean_latency_ms", "by_family"] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
    assert!(report.host_errors().is_empty(), "{:?}", report.host_errors());

    // Every sample is a stored run with its reward; samples of an item share one task.
    for item in &report.items {
        let task = item.task_id.as_ref().unwrap();
        for s in &item.samples {
            let run = store.run(s.run_id.as_ref().unwrap()).await.unwrap();
            assert_eq!(&run.spec.task_id, task);
            assert_eq!(run.reward, Some(if s.passed { 1.0 } else { 0.0 }));
        }
    }
    let evals = store.evals(None).await.unwrap();
    let e = evals.iter().find(|e| e.suite == "mini").expect("the eval record is stored");
    assert_eq!((e.n, e.passed), (4, 3));
    assert!((e.pass_at_k[&2] - 0.75).abs() < 1e-12);
    // Eval items make no training groups.
    assert!(store.untrained_groups(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn train_items_with_several_samples_become_groups() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let store = store("groups").await;
    let text = r#"{"id":"t","family":"add","prompt":"What is 1 + 1?","answer":"2","verifier":"numeric","split":"train"}"#;
    let suite = Suite::parse("train", "train.jsonl", text).unwrap();
    let mut replies: Vec<String> = ["2", "3", "2"].iter().map(|a| reply(a)).collect();
    replies.push("Compute the sum in the REPL before answering.".into());
    let opts = HarnessOptions { k: 3, concurrency: 1, adapter_id: None, writer: Some(store.writer()), sandbox: sandbox.clone(), on_sample: None, lessons: true, existing_tasks: Default::default() };
    let report = run_suite(agent(&replies, &store, &sandbox), &suite, &opts).await.unwrap();
    store.flush().await.unwrap();
    let groups = store.untrained_groups(10).await.unwrap();
    assert_eq!(groups.len(), 1);
    let rewards: Vec<Option<f64>> = groups[0].runs.iter().map(|r| r.reward).collect();
    assert_eq!(rewards, vec![Some(1.0), Some(0.0), Some(1.0)]);
    assert_eq!(groups[0].task.id, *report.items[0].task_id.as_ref().unwrap());
    // The mixed group taught one lesson (training-free GRPO), stored with its source runs.
    let lessons = store.experiences(10).await.unwrap();
    assert_eq!(lessons.len(), 1);
    assert!(lessons[0].spec.text.contains("Compute the sum in the REPL"), "{}", lessons[0].spec.text);
    assert_eq!(lessons[0].spec.source_runs.len(), 3);
}
