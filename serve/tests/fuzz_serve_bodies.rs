//! Property tests of the service's request bodies, through the real router in-process
//! (`autodidact_serve::router` over a started server's state, called with `tower`'s `oneshot`):
//! `PUT /agents/{name}` (model, policy text, tools), `POST /agents/{name}/runs` (task,
//! context, expected answer) and `POST /v1/chat/completions`, with any JSON, valid bodies with
//! keys removed, retyped or added, raw bytes, bodies over `max_body_bytes` and any content
//! type. Every answer is a 2xx or a 4xx; an error is a JSON object with its message and code;
//! never a panic or a 500. The served model is an in-process stand-in that answers at once.
//! `PROPTEST_CASES` scales the run (`make fuzz`).

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;

use std::sync::{Arc, OnceLock};

use autodidact_runtime::model::{Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage};
use autodidact_serve::{Config, Running};
use axum::body::Body;
use axum::http::{Request, header};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// The served model: every reply answers at once through the REPL.
struct Instant;

#[async_trait::async_trait]
impl LanguageModel for Instant {
    fn describe(&self) -> String {
        "fuzz:instant".into()
    }

    fn backend_name(&self) -> &'static str {
        "scripted"
    }

    async fn chat_group(&self, messages: &[Message], n: usize, sampling: &Sampling) -> autodidact_runtime::Result<Vec<Completion>> {
        sampling.validate()?;
        let text = "```repl\nFINAL(\"1\")\n```".to_owned();
        let prompt: usize = messages.iter().map(|m| m.content.len() / 4).sum();
        let one = Completion {
            text,
            tokens: Vec::new(),
            token_logprobs: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage { prompt_tokens: prompt, completion_tokens: 5 },
            timings: Timings::default(),
        };
        Ok(vec![one; n])
    }
}

/// The largest body the test server accepts, small so that bodies over it are cheap.
const MAX_BODY: usize = 8192;

/// The most `max_tokens` a chat completion may ask for.
const MAX_CHAT_TOKENS: u64 = 64;

struct Served {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _running: Running,
}

/// This process's folder under `$TMPDIR/autodidact-fuzz-serve`, after removing those of
/// processes that have ended (the store of a long run holds tens of megabytes).
fn scratch() -> std::path::PathBuf {
    let root = std::env::temp_dir().join("autodidact-fuzz-serve");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !std::path::Path::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One server for every test of this file: its own store, the stand-in model, one agent
/// named `fuzz`.
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = scratch();
        let config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            db: format!("sqlite://{}", dir.join("memory.db").display()),
            model: "fuzz".into(),
            max_concurrent_runs: 1,
            max_queued: usize::MAX,
            max_body_bytes: MAX_BODY,
            max_context_chars: 2000,
            max_chat_tokens: MAX_CHAT_TOKENS as usize,
            ..Config::default()
        };
        config.check().unwrap();
        let running = rt.block_on(autodidact_serve::start(config, Some(Arc::new(Instant)))).unwrap();
        let router = autodidact_serve::router(running.app.clone());
        let served = Served { rt, router, _running: running };
        let (status, body) = served.call(&Req::json("PUT", "/agents/fuzz", json!({"tools": ["memory_search"]})));
        assert!(status == 200 || status == 201, "{status} {body}");
        served
    })
}


/// One request.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    uri: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Req {
    fn json(method: &'static str, uri: &str, v: Value) -> Req {
        Req { method, uri: uri.into(), content_type: Some("application/json".into()), body: v.to_string().into_bytes() }
    }
}

