//! `autodidact serve`'s API over HTTP, with a scripted model and the real sandbox: agents are
//! created, updated, listed and deleted and persist across a restart; a submitted run is
//! acknowledged at once, its turns, cells and sub-calls stream as server-sent events, and its
//! status, answer and transcript can be read; runs can be cancelled queued or running; every
//! error is a JSON object; `/openapi.json` documents every route.

mod serve_common;

use std::time::Duration;

use serde_json::{Value, json};
use serve_common::{Server, call, fin, scratch, script, sse, wait_final};

#[tokio::test]
async fn agents_runs_events_and_transcripts() {
    let dir = scratch("serve-api");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    // One run: a cell that prints, then a sub-call, then the answer.
    let model = script(
        &dir,
        "replies.txt",
        &["```repl\nx = 17 * 3\nprint(x)\n```".into(), "```repl\nr = llm_query('Say yes.')\nprint(len(r) > 0)\n```".into(), "yes".into(), fin("51")],
    );
    let s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1"], &[]);
    let c = reqwest::Client::new();

    let (code, a) = call(c.put(s.url("/agents/calc")).json(&json!({"tools": ["memory_search"]}))).await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["tools"], json!(["memory_search"]));
    let (code, a) = call(c.put(s.url("/agents/calc")).json(&json!({"policy": "[recursion]\nmax_iterations = 6\n", "tools": ["memory_search"]}))).await;
    assert_eq!(code, 200, "an update (a full replacement) answers 200: {a}");
    assert_eq!(a["policy"], "[recursion]\nmax_iterations = 6\n");
    let (_, list) = call(c.get(s.url("/agents"))).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);

    let (code, sub) = call(c.post(s.url("/agents/calc/runs")).json(&json!({"task": "What is 17 times 3?"}))).await;
    assert_eq!(code, 202, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    assert_eq!(sub["links"]["events"], format!("/runs/{id}/events"));

    let events = sse(&c, &s.url(&format!("/runs/{id}/events")), Duration::from_secs(120)).await;
    let steps: Vec<Value> = events.iter().filter(|(n, _)| n == "step").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"model_turn") && kinds.contains(&"code_cell") && kinds.contains(&"subcall"), "{kinds:?}");
    let cell = steps.iter().find(|s| s["kind"] == "code_cell").unwrap();
    assert!(cell["input"].as_str().unwrap().contains("17 * 3") && cell["output"].as_str().unwrap().contains("51"), "{cell}");
    // The stream opens with the state at connection time (the run may already be over).
    assert_eq!(events[0].0, "status", "{events:?}");
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["status"], "done");
    assert_eq!(done["answer"], "51");

    let run = wait_final(&c, &s, &id, Duration::from_secs(5)).await;
    assert_eq!(run["stop"], "answered");
    assert!(run["run_id"].is_string() && run["tokens"]["completion"].as_u64().unwrap() > 0, "{run}");
    let (_, t) = call(c.get(s.url(&format!("/runs/{id}/transcript")))).await;
    let root = &t["tree"][0];
    assert_eq!(root["depth"], 0);
    assert_eq!(root["steps"].as_array().unwrap().len(), steps.len(), "the transcript holds every streamed step");
    let (_, runs) = call(c.get(s.url("/runs?status=done"))).await;
    assert_eq!(runs["runs"][0]["id"], id.as_str());

    // Agents persist: a restarted server on the same store still has them and the run.
    drop(s);
    let s = Server::start(&dir, &db, &["--model", &model], &[]);
    let (code, a) = call(c.get(s.url("/agents/calc"))).await;
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools"], json!(["memory_search"]));
    let (_, run) = call(c.get(s.url(&format!("/runs/{id}")))).await;
    assert_eq!(run["answer"], "51");
    let (code, _) = call(c.delete(s.url("/agents/calc"))).await;
    assert_eq!(code, 200);
    let (code, _) = call(c.get(s.url("/agents/calc"))).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn queued_and_running_runs_can_be_cancelled() {
    let dir = scratch("serve-cancel");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    // The first run's cell loops forever: a cancel stops it long before its 10 s deadline.
    let model = script(&dir, "replies.txt", &["```repl\nwhile True:\n    pass\n```".into(), fin("late")]);
    let s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1"], &[]);
    let c = reqwest::Client::new();
    call(c.put(s.url("/agents/a")).json(&json!({}))).await;
    let (_, first) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": "sleep"}))).await;
    let (_, second) = call(c.post(s.url("/agents/a/runs")).json(&json!({"task": "wait in line"}))).await;
    let (first, second) = (first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned());
    // Cancel only once the first turn is logged: from then on the cell runs (or, cancelled
    // before it starts, is logged as interrupted). A cancel during the turn drops the turn
    // and leaves no step, which is another case.
    let t = std::time::Instant::now();
    loop {
        let (_, v) = call(c.get(s.url(&format!("/runs/{first}/transcript")))).await;
        let steps = v["tree"][0]["steps"].as_array().cloned().unwrap_or_default();
        if v["run"]["status"] == "running" && steps.iter().any(|s| s["kind"] == "model_turn") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the first run never reached its cell: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = call(c.get(s.url(&format!("/runs/{second}")))).await;
    assert_eq!(v["status"], "queued", "one run at a time: the second waits");
    let (code, v) = call(c.post(s.url(&format!("/runs/{second}/cancel")))).await;
    assert_eq!((code, v["was"].as_str()), (200, Some("queued")), "{v}");
    let (code, v) = call(c.post(s.url(&format!("/runs/{first}/cancel")))).await;
    assert_eq!((code, v["was"].as_str()), (200, Some("running")), "{v}");
    let (code, v) = call(c.post(s.url(&format!("/runs/{first}/cancel")))).await;
    assert_eq!(code, 409, "cancelling twice is a conflict: {v}");
    let v = wait_final(&c, &s, &first, Duration::from_secs(5)).await;
    assert_eq!(v["status"], "cancelled");
    assert!(v["answer"].is_null());
    // The memory run ends itself with its steps so far: the turn and the interrupted cell.
    let t = std::time::Instant::now();
    let tree = loop {
        let (_, v) = call(c.get(s.url(&format!("/runs/{first}/transcript")))).await;
        let steps = v["tree"][0]["steps"].as_array().cloned().unwrap_or_default();
        if steps.iter().any(|s| s["kind"] == "code_cell") {
            break v["tree"][0].clone();
        }
        assert!(t.elapsed() < Duration::from_secs(5), "the cancelled cell was never logged: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((tree["status"].as_str(), tree["end_reason"].as_str()), (Some("failed"), Some("cancelled")), "{tree}");
    let kinds: Vec<&str> = tree["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["model_turn", "code_cell"], "{tree}");
    assert_eq!(tree["steps"][1]["error"], "cancelled", "{tree}");
    // A cancelled run can be re-queued, and the engine and sandbox answer it.
    let (code, v) = call(c.post(s.url(&format!("/runs/{second}/requeue")))).await;
    assert_eq!(code, 202, "{v}");
    let v = wait_final(&c, &s, &second, Duration::from_secs(60)).await;
    assert_eq!((v["status"].as_str(), v["answer"].as_str()), (Some("done"), Some("late")), "{v}");
}

#[tokio::test]
async fn every_error_is_json_and_the_process_survives() {
    let dir = scratch("serve-errors");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(&dir, "replies.txt", &[fin("1")]);
    let cfg = dir.join("serve.toml");
    std::fs::write(&cfg, "max_body_bytes = 4096\nmax_context_chars = 1000\nmax_chat_tokens = 64\n").unwrap();
    let s = Server::start(&dir, &db, &["--model", &model, "--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();
    call(c.put(s.url("/agents/a")).json(&json!({}))).await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(s.url("/agents/a/runs")).header("content-type", "application/json").body("{\"task\": "), 400, "EOF"),
        (c.post(s.url("/agents/a/runs")).body("task=1"), 415, "Content-Type"),
        (c.post(s.url("/agents/a/runs")).json(&json!({"task": "x", "extra": 1})), 422, "unknown field"),
        (c.post(s.url("/agents/a/runs")).json(&json!({"task": "  "})), 400, "empty"),
        (c.post(s.url("/agents/a/runs")).json(&json!({"task": "x", "context": {"a": 1}})), 400, "list of strings"),
        (c.post(s.url("/agents/a/runs")).json(&json!({"task": "x", "context": "y".repeat(2000)})), 413, "max_context_chars"),
        (c.post(s.url("/agents/a/runs")).json(&json!({"task": "x".repeat(5000)})), 413, "max_body_bytes"),
        (c.post(s.url("/agents/nobody/runs")).json(&json!({"task": "x"})), 404, "no agent"),
        (c.put(s.url("/agents/b")).json(&json!({"policy": "[budget]\nturn_tokens = \"many\"\n"})), 400, "agent b policy:2"),
        (c.put(s.url("/agents/b")).json(&json!({"model": "/etc/passwd.gguf"})), 400, "not served here"),
        (c.put(s.url("/agents/b")).json(&json!({"tools": ["rm_rf"]})), 400, "unknown tool"),
        (c.put(s.url("/agents/bad%20name")).json(&json!({})), 400, "agent names"),
        (c.get(s.url("/runs/nope")), 404, "no run"),
        (c.get(s.url("/runs?status=weird")), 400, "unknown value"),
        (c.get(s.url("/no/such/thing")), 404, "no such endpoint"),
        (c.delete(s.url("/runs/x")), 405, "method not allowed"),
        (c.post(s.url("/v1/chat/completions")).json(&json!({"messages": []})), 400, "empty"),
        (c.post(s.url("/v1/chat/completions")).json(&json!({"messages": [{"role": "tool", "content": "x"}]})), 400, "role"),
        (c.post(s.url("/v1/chat/completions")).json(&json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 65})), 400, "max_chat_tokens"),
        (c.post(s.url("/v1/chat/completions")).json(&json!({"messages": [{"role": "user", "content": "x".repeat(1001)}]})), 413, "max_context_chars"),
        (c.post(s.url("/nightly")), 404, "not configured"),
    ];
    for (req, want, words) in cases {
        let (code, v) = call(req).await;
        let msg = v["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message: {v}"));
        assert_eq!(code, want, "{v}");
        assert_eq!(v["error"]["code"], want);
        assert!(msg.contains(words), "{msg:?} should mention {words:?}");
    }
    // Still alive and well.
    let (code, v) = call(c.get(s.url("/status"))).await;
    assert_eq!(code, 200);
    assert!(v["model"].as_str().unwrap().starts_with("scripted:"));
}

/// Every route the server answers is in the OpenAPI document, and every documented path
/// answers something other than "no such endpoint".
#[tokio::test]
async fn openapi_documents_every_route() {
    let dir = scratch("serve-openapi");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(&dir, "replies.txt", &[fin("1")]);
    let s = Server::start(&dir, &db, &["--model", &model], &[]);
    let c = reqwest::Client::new();
    let (code, spec) = call(c.get(s.url("/openapi.json"))).await;
    assert_eq!(code, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented += 1;
            let url = s.url(&path.replace("{name}", "x").replace("{id}", "x"));
            let req = c.request(method.to_uppercase().parse().unwrap(), url).header("content-type", "application/json").body("{}");
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status != 405 && !text.contains("no such endpoint"), "{method} {path} is documented but not served: {status} {text}");
        }
    }
    assert!(documented >= 17, "{documented} operations documented");
}

