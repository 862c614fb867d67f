//! A damaged SQLite file gives a clear error naming the file, never a panic; and a database
//! whose pages are damaged after it was written fails `verify`.

use autodidact_memory::{Error, Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();
    let err = match Store::open(&format!("sqlite://{}", path.display())).await {
        Ok(_) => panic!("a garbage file opened as a store"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("corrupt or is not a SQLite database"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_pages_fail_verification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let url = format!("sqlite://{}", path.display());
    {
        let mut opts = StoreOptions::new(&url);
        opts.index = false;
        let store = Store::open_with(opts).await.unwrap();
        let w = store.writer();
        let mut task = autodidact_memory::NewTask {
            family: "f".into(),
            prompt: "p".repeat(3000),
            context_ref: None,
            answer_spec: serde_json::json!(null),
            split: autodidact_memory::Split::Train,
            parent_id: None,
            difficulty: None,
            source: "s".into(),
        };
        for i in 0..200 {
            task.prompt = format!("{i} {}", "p".repeat(3000));
            let _ = w.add_task(task.clone()).await.unwrap();
        }
        w.flush().await.unwrap();
        // Fold the WAL into the main file so that the damage below hits real pages.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&sqlx_pool(&url).await)
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 200 * 1024,
        "the file holds the rows: {}",
        bytes.len()
    );
    // Scribble over interior pages (not the header), as a bad disk would.
    for b in &mut bytes[40 * 4096..44 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();

    let mut opts = StoreOptions::new(&url);
    opts.index = false;
    match Store::open_with(opts).await {
        // Either opening notices the damage...
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e:?}"),
        // ...or the integrity check does.
        Ok(store) => {
            let report = store.verify(&[]).await;
            match report {
                Ok(r) => {
                    assert!(!r.ok, "a damaged database verified ok: {r:?}");
                    assert_ne!(r.integrity, "ok");
                }
                Err(e) => assert!(
                    matches!(e, Error::Corrupt { .. } | Error::Query { .. }),
                    "{e:?}"
                ),
            }
        }
    }
}

async fn sqlx_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}