impl Served {
    /// Sends `req` through the router; returns the status and the body as text.
    fn call(&self, req: &Req) -> (u16, String) {
        let mut b = Request::builder().method(req.method).uri(&req.uri);
        if let Some(ct) = &req.content_type {
            b = b.header(header::CONTENT_TYPE, ct.as_str());
        }
        let request = b.body(Body::from(req.body.clone())).unwrap();
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(request).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await.unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    /// Sends `req` and checks the answer: a 2xx or 4xx; an error is the JSON error object
    /// with its code; a JSON success parses; an event stream ends with `[DONE]`.
    fn check(&self, req: &Req) -> Result<u16, TestCaseError> {
        let (status, body) = self.call(req);
        prop_assert!((200..500).contains(&status), "{} {} answered {}: {}", req.method, req.uri, status, body);
        if status >= 300 {
            let v: Value = serde_json::from_str(&body).map_err(|e| TestCaseError::fail(format!("error {status} is not JSON ({e}): {body}")))?;
            prop_assert_eq!(v["error"]["code"].as_u64(), Some(u64::from(status)), "{}", body);
            prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", body);
        } else if body.starts_with("data:") || body.starts_with(':') {
            prop_assert!(body.trim_end().ends_with("data: [DONE]"), "the stream did not end with [DONE]: {}", body);
        } else {
            prop_assert!(serde_json::from_str::<Value>(&body).is_ok(), "a {} success is not JSON: {}", status, body);
        }
        Ok(status)
    }
}

/// A JSON value of any type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(8), Just(9), Just(64), Just(65)].prop_map(Value::from),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(1e300), Just(-1e300), Just(2.5), any::<f64>().prop_filter("finite", |x| x.is_finite())]
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop_oneof![Just(""), Just(" "), Just("user"), Just("text"), Just("numeric"), Just("memory_search")].prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// How a valid body is spoiled: a key removed, given a value of any type, or a key added.
#[derive(Debug, Clone)]
enum Spoil {
    Remove(Index),
    Set(Index, Value),
    Add(String, Value),
}

fn spoil() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        any::<Index>().prop_map(Spoil::Remove),
        (any::<Index>(), json_value()).prop_map(|(i, v)| Spoil::Set(i, v)),
        ("[a-z_]{1,10}", json_value()).prop_map(|(k, v)| Spoil::Add(k, v)),
    ]
}

