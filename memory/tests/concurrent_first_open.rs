//! Several processes may open a store that does not exist yet at the same moment (`serve` and a
//! `nightly` started together on a fresh machine). Every open must succeed, and the schema must
//! be migrated exactly once, on SQLite and PostgreSQL.

mod common;

use autodidact_memory::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_all_migrate_cleanly() {
    for fresh in common::backends().await {
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let opts = fresh.opts.clone();
                tokio::spawn(async move { Store::open_with(opts).await })
            })
            .collect();
        let mut stores = Vec::new();
        for (i, open) in opens.into_iter().enumerate() {
            match open.await.unwrap() {
                Ok(store) => stores.push(store),
                Err(e) => panic!("{}: open {i} of 6 failed: {e}", fresh.backend),
            }
        }
        for store in &stores {
            assert_eq!(store.schema_version().await.unwrap(), 4, "{}", fresh.backend);
        }
        let first = &stores[0];
        let w = first.writer();
        let task = w
            .add_task(common::task("race", "What is 1 + 1?", autodidact_memory::Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        assert!(!task.is_empty());
        for store in stores {
            store.close().await.unwrap();
        }
        fresh.drop_db().await;
    }
}
