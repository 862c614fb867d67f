//! The exports: `trl-grpo` gives one line per train group with prompt, completions and
//! rewards lined up; `sft` gives chat messages of successful train runs only; `rlm-log` gives a
//! metadata line and one line per iteration in the reference logger's shape.

mod common;

use autodidact_memory::{ExportFormat, NewStep, RunEnd, RunStatus, Split, StepKind, Store};
use serde_json::Value;

async fn export(store: &Store, format: ExportFormat) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut calls = 0;
    let n = store
        .export(
            format,
            &mut buf,
            std::path::Path::new("out.jsonl"),
            &mut |_, _| calls += 1,
        )
        .await
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.len() as u64, n);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_have_the_documented_shapes() {
    for fresh in common::backends().await {
        let b = fresh.backend;
        let store = fresh.open().await;
        let w = store.writer();
        let train = w
            .add_task(common::task("arith", "What is 6*7?", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let eval = w
            .add_task(common::task("arith", "Held out", Split::Eval))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (i, reward) in [1.0, 0.0].into_iter().enumerate() {
            let (run, _) = w.begin_run(common::run(&train)).await.unwrap();
            let _ = run
                .step(NewStep::new(
                    StepKind::ModelTurn,
                    "What is 6*7?",
                    format!("```repl\n6*{}\n```", 7 - i),
                ))
                .await
                .unwrap();
            let _ = run
                .step(NewStep::new(StepKind::Subcall, "is 42 right?", "yes"))
                .await
                .unwrap();
            let cell = NewStep {
                stdout: format!("{}\n", 6 * (7 - i)),
                ..NewStep::new(StepKind::CodeCell, format!("6*{}", 7 - i), "")
            };
            let _ = run.step(cell).await.unwrap();
            let _ = run
                .step(NewStep::new(StepKind::ModelTurn, "42", "FINAL(42)"))
                .await
                .unwrap();
            run.finish(common::end(reward))
                .await
                .unwrap()
                .committed()
                .await
                .unwrap();
            ids.push(run.id().to_owned());
        }
        w.add_group(&train, None, &ids)
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let (er, _) = w.begin_run(common::run(&eval)).await.unwrap();
        let _ = er
            .step(NewStep::new(StepKind::ModelTurn, "Held out", "x"))
            .await
            .unwrap();
        er.finish(common::end(1.0))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        w.add_group(&eval, None, &[er.id().to_owned()])
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let (failed, _) = w.begin_run(common::run(&train)).await.unwrap();
        let end = RunEnd {
            status: RunStatus::BudgetExhausted,
            reward: None,
            final_answer: None,
            ..common::end(0.0)
        };
        failed.finish(end).await.unwrap().committed().await.unwrap();

        let grpo = export(&store, ExportFormat::TrlGrpo).await;
        assert_eq!(
            grpo.len(),
            1,
            "{b}: eval groups are not exported for training"
        );
        let g = &grpo[0];
        assert_eq!(
            g["prompt"],
            serde_json::json!([{"role": "user", "content": "What is 6*7?"}])
        );
        assert_eq!(g["rewards"], serde_json::json!([1.0, 0.0]));
        assert_eq!(g["completions"][0], "```repl\n6*7\n```\nFINAL(42)");
        assert_eq!(g["completions"].as_array().unwrap().len(), 2);
        assert_eq!(g["reward_model"]["ground_truth"]["answer"], "42");
        assert_eq!(g["ability"], "arith");
        assert_eq!(g["extra_info"]["task_id"], train.as_str());

        let sft = export(&store, ExportFormat::Sft).await;
        assert_eq!(sft.len(), 1, "{b}: only the successful train run");
        assert_eq!(sft[0]["run_id"], ids[0].as_str());
        let roles: Vec<&str> = sft[0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        assert_eq!(sft[0]["messages"][2]["content"], "42\n");

        let log = export(&store, ExportFormat::RlmLog).await;
        let first_run: Vec<&Value> = log
            .iter()
            .filter(|l| l["run_id"] == ids[0].as_str())
            .collect();
        assert_eq!(first_run.len(), 3, "{b}: metadata and two iterations");
        assert_eq!(first_run[0]["type"], "metadata");
        assert_eq!(first_run[0]["root_model"], "smollm2-135m");
        let it = first_run[1];
        assert_eq!(
            (it["type"].as_str(), it["iteration"].as_u64()),
            (Some("iteration"), Some(1))
        );
        assert_eq!(it["code_blocks"][0]["code"], "6*7");
        assert_eq!(it["code_blocks"][0]["result"]["stdout"], "42\n");
        assert_eq!(
            it["code_blocks"][0]["result"]["rlm_calls"][0]["prompt"],
            "is 42 right?"
        );
        assert!(it["final_answer"].is_null());
        assert_eq!(first_run[2]["final_answer"], "42");
        assert!(first_run[2]["timestamp"].as_str().unwrap().ends_with('Z'));

        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}

#[test]
fn timestamps_are_iso8601() {
    assert_eq!(autodidact_memory::iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        autodidact_memory::iso8601(951_782_400_123),
        "2000-02-29T00:00:00.123Z"
    );
    assert_eq!(
        autodidact_memory::iso8601(1_795_000_000_000),
        "2026-11-18T11:06:40.000Z"
    );
}