fn apply(mut body: Map<String, Value>, keys: &[&str], spoils: &[Spoil]) -> Value {
    for s in spoils {
        match s {
            Spoil::Remove(i) => {
                body.remove(keys[i.index(keys.len())]);
            }
            Spoil::Set(i, v) => {
                body.insert(keys[i.index(keys.len())].to_owned(), v.clone());
            }
            Spoil::Add(k, v) => {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(body)
}

/// A body for a route: any JSON, a valid body (maybe spoiled), raw bytes, or one too large.
fn body(valid: BoxedStrategy<Map<String, Value>>, keys: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        3 => valid.clone().prop_map(|v| Value::Object(v).to_string().into_bytes()),
        4 => (valid.clone(), prop::collection::vec(spoil(), 1..4)).prop_map(move |(v, s)| apply(v, keys, &s).to_string().into_bytes()),
        1 => (valid.clone(), any::<Index>()).prop_map(|(v, cut)| {
            let text = Value::Object(v).to_string().into_bytes();
            text[..cut.index(text.len())].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (valid, MAX_BODY - 200..MAX_BODY + 200).prop_map(|(mut v, n)| {
            v.insert("pad".into(), Value::String("x".repeat(n)));
            Value::Object(v).to_string().into_bytes()
        }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(None),
        1 => prop::sample::select(vec!["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/jsonx", "*/*"])
            .prop_map(|s| Some(s.to_owned())),
    ]
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// An agent name: mostly the server's agent, else a valid or invalid one.
fn agent_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("fuzz".to_owned()),
        2 => "[A-Za-z0-9._-]{1,70}",
        1 => any::<String>().prop_filter("a path segment", |s| !s.is_empty()).prop_map(|s| encode(&s)),
    ]
}

/// Text of a policy: the presets, broken ones, or any text.
fn policy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        2 => Just(autodidact_policies::EVAL_PRESET.to_owned()),
        1 => Just(autodidact_policies::DEFAULT_PRESET.to_owned()),
        1 => Just("[budget]\nturn_tokens = 0\n".to_owned()),
        1 => Just("[sandbox]\nmemory_mb = 9000\n".to_owned()),
        1 => Just(format!("[budget]\ncontinuations = {}", "[".repeat(5000))),
        1 => any::<String>(),
    ]
}

const AGENT_KEYS: &[&str] = &["model", "policy", "tools"];

fn agent_body() -> BoxedStrategy<Map<String, Value>> {
    let model = prop_oneof![
        6 => Just(""),
        1 => prop::sample::select(vec!["fuzz", "smollm2", "scripted:/nonexistent", "openai:http://127.0.0.1:1#m"]),
    ]
    .prop_map(str::to_owned);
    let tools = prop::collection::vec(prop_oneof![6 => Just("memory_search".to_owned()), 1 => any::<String>()], 0..3);
    (model, policy_text(), tools)
        .prop_map(|(model, policy, tools)| {
            let v = json!({"model": model, "policy": policy, "tools": tools});
            v.as_object().unwrap().clone()
        })
        .boxed()
}

#[test]
fn agent_bodies_are_answered_in_json() {
    let s = served();
    let input = (prop_oneof![4 => Just("PUT"), 1 => Just("POST")], agent_name(), content_type(), body(agent_body(), AGENT_KEYS));
    fuzz_common::check("serve_agent_bodies", 1000, input, |(method, name, content_type, body)| {
        let status = s.check(&Req { method, uri: format!("/agents/{name}"), content_type, body })?;
        prop_assert!(method == "PUT" || status == 405, "POST /agents/{{name}} answered {}", status);
        Ok(())
    });
}

const SUBMIT_KEYS: &[&str] = &["task", "context", "expect"];

fn submit_body() -> BoxedStrategy<Map<String, Value>> {
    let context = prop_oneof![
        3 => Just(Value::Null),
        2 => any::<String>().prop_map(Value::String),
        2 => prop::collection::vec(any::<String>(), 0..4).prop_map(|v| json!(v)),
        1 => "x{1990,2010}".prop_map(Value::String),
        1 => json_value(),
    ];
    let answer = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        3 => any::<i64>().prop_map(Value::from),
        1 => json_value(),
    ];
    let verifier = prop_oneof![
        6 => prop::sample::select(vec!["numeric", "exact", "contains"]),
        1 => prop::sample::select(vec!["python", "regex", ""]),
    ]
    .prop_map(str::to_owned);
    let expect = prop::option::of((answer, prop::option::of(verifier)).prop_map(|(answer, verifier)| {
        let mut e = json!({"answer": answer});
        if let Some(v) = verifier {
            e["verifier"] = json!(v);
        }
        e
    }));
    (prop_oneof![any::<String>(), "[a-z ]{1,30}"], context, expect)
        .prop_map(|(task, context, expect)| {
            let mut v = json!({"task": task, "context": context});
            if let Some(e) = expect {
                v["expect"] = e;
            }
            v.as_object().unwrap().clone()
        })
        .boxed()
}

#[test]
fn run_submissions_are_answered_in_json() {
    let s = served();
    let input = (agent_name(), content_type(), body(submit_body(), SUBMIT_KEYS));
    fuzz_common::check("serve_run_bodies", 1000, input, |(name, content_type, body)| {
        s.check(&Req { method: "POST", uri: format!("/agents/{name}/runs"), content_type, body })?;
        Ok(())
    });
}

const CHAT_KEYS: &[&str] = &["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "stop", "n", "logprobs", "top_logprobs", "user"];

fn chat_body() -> BoxedStrategy<Map<String, Value>> {
    let role = prop_oneof![
        6 => prop::sample::select(vec!["system", "developer", "user", "assistant"]),
        1 => prop::sample::select(vec!["tool", "", "User"]),
    ]
    .prop_map(str::to_owned);
    let content = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        3 => "[a-z ?]{1,20}".prop_map(Value::String),
        1 => prop::collection::vec(any::<String>(), 0..3).prop_map(|parts| json!(parts.iter().map(|t| json!({"type": "text", "text": t})).collect::<Vec<_>>())),
        1 => json_value(),
    ];
    let message = (role, content).prop_map(|(role, content)| json!({"role": role, "content": content}));
    // Mostly valid values (`number(lo, hi)` draws from lo..=hi, and sometimes from the edges
    // beyond); the spoiled bodies bring the wrong types.
    let number = |lo: u64, hi: u64| {
        prop_oneof![4 => Just(Value::Null), 6 => (lo..=hi).prop_map(Value::from), 1 => prop::sample::select(vec![0, hi + 1, u64::MAX]).prop_map(Value::from), 1 => json_value()]
    };
    let float = |lo: f64, hi: f64| {
        prop_oneof![4 => Just(Value::Null), 6 => (lo..hi).prop_map(Value::from), 1 => prop::sample::select(vec![-1.0, hi, 1e300]).prop_map(Value::from), 1 => json_value()]
    };
    let stop = prop_oneof![
        4 => Just(Value::Null),
        1 => any::<String>().prop_map(Value::String),
        1 => prop::collection::vec(any::<String>(), 0..3).prop_map(|v| json!(v)),
    ];
    (
        prop::collection::vec(message, 1..4),
        (any::<bool>(), any::<bool>(), number(1, MAX_CHAT_TOKENS), number(1, MAX_CHAT_TOKENS), float(0.0, 2.0), float(0.01, 1.0)),
        (number(1, 100), float(0.0, 0.99), number(0, u64::MAX - 1), stop, number(1, 8), any::<bool>()),
    )
        .prop_map(|(messages, (stream, usage, max_tokens, max_completion, temperature, top_p), (top_k, min_p, seed, stop, n, logprobs))| {
            let v = json!({
                "model": "autodidact", "messages": messages, "stream": stream, "stream_options": {"include_usage": usage},
                "max_tokens": max_tokens, "max_completion_tokens": max_completion, "temperature": temperature, "top_p": top_p,
                "top_k": top_k, "min_p": min_p, "seed": seed, "stop": stop, "n": n, "logprobs": logprobs,
            });
            v.as_object().unwrap().clone()
        })
        .boxed()
}

#[test]
fn chat_completion_bodies_are_answered_in_json() {
    let s = served();
    let input = (content_type(), body(chat_body(), CHAT_KEYS));
    fuzz_common::check("serve_chat_bodies", 1000, input, |(content_type, body)| {
        s.check(&Req { method: "POST", uri: "/v1/chat/completions".into(), content_type, body })?;
        Ok(())
    });
}

/// Percent-encoded bytes of any kind, invalid UTF-8 included.
fn raw_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9._-]{1,20}",
        1 => prop::collection::vec(any::<u8>(), 1..12).prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        1 => any::<String>().prop_filter("a path segment", |s| !s.is_empty()).prop_map(|s| encode(&s)),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![4 => prop::sample::select(vec!["limit", "status", "agent"]).prop_map(str::to_owned), 1 => "[a-z]{1,6}"];
    let value = prop_oneof![
        (0u64..2000).prop_map(|n| n.to_string()),
        prop::sample::select(vec!["queued", "running", "done", "failed", "cancelled", "interrupted", "-1", "1e3", "18446744073709551616", ""]).prop_map(str::to_owned),
        raw_segment(),
    ];
    prop::collection::vec((key, value), 0..4).prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

