//! The cron-style schedule starts the nightly command inside the server on time, runs go on
//! meanwhile, and when it exits the server reads the promoted adapter and tries the hot swap
//! (the scripted backend cannot load adapters, which the status reports without failing).

mod serve_common;

use std::time::{Duration, Instant};

use autodidact_memory::{AdapterStatus, NewAdapter, Store};
use serde_json::json;
use serve_common::{Server, call, fin, scratch, script, wait_final};

#[tokio::test]
async fn the_schedule_starts_the_nightly_and_then_the_swap() {
    let dir = scratch("serve-schedule");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let marker = dir.join("ran");
    let cfg = dir.join("serve.toml");
    std::fs::write(&cfg, format!("[schedule]\nnightly = \"@every 2s\"\ncommand = [\"sh\", \"-c\", \"echo $$ >> {}; sleep 1\"]\n", marker.display())).unwrap();
    // A promoted adapter exists before the nightly ends; the server tries to swap it in.
    let store = Store::open(&db).await.unwrap();
    let w = store.writer();
    // A real file registered with its digest (a served adapter is checked against it); the
    // scripted model then refuses adapters, which is what this test swaps into.
    let adapter = dir.join("a.gguf");
    std::fs::write(&adapter, b"not loaded: the scripted model has no LoRA").unwrap();
    let sha256 = autodidact_nightly::adapters::sha256_file(&adapter).unwrap();
    let id = w.register_adapter(NewAdapter { parent_id: None, path: adapter.display().to_string(), sha256, metrics: json!({}) }).await.unwrap().committed().await.unwrap();
    w.set_adapter_status(&id, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    drop(store);
    let model = script(&dir, "r.txt", &[fin("still serving")]);
    let s = Server::start(&dir, &db, &["--model", &model, "--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    assert!(s.log().contains("promoted adapter could not be loaded"), "the start-up swap was tried: {}", s.log());
    let (_, st) = call(c.get(s.url("/status"))).await;
    assert_eq!(st["nightly"]["schedule"], "@every 2s");
    assert!(st["nightly"]["next_ms"].as_i64().unwrap() > 0, "{st}");

    call(c.put(s.url("/agents/a")).json(&json!({}))).await;
    let t = Instant::now();
    loop {
        let (_, st) = call(c.get(s.url("/status"))).await;
        if st["nightly"]["running"] == true {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the schedule never fired: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A run submitted while the nightly runs still completes.
    let (_, sub) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": "during the nightly"}))).await;
    let run = wait_final(&c, &s, sub["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(run["answer"], "still serving");
    let t = Instant::now();
    let last = loop {
        let (_, st) = call(c.get(s.url("/status"))).await;
        if !st["nightly"]["last"].is_null() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the nightly never finished: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["nightly"]["last"]["exit_code"], 0, "{last}");
    assert_eq!(last["nightly"]["last"]["swap"]["ok"], false, "{last}");
    assert!(last["nightly"]["last"]["swap"]["error"].as_str().unwrap().contains("LoRA adapters"), "{last}");
    assert!(last["adapter"]["error"].as_str().unwrap().contains("scripted"), "{last}");
    assert!(std::fs::read_to_string(&marker).unwrap().lines().count() >= 1);
}
