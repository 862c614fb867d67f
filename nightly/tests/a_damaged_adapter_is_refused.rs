//! A promoted adapter whose file no longer matches the SHA-256 it was registered with (a bit
//! flipped on disk, a truncated copy, a file replaced) is refused with both digests before any
//! model sees it; the intact file passes. Real SQLite store.

use std::sync::Arc;

use autodidact_memory::{AdapterStatus, NewAdapter, Store};
use autodidact_runtime::model::LanguageModel;
use autodidact_runtime::model::scripted::ScriptedModel;

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_adapter_that_changed_on_disk_is_refused() {
    let dir = std::env::temp_dir().join(format!("autodidact-damaged-adapter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap();
    let file = dir.join("adapter.gguf");
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let sha = autodidact_nightly::adapters::sha256_file(&file).unwrap();
    let new = NewAdapter { parent_id: None, path: file.display().to_string(), sha256: sha.clone(), metrics: serde_json::json!({}) };
    let id = store.writer().register_adapter(new).await.unwrap().committed().await.unwrap();
    store.writer().set_adapter_status(&id, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    let promoted = store.promoted_adapter().await.unwrap().unwrap();
    autodidact_nightly::adapters::verify(&promoted).expect("the intact file passes");

    // One bit flipped on disk.
    let mut flipped = bytes.clone();
    flipped[40_000] ^= 0x04;
    std::fs::write(&file, &flipped).unwrap();
    let e = autodidact_nightly::adapters::verify(&promoted).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains(&id) && e.contains("SHA-256") && e.contains(&sha) && e.contains("rollback"), "{e}");

    // `--adapter promoted` refuses it before loading: the scripted model would accept anything.
    let model: Arc<dyn LanguageModel> = Arc::new(ScriptedModel::from_text("x", "test"));
    let e = autodidact_nightly::adapters::apply("promoted", &model, &store, |_| {}).await.unwrap_err().to_string();
    assert!(e.contains("SHA-256"), "{e}");

    // Restored, it passes again (the memo of the bad verdict is not reused).
    std::fs::write(&file, &bytes).unwrap();
    autodidact_nightly::adapters::verify(&promoted).expect("the restored file passes");
    let _ = std::fs::remove_dir_all(&dir);
}
