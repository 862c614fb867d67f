//! What the trainer and the promotion gate rely on, on SQLite and PostgreSQL: untrained
//! groups come from train tasks only and disappear once marked trained; promoting an adapter
//! retires the previous one; eval records and experiences read back.

mod common;

use std::collections::BTreeMap;

use autodidact_memory::{AdapterStatus, EvalRecord, NewAdapter, NewExperience, Split};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_adapters_and_evals() {
    for fresh in common::backends().await {
        let b = fresh.backend;
        let store = fresh.open().await;
        let w = store.writer();
        let train = w
            .add_task(common::task("math", "train me", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let eval = w
            .add_task(common::task("math", "never train me", Split::Eval))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();

        let mut groups = Vec::new();
        for task in [&train, &eval] {
            let mut ids = Vec::new();
            for r in [0.0, 1.0, 0.5] {
                let (run, _) = w.begin_run(common::run(task)).await.unwrap();
                run.finish(common::end(r))
                    .await
                    .unwrap()
                    .committed()
                    .await
                    .unwrap();
                ids.push(run.id().to_owned());
            }
            groups.push(
                w.add_group(task, None, &ids)
                    .await
                    .unwrap()
                    .committed()
                    .await
                    .unwrap(),
            );
        }

        let untrained = store.untrained_groups(100).await.unwrap();
        assert_eq!(
            untrained.len(),
            1,
            "{b}: eval groups are never offered to the trainer"
        );
        let g = &untrained[0];
        assert_eq!(g.id, groups[0]);
        assert_eq!(g.task.id, train);
        let rewards: Vec<Option<f64>> = g.runs.iter().map(|r| r.reward).collect();
        assert_eq!(
            rewards,
            vec![Some(0.0), Some(1.0), Some(0.5)],
            "{b}: members keep their order"
        );
        assert_eq!(store.stats().await.unwrap().untrained_groups, 1);

        // Train, register the adapter, mark the group trained by it.
        let a1 = w
            .register_adapter(NewAdapter {
                parent_id: None,
                path: "/tmp/a1.gguf".into(),
                sha256: "00".repeat(32),
                metrics: serde_json::json!({"loss": 0.5}),
            })
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        w.mark_trained(std::slice::from_ref(&g.id), Some(&a1))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        assert!(store.untrained_groups(100).await.unwrap().is_empty(), "{b}");
        let all = store.train_groups(100).await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].trained_ms.is_some());
        // Marking a group that does not exist is an error, not a silent no-op.
        assert!(
            w.mark_trained(&["nope".into()], None)
                .await
                .unwrap()
                .committed()
                .await
                .is_err()
        );

        // Promotion: at most one promoted adapter; the old one is retired.
        assert!(store.promoted_adapter().await.unwrap().is_none());
        w.set_adapter_status(&a1, AdapterStatus::Promoted)
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let a2 = w
            .register_adapter(NewAdapter {
                parent_id: Some(a1.clone()),
                path: "/tmp/a2.gguf".into(),
                sha256: "11".repeat(32),
                metrics: serde_json::json!({}),
            })
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        w.set_adapter_status(&a2, AdapterStatus::Promoted)
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let adapters = store.adapters().await.unwrap();
        let status: Vec<(String, AdapterStatus)> =
            adapters.iter().map(|a| (a.id.clone(), a.status)).collect();
        assert_eq!(
            status,
            vec![
                (a1.clone(), AdapterStatus::Retired),
                (a2.clone(), AdapterStatus::Promoted)
            ],
            "{b}"
        );
        assert_eq!(adapters[1].spec.parent_id.as_deref(), Some(a1.as_str()));
        assert_eq!(store.promoted_adapter().await.unwrap().unwrap().id, a2);

        // Eval records, for an adapter and for the base model.
        let rec = |adapter: Option<&str>, passed| EvalRecord {
            adapter_id: adapter.map(str::to_owned),
            suite: "arith".into(),
            n: 10,
            passed,
            pass_at_k: BTreeMap::from([(1, passed as f64 / 10.0), (8, 0.9)]),
            started_ms: 1_000,
            finished_ms: 2_000,
        };
        w.record_eval(rec(Some(&a2), 7))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        w.record_eval(rec(None, 3))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        assert_eq!(
            store.evals(Some(&a2)).await.unwrap(),
            vec![rec(Some(&a2), 7)],
            "{b}"
        );
        assert_eq!(store.evals(None).await.unwrap(), vec![rec(None, 3)], "{b}");
        assert!(store.evals(Some(&a1)).await.unwrap().is_empty());
        assert_eq!(
            store.all_evals().await.unwrap().len(),
            2,
            "every adapter's and the base model's: {b}"
        );

        // Experiences keep their source runs.
        let src = g.runs[1].id.clone();
        let e = NewExperience {
            text: "Print the result.".into(),
            source_runs: vec![src],
            score: 0.8,
        };
        let id = w
            .add_experience(e.clone())
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let got = store.experiences(10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].id.clone(), got[0].spec.clone()), (id, e));

        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}
