//! Security of `autodidact serve`: a non-loopback bind without AUTODIDACT_TOKEN is refused at
//! start-up; with a token, every route (API, OpenAI endpoint, viewer) answers 401 in JSON
//! without the right `Authorization: Bearer` header.

mod serve_common;

use std::process::Command;

use serde_json::json;
use serve_common::{Server, call, fin, scratch, script};

#[test]
fn non_loopback_bind_needs_a_token() {
    let dir = scratch("serve-auth-refused");
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["serve", "--bind", "0.0.0.0:0", "--model", &script(&dir, "r.txt", &[fin("1")])])
        .env("AUTODIDACT_DB", format!("sqlite://{}", dir.join("m.db").display()))
        .env_remove("AUTODIDACT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUTODIDACT_TOKEN") && err.contains("0.0.0.0"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["serve", "--bind", "0.0.0.0:0", "--model", &script(&dir, "r.txt", &[fin("1")])])
        .env("AUTODIDACT_DB", format!("sqlite://{}", dir.join("m.db").display()))
        .env("AUTODIDACT_TOKEN", "short")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
}

#[tokio::test]
async fn requests_without_the_token_get_401() {
    let dir = scratch("serve-auth");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let token = "correct-horse-battery-staple";
    let s = Server::start(&dir, &db, &["--bind", "0.0.0.0:0", "--model", &script(&dir, "r.txt", &[fin("1")])], &[("AUTODIDACT_TOKEN", token)]);
    let base = s.base.replace("0.0.0.0", "127.0.0.1");
    let c = reqwest::Client::new();
    for path in ["/status", "/agents", "/openapi.json", "/", "/v1/models"] {
        let (code, v) = call(c.get(format!("{base}{path}"))).await;
        assert_eq!(code, 401, "{path}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("bearer token"));
        let (code, _) = call(c.get(format!("{base}{path}")).bearer_auth("correct-horse-battery-stapl")).await;
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, v) = call(c.post(format!("{base}/v1/chat/completions")).json(&json!({"messages": [{"role": "user", "content": "hi"}]}))).await;
    assert_eq!(code, 401, "{v}");
    let (code, v) = call(c.get(format!("{base}/status")).bearer_auth(token)).await;
    assert_eq!(code, 200, "{v}");
    let r = c.get(format!("{base}/")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("<h2>Agents</h2>"));
}
