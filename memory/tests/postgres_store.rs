//! PostgreSQL specifics: the suite refuses to run without a server (it never skips), two
//! stores on one database write concurrently without losing acknowledged runs, and `verify`
//! works there too.

mod common;

use autodidact_memory::{Split, StoreOptions};

#[test]
fn the_test_server_is_configured() {
    let url = common::pg_url();
    assert!(
        url.starts_with("postgres://") || url.starts_with("postgresql://"),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_database() {
    let fresh = common::postgres().await;
    let mut opts = fresh.opts.clone();
    opts.index = false;
    let a = autodidact_memory::Store::open_with(opts.clone())
        .await
        .unwrap();
    let b = autodidact_memory::Store::open_with(StoreOptions { ..opts })
        .await
        .unwrap();
    let task = a
        .writer()
        .add_task(common::task("t", "p", Split::Train))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    let mut acked = Vec::new();
    let mut handles = Vec::new();
    for store in [&a, &b] {
        let w = store.writer();
        let task = task.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..20 {
                let (run, _) = w.begin_run(common::run(&task)).await.unwrap();
                for i in 0..10 {
                    let _ = run
                        .step(autodidact_memory::NewStep::new(
                            autodidact_memory::StepKind::CodeCell,
                            format!("{i}"),
                            "",
                        ))
                        .await
                        .unwrap();
                }
                run.finish(common::end(1.0))
                    .await
                    .unwrap()
                    .committed()
                    .await
                    .unwrap();
                ids.push(run.id().to_owned());
            }
            ids
        }));
    }
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    let report = b.verify(&acked).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (
            report.runs,
            report.steps,
            report.missing,
            report.acknowledged
        ),
        (40, 400, 0, 40)
    );
    let mut bogus = acked.clone();
    bogus.push("not-a-run".into());
    let report = a.verify(&bogus).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.missing, 1);
    a.close().await.unwrap();
    b.close().await.unwrap();
    fresh.drop_db().await;
}
