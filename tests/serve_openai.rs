//! The OpenAI-compatible endpoint on the real SmolLM2 model (llama.cpp in the server), used by
//! two independent clients: Python's `openai` package from the bootstrap venv (plain and
//! streaming, which must agree under greedy decoding) and the project's own `openai` backend.
//! Then the scheduled nightly: while a (stand-in) nightly command runs, the endpoint keeps
//! answering; when it exits, the adapter promoted in memory is hot-swapped into the served
//! model, and the endpoint answers with it.

mod serve_common;

use std::process::Command;
use std::time::{Duration, Instant};

use autodidact_memory::{AdapterStatus, NewAdapter, Store};
use autodidact_runtime::model::openai::{OpenAiConfig, OpenAiModel};
use autodidact_runtime::model::{LanguageModel, Message, Sampling};
use autodidact_trainer::{DType, LlamaConfig, LoraAdapter, LoraConfig, Rng};
use serde_json::{Value, json};
use serve_common::{Server, call, scratch};

const CLIENT: &str = r#"
import json, sys
import openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
msgs = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}]
r = c.chat.completions.create(model="autodidact", messages=msgs, max_tokens=24, temperature=0)
parts, finish, usage = [], None, None
for ch in c.chat.completions.create(model="autodidact", messages=msgs, max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True}):
    if ch.usage is not None:
        usage = ch.usage.completion_tokens
    for choice in ch.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
print(json.dumps({"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason, "tokens": r.usage.completion_tokens,
                  "stream_text": "".join(parts), "stream_finish": finish, "stream_tokens": usage, "chunks": len(parts)}))
"#;

fn python() -> std::path::PathBuf {
    let home = std::env::var_os("AUTODIDACT_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/autodidact"));
    let py = home.join("venv/bin/python");
    let ok = Command::new(&py).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    assert!(ok, "{} has no `openai` package: run scripts/bootstrap.sh", py.display());
    py
}

/// A LoRA adapter for SmolLM2 with B = 0 (it changes nothing, so answers stay comparable).
fn zero_adapter(path: &std::path::Path) {
    let c = LlamaConfig { n_layer: 30, n_embd: 576, n_ff: 1536, n_head: 9, n_head_kv: 3, vocab: 49152, ..LlamaConfig::tiny() };
    let lora = LoraAdapter::init(LoraConfig::default(), c.n_layer, |t| c.shape_of(t), DType::F32, &mut Rng::new(7)).unwrap();
    lora.export_gguf(path, "llama").unwrap();
}

async fn chat(c: &reqwest::Client, s: &Server) -> Value {
    let (code, v) = call(c.post(s.url("/v1/chat/completions")).json(&json!({"model": "anything", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8}))).await;
    assert_eq!(code, 200, "{v}");
    v
}

#[tokio::test]
async fn openai_clients_and_the_nightly_hot_swap_on_smollm2() {
    let dir = scratch("serve-openai");
    let db = format!("sqlite://{}", dir.join("m.db").display());
    let cfg = dir.join("serve.toml");
    let marker = dir.join("nightly-ran");
    std::fs::write(&cfg, format!("model = \"smollm2\"\n[schedule]\nnightly = \"0 3 * * *\"\ncommand = [\"sh\", \"-c\", \"sleep 3; echo ok > {}\"]\n", marker.display())).unwrap();
    let s = Server::start(&dir, &db, &["--config", cfg.to_str().unwrap()], &[]);
    let c = reqwest::Client::new();

    // Python's openai package, plain and streaming.
    let out = Command::new(python()).args(["-c", CLIENT, &s.base]).output().unwrap();
    assert!(out.status.success(), "python client failed: {}\n{}", String::from_utf8_lossy(&out.stderr), s.log());
    let py: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = py["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{py}");
    assert_eq!(py["stream_text"], py["text"], "streaming and plain agree under greedy decoding");
    assert_eq!(py["stream_finish"], py["finish"]);
    assert_eq!(py["stream_tokens"], py["tokens"]);
    assert!(py["tokens"].as_u64().unwrap() > 0 && py["tokens"].as_u64().unwrap() <= 24);
    assert!(py["chunks"].as_u64().unwrap() > 1, "the answer was streamed in several chunks: {py}");

    // The project's own openai backend as the client.
    let ours = OpenAiModel::new(&s.base, "autodidact", OpenAiConfig::default()).unwrap();
    let msgs = [Message::system("You are a helpful assistant."), Message::user("What is the capital of France?")];
    let got = ours.chat(&msgs, &Sampling::greedy(24)).await.unwrap();
    assert_eq!(got.text, text, "the project's client gets the same greedy answer");
    assert_eq!(got.token_logprobs.len(), got.usage.completion_tokens, "log-probs came back, one per token");

    // A promoted adapter appears in memory; the nightly runs; serving goes on meanwhile.
    let adapter_path = dir.join("adapter.gguf");
    zero_adapter(&adapter_path);
    let store = Store::open(&db).await.unwrap();
    let w = store.writer();
    let sha256 = autodidact_nightly::adapters::sha256_file(&adapter_path).unwrap();
    let id = w.register_adapter(NewAdapter { parent_id: None, path: adapter_path.display().to_string(), sha256, metrics: json!({}) }).await.unwrap().committed().await.unwrap();
    w.set_adapter_status(&id, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    let before = chat(&c, &s).await;
    let (code, v) = call(c.post(s.url("/nightly"))).await;
    assert_eq!(code, 202, "{v}");
    let (code, _) = call(c.post(s.url("/nightly"))).await;
    assert_eq!(code, 409, "one nightly at a time");
    let t = Instant::now();
    let mut served_during = 0;
    loop {
        let (_, st) = call(c.get(s.url("/status"))).await;
        if st["nightly"]["running"] == false {
            assert_eq!(st["nightly"]["last"]["exit_code"], 0, "{st}");
            assert_eq!(st["nightly"]["last"]["swap"]["ok"], true, "{st}");
            assert_eq!(st["adapter"]["id"], id.as_str(), "{st}");
            break;
        }
        assert_eq!(chat(&c, &s).await["choices"][0]["finish_reason"].is_string(), true);
        served_during += 1;
        assert!(t.elapsed() < Duration::from_secs(60), "the nightly did not finish: {st}");
    }
    assert!(served_during > 0, "requests were served while the nightly ran");
    assert!(marker.exists(), "the nightly command ran");
    let after = chat(&c, &s).await;
    assert_eq!(after["choices"][0]["message"], before["choices"][0]["message"], "a zero adapter changes nothing");
    let (_, models) = call(c.get(s.url("/v1/models"))).await;
    assert_eq!(models["data"][0]["adapter"], id.as_str());
    assert!(s.log().contains(&format!("now serving adapter {id}")), "{}", s.log());
}
