//! The trajectory viewer, end to end in headless Chromium (Debian's `chromium`): a run
//! submitted through the API appears on `/`, and its page renders the transcript (model
//! turns, the code cell with its output, the sub-call, tokens and timings). A screenshot of
//! the run page is kept beside the store.

mod serve_common;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use serve_common::{Server, call, fin, scratch, script, wait_final};

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--virtual-time-budget=3000"])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot start chromium ({e}); run scripts/bootstrap.sh, which installs Debian's chromium"))
}

#[tokio::test]
async fn a_submitted_run_appears_and_its_transcript_renders() {
    let dir = scratch("serve-viewer");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(
        &dir,
        "replies.txt",
        &["```repl\ntotal = sum(range(1, 11))\nprint('total is', total)\n```".into(), "```repl\nnote = llm_query('Is 55 odd?')\n```".into(), "It is odd.".into(), fin("55")],
    );
    let s = Server::start(&dir, &db, &["--model", &model], &[]);
    let c = reqwest::Client::new();
    call(c.put(s.url("/agents/viewer-test")).json(&json!({}))).await;
    let (code, sub) = call(c.post(s.url("/agents/viewer-test/runs")).json(&json!({"task": "Add the numbers from 1 to 10."}))).await;
    assert_eq!(code, 202);
    let id = sub["id"].as_str().unwrap().to_owned();
    let run = wait_final(&c, &s, &id, Duration::from_secs(120)).await;
    assert_eq!(run["answer"], "55", "{run}");

    let index = chromium(&["--dump-dom"], &s.url("/"));
    assert!(index.status.success(), "chromium failed: {}", String::from_utf8_lossy(&index.stderr));
    let dom = String::from_utf8_lossy(&index.stdout);
    assert!(dom.contains("viewer-test"), "the agent is listed");
    assert!(dom.contains(&format!("/view/runs/{id}")), "the run is listed with a link");
    assert!(dom.contains("Add the numbers from 1 to 10."));
    // The script turned the epoch milliseconds into a date, so the page's JS ran.
    let ms = run["created_ms"].as_i64().unwrap();
    assert!(!dom.contains(&format!(">{ms}<")), "timestamps were formatted by the page's JS");
    assert!(dom.contains(&format!(">{}-", 1970 + ms / 31_557_600_000)), "timestamps are dates");

    let page = s.url(&format!("/view/runs/{id}"));
    let out = chromium(&["--dump-dom"], &page);
    assert!(out.status.success());
    let dom = String::from_utf8_lossy(&out.stdout);
    for needle in ["root run", "model_turn #0", "code_cell", "sum(range(1, 11))", "total is 55", "subcall", "Is 55 odd?", "It is odd.", "tokens", " ms", "55"] {
        assert!(dom.contains(needle), "the run page lacks {needle:?}");
    }
    assert!(dom.contains("status-done"), "the run's status is shown");
    let shot = dir.join("run.png");
    let out = chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1100,1600", "--hide-scrollbars"], &page);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot is not blank");
}