#[test]
fn paths_and_queries_are_answered_in_json() {
    let s = served();
    let route = prop_oneof![
        query().prop_map(|q| ("GET", format!("/runs?{q}"))),
        (agent_name(), query()).prop_map(|(n, q)| ("GET", format!("/agents/{n}/runs?{q}"))),
        raw_segment().prop_map(|n| ("GET", format!("/agents/{n}"))),
        raw_segment().prop_map(|n| ("DELETE", format!("/agents/{n}-gone"))),
        raw_segment().prop_map(|id| ("GET", format!("/runs/{id}"))),
        raw_segment().prop_map(|id| ("GET", format!("/runs/{id}/transcript"))),
        raw_segment().prop_map(|id| ("POST", format!("/runs/{id}/cancel"))),
        raw_segment().prop_map(|id| ("POST", format!("/runs/{id}/requeue"))),
        raw_segment().prop_map(|p| ("GET", format!("/{p}"))),
    ];
    fuzz_common::check("serve_paths_and_queries", 1000, route, |(method, uri)| {
        s.check(&Req { method, uri, content_type: None, body: Vec::new() })?;
        Ok(())
    });
}

/// The well-formed bodies the spoiled ones start from are accepted (so the fuzzing above
/// reaches past the first check).
#[test]
fn valid_bodies_are_accepted() {
    let s = served();
    let agent = Req::json("PUT", "/agents/fuzz-valid", json!({"model": "", "policy": autodidact_policies::EVAL_PRESET, "tools": ["memory_search"]}));
    assert_eq!(s.check(&agent).unwrap(), 201);
    let run = Req::json("POST", "/agents/fuzz/runs", json!({"task": "What is 2+2?", "context": ["a", "b"], "expect": {"answer": 4}}));
    assert_eq!(s.check(&run).unwrap(), 202);
    let chat = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "n": 2});
    assert_eq!(s.check(&Req::json("POST", "/v1/chat/completions", chat.clone())).unwrap(), 200);
    let mut stream = chat;
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    assert_eq!(s.check(&Req::json("POST", "/v1/chat/completions", stream)).unwrap(), 200);
}