#[tokio::test]
async fn a_task_with_an_expected_answer_is_rewarded_and_kept_for_the_night() {
    let dir = scratch("serve-expect");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let model = script(&dir, "replies.txt", &[fin("51"), fin("51")]);
    let s = Server::start(&dir, &db, &["--model", &model, "--max-concurrent", "1"], &[]);
    let c = reqwest::Client::new();
    let (code, _) = call(c.put(s.url("/agents/calc")).json(&json!({}))).await;
    assert_eq!(code, 201);
    let (code, e) = call(c.post(s.url("/agents/calc/runs")).json(&json!({"task": "17 * 3?", "expect": {"answer": 51, "verifier": "regex"}}))).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("numeric, exact or contains"), "{e}");
    let (code, e) = call(c.post(s.url("/agents/calc/runs")).json(&json!({"task": "17 * 3?", "expect": {"answer": ""}}))).await;
    assert_eq!(code, 400, "{e}");
    let mut ids = Vec::new();
    for answer in [json!(51), json!("52")] {
        let (code, sub) = call(c.post(s.url("/agents/calc/runs")).json(&json!({"task": "What is 17 times 3?", "expect": {"answer": answer}}))).await;
        assert_eq!(code, 202, "{sub}");
        let id = sub["id"].as_str().unwrap().to_owned();
        let run = wait_final(&c, &s, &id, Duration::from_secs(120)).await;
        assert_eq!(run["answer"], "51", "{run}");
        ids.push(run["run_id"].as_str().unwrap().to_owned());
    }
    drop(s);
    // The runs carry their verifier's reward, and their tasks the answer spec a night reads.
    let store = autodidact_memory::Store::open(&db).await.unwrap();
    let runs = store.runs(10).await.unwrap();
    for (run_id, want) in ids.iter().zip([1.0, 0.0]) {
        let r = runs.iter().find(|r| &r.run.id == run_id).unwrap();
        assert_eq!(r.run.reward, Some(want), "{run_id}");
        let task = store.task(&r.run.spec.task_id).await.unwrap();
        assert_eq!(task.spec.answer_spec["verifier"], "numeric");
        assert_eq!(task.spec.split, autodidact_memory::Split::Train);
    }
    store.close().await.unwrap();
}
