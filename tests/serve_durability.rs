//! No acknowledged submission is lost when `autodidact serve` is killed with `kill -9`: after
//! a restart every acknowledged run id is there, the run that was in flight is marked
//! `interrupted` and can be re-queued, and every run then finishes. SIGTERM drains: running
//! runs finish before the process exits 0, and queued ones wait for the next start.

mod serve_common;

use std::time::Duration;

use serde_json::json;
use serve_common::{Server, call, scratch, script, wait_final};

/// Every run sleeps a little in the sandbox, then answers.
fn slow_replies(n: usize, secs: f64) -> Vec<String> {
    (0..n).map(|i| format!("```repl\nimport time\ntime.sleep({secs})\nFINAL('ok {i}')\n```")).collect()
}

#[tokio::test]
async fn acknowledged_runs_survive_kill_9() {
    let dir = scratch("serve-kill");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(&dir, "replies.txt", &slow_replies(40, 1.5));
    let mut s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1"], &[]);
    let c = reqwest::Client::new();
    call(c.put(s.url("/agents/a")).json(&json!({}))).await;
    let mut acked = Vec::new();
    for i in 0..8 {
        let (code, v) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": format!("task {i}")}))).await;
        assert_eq!(code, 202, "{v}");
        acked.push(v["id"].as_str().unwrap().to_owned());
    }
    // Wait until the first run is in flight, then kill the server without warning.
    let t = std::time::Instant::now();
    loop {
        let (_, v) = call(c.get(s.url(&format!("/runs/{}", acked[0])))).await;
        if v["status"] == "running" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the first run never started: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal("-9");
    s.wait_exit(Duration::from_secs(10));

    let s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "2"], &[]);
    let (_, first) = call(c.get(s.url(&format!("/runs/{}", acked[0])))).await;
    assert_eq!(first["status"], "interrupted", "{first}");
    assert!(first["error"].as_str().unwrap().contains("in flight"), "{first}");
    for id in &acked[1..] {
        let (code, v) = call(c.get(s.url(&format!("/runs/{id}")))).await;
        assert_eq!(code, 200, "acknowledged run {id} was lost: {v}");
    }
    let (code, v) = call(c.post(s.url(&format!("/runs/{}/requeue", acked[0])))).await;
    assert_eq!(code, 202, "{v}");
    for id in &acked {
        let v = wait_final(&c, &s, id, Duration::from_secs(120)).await;
        assert_eq!(v["status"], "done", "{v}");
        assert!(v["answer"].as_str().unwrap().starts_with("ok "), "{v}");
    }
    let (_, again) = call(c.get(s.url(&format!("/runs/{}", acked[0])))).await;
    assert_eq!(again["attempts"], 2, "the re-queued run ran a second time: {again}");
}

#[tokio::test]
async fn sigterm_drains_running_runs_and_keeps_the_queue() {
    let dir = scratch("serve-term");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(&dir, "replies.txt", &slow_replies(20, 2.0));
    let cfg = dir.join("serve.toml");
    std::fs::write(&cfg, "drain_seconds = 60\n").unwrap();
    let mut s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1", "--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    call(c.put(s.url("/agents/a")).json(&json!({}))).await;
    let (_, a) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": "one"}))).await;
    let (_, b) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": "two"}))).await;
    let (a, b) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let t = std::time::Instant::now();
    loop {
        let (_, v) = call(c.get(s.url(&format!("/runs/{a}")))).await;
        if v["status"] == "running" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.signal("-TERM");
    // While draining, new submissions are refused with a JSON 503.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Ok(r) = c.post(s.url("/agents/a/runs")).json(&json!({"task": "late"})).send().await {
        assert_eq!(r.status().as_u16(), 503);
    }
    assert_eq!(s.wait_exit(Duration::from_secs(60)), Some(0), "{}", s.log());
    assert!(s.log().contains("draining"), "{}", s.log());

    let s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1"], &[]);
    let (_, va) = call(c.get(s.url(&format!("/runs/{a}")))).await;
    assert_eq!(va["status"], "done", "the running run finished during the drain: {va}");
    let vb = wait_final(&c, &s, &b, Duration::from_secs(60)).await;
    assert_eq!(vb["status"], "done", "the queued run ran after the restart: {vb}");
    assert_eq!(vb["attempts"], 1);
}
