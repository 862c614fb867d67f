//! A run written through the batched writer reads back exactly, on SQLite and PostgreSQL:
//! task, run, steps (with log-probs), stats, the run list, and the rendered transcript. Also:
//! the schema version is recorded, and one run can be written from several tokio tasks at once.

mod common;

use autodidact_memory::{NewStep, RunStatus, Split, StepKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_back_as_written() {
    for fresh in common::backends().await {
        let store = fresh.open().await;
        assert_eq!(store.backend(), fresh.backend);
        assert_eq!(
            store.schema_version().await.unwrap(),
            4,
            "{}",
            fresh.backend
        );
        let w = store.writer();
        let task_id = w
            .add_task(common::task("arithmetic", "What is 6 * 7?", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let (run, begun) = w.begin_run(common::run(&task_id)).await.unwrap();
        let turn = NewStep {
            prompt_tokens: 50,
            completion_tokens: 9,
            latency_us: 1234,
            logprobs: Some(vec![-0.5, -0.25]),
            ..NewStep::new(StepKind::ModelTurn, "What is 6 * 7?", "```repl\n6 * 7\n```")
        };
        let cell = NewStep {
            stdout: "42\n".into(),
            error: Some("NameError: x".into()),
            ..NewStep::new(StepKind::CodeCell, "6 * 7", "42")
        };
        let a1 = run.step(turn.clone()).await.unwrap();
        let a2 = run.step(cell.clone()).await.unwrap();
        let w1 = run.warn("retrieval", "searching failed, so the prompt goes without it").await.unwrap();
        let w2 = run.warn("memory", "a step could not be logged").await.unwrap();
        let fin = run.finish(common::end(1.0)).await.unwrap();
        begun.committed().await.unwrap();
        a1.committed().await.unwrap();
        a2.committed().await.unwrap();
        w1.committed().await.unwrap();
        w2.committed().await.unwrap();
        fin.committed().await.unwrap();

        let t = store.transcript(run.id()).await.unwrap();
        let warned: Vec<(u64, &str)> = t.warnings.iter().map(|w| (w.idx, w.source.as_str())).collect();
        assert_eq!(warned, [(0, "retrieval"), (1, "memory")], "{}", fresh.backend);
        let counts = store.warning_counts(0, i64::MAX).await.unwrap();
        assert_eq!((counts.get("retrieval"), counts.get("memory")), (Some(&1), Some(&1)));
        assert_eq!(
            t.task.spec,
            common::task("arithmetic", "What is 6 * 7?", Split::Train)
        );
        assert_eq!(t.run.status, RunStatus::Answered);
        assert_eq!(t.run.reward, Some(1.0));
        assert_eq!(t.run.step_count, 2);
        assert_eq!(t.run.final_answer.as_deref(), Some("42"));
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].idx, 0);
        assert_eq!(t.steps[0].data, turn);
        assert_eq!(t.steps[1].data, cell);

        // A unique prefix finds the run too.
        let by_prefix = store.run(&run.id()[..30]).await.unwrap();
        assert_eq!(by_prefix.id, run.id());

        let text = t.render();
        assert!(
            text.contains("What is 6 * 7?") && text.contains("-- stdout\n42"),
            "{text}"
        );
        assert!(
            text.contains("NameError: x") && text.contains("final answer\n42"),
            "{text}"
        );

        let stats = store.stats().await.unwrap();
        assert_eq!(
            (stats.tasks, stats.runs, stats.steps),
            (1, 1, 2),
            "{}",
            fresh.backend
        );
        let runs = store.runs(10).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].family, "arithmetic");

        let missing = store.transcript("no-such-run").await.unwrap_err();
        assert!(
            missing.to_string().contains("no run with id no-such-run"),
            "{missing}"
        );

        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_can_be_written_from_many_tasks_at_once() {
    for fresh in common::backends().await {
        let store = fresh.open().await;
        let w = store.writer();
        let task_id = w
            .add_task(common::task("t", "p", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let (run, _) = w.begin_run(common::run(&task_id)).await.unwrap();
        let mut handles = Vec::new();
        for t in 0..8 {
            let run = run.clone();
            handles.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..25 {
                    let s = NewStep::new(StepKind::Subcall, format!("task {t} call {i}"), "ok");
                    acks.push(run.step(s).await.unwrap());
                }
                for a in acks {
                    a.committed().await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        run.finish(common::end(0.0))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let t = store.transcript(run.id()).await.unwrap();
        assert_eq!(t.steps.len(), 200, "{}", fresh.backend);
        let idx: Vec<u64> = t.steps.iter().map(|s| s.idx).collect();
        assert_eq!(idx, (0..200).collect::<Vec<_>>());
        for task in 0..8 {
            let n = t
                .steps
                .iter()
                .filter(|s| s.data.input.starts_with(&format!("task {task} ")))
                .count();
            assert_eq!(n, 25);
        }
        assert_eq!(t.run.step_count, 200);
        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_write_fails_alone() {
    for fresh in common::backends().await {
        let store = fresh.open().await;
        let w = store.writer();
        let task_id = w
            .add_task(common::task("t", "p", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        // Queued together: a run of a task that does not exist, and a good run.
        let (bad, bad_ack) = w.begin_run(common::run("no-such-task")).await.unwrap();
        let (good, good_ack) = w.begin_run(common::run(&task_id)).await.unwrap();
        assert!(bad_ack.committed().await.is_err(), "{}", fresh.backend);
        good_ack.committed().await.unwrap();
        assert!(store.run(bad.id()).await.is_err());
        assert_eq!(
            store.run(good.id()).await.unwrap().status,
            RunStatus::Running
        );
        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}
