//! The OpenAI-compatible endpoint: `POST /v1/chat/completions` and `GET /v1/models`.
//!
//! It serves the served model with the adapter currently promoted, so any OpenAI client uses
//! the self-improving model. Requests are checked before they reach the model: known roles
//! only, the messages' size under `max_context_chars`, `max_tokens` under `max_chat_tokens`,
//! `n` at most 8. With `stream: true` the answer comes as `chat.completion.chunk` server-sent
//! events ending in `data: [DONE]`; the `LanguageModel` trait returns whole completions, so
//! the chunks are cut from the finished text (keep-alive comments flow while it is generated).

use std::convert::Infallible;
use std::sync::Arc;

use autodidact_runtime::model::{Completion, Message, Role, Sampling};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, App, now_ms};

/// The model name this endpoint answers to (any requested name is accepted and echoed).
pub const MODEL_ID: &str = "autodidact";

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/chat/completions", post(chat)).route("/v1/models", get(models))
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let adapter = app.adapter.lock().await.active.as_ref().map(|a| a.0.clone());
    Json(json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": app.started_ms / 1000, "owned_by": "autodidact", "root": app.served.describe(), "adapter": adapter}]}))
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct StopField(#[serde(deserialize_with = "one_or_many")] Vec<String>);

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match S::deserialize(d)? {
        S::One(s) => vec![s],
        S::Many(v) => v,
    })
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    min_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<StopField>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    logprobs: Option<bool>,
    // Accepted and ignored: what OpenAI clients commonly send.
    #[serde(default, rename = "top_logprobs")]
    _top_logprobs: Option<u32>,
    #[serde(default, rename = "user")]
    _user: Option<String>,
}

fn text_of(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match (p["type"].as_str(), p["text"].as_str()) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => return Err(ApiError::bad("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")),
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::bad("`content` must be a string or a list of text parts")),
    }
}

fn parse(app: &App, req: &ChatRequest) -> Result<(Vec<Message>, Sampling, usize), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::bad("`messages` is empty"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    let mut chars = 0;
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(ApiError::bad(format!("messages[{i}]: role {other:?} is not supported (system, developer, user, assistant)"))),
        };
        let content = text_of(&m.content).map_err(|e| ApiError::bad(format!("messages[{i}]: {}", e.message)))?;
        chars += content.chars().count();
        messages.push(Message { role, content });
    }
    if chars > app.config.max_context_chars {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the messages hold {chars} characters; this server accepts at most {} (max_context_chars)", app.config.max_context_chars),
        ));
    }
    if messages.last().is_some_and(|m| m.content.trim().is_empty()) {
        return Err(ApiError::bad("the last message is empty"));
    }
    let max = req.max_completion_tokens.or(req.max_tokens).unwrap_or(app.config.max_chat_tokens.min(256));
    if max == 0 || max > app.config.max_chat_tokens {
        return Err(ApiError::bad(format!("max_tokens must be between 1 and {} (max_chat_tokens)", app.config.max_chat_tokens)));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=8).contains(&n) {
        return Err(ApiError::bad("n must be between 1 and 8"));
    }
    let d = Sampling::default();
    let sampling = Sampling {
        temperature: req.temperature.unwrap_or(0.0),
        top_p: req.top_p.unwrap_or(d.top_p),
        top_k: req.top_k.unwrap_or(d.top_k),
        min_p: req.min_p.unwrap_or(d.min_p),
        seed: req.seed,
        stop: req.stop.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
        max_new_tokens: max,
        ..d
    };
    sampling.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    Ok((messages, sampling, n))
}

fn logprobs_json(c: &Completion) -> Value {
    json!({"content": c.token_logprobs.iter().map(|lp| json!({"token": "", "logprob": lp, "top_logprobs": []})).collect::<Vec<_>>()})
}

async fn chat(State(app): State<Arc<App>>, ApiJson(req): ApiJson<ChatRequest>) -> Result<Response, ApiError> {
    let (messages, sampling, n) = parse(&app, &req)?;
    let model_name = req.model.clone().unwrap_or_else(|| MODEL_ID.into());
    let id = format!("chatcmpl-{}", now_ms());
    let created = now_ms() / 1000;
    let want_logprobs = req.logprobs.unwrap_or(false);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let model = app.served.clone();
    let generate = async move {
        model.chat_group(&messages, n, &sampling).await.map_err(|e| match e {
            autodidact_runtime::Error::EmptyPrompt | autodidact_runtime::Error::InvalidSampling(_) => ApiError::bad(e.to_string()),
            other => ApiError::internal(format!("the model failed: {other}")),
        })
    };
    if !req.stream {
        let group = generate.await?;
        let usage = usage_of(&group);
        let choices: Vec<Value> = group
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut ch = json!({"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason.as_str()});
                if want_logprobs {
                    ch["logprobs"] = logprobs_json(c);
                }
                ch
            })
            .collect();
        return Ok(Json(json!({"id": id, "object": "chat.completion", "created": created, "model": model_name, "choices": choices, "usage": usage})).into_response());
    }
    let (mut tx, rx) = futures::channel::mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        use futures::SinkExt;
        let chunk = |choices: Value, usage: Value| {
            let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_name, "choices": choices});
            if !usage.is_null() {
                v["usage"] = usage;
            }
            Event::default().data(v.to_string())
        };
        let group = match generate.await {
            Ok(g) => g,
            Err(e) => {
                let _ = tx.send(Event::default().data(json!({"error": {"message": e.message, "type": "server_error", "code": e.status.as_u16()}}).to_string())).await;
                let _ = tx.send(Event::default().data("[DONE]")).await;
                return;
            }
        };
        for (i, c) in group.iter().enumerate() {
            if tx.send(chunk(json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]), Value::Null)).await.is_err() {
                return;
            }
            for piece in pieces(&c.text) {
                if tx.send(chunk(json!([{"index": i, "delta": {"content": piece}, "finish_reason": null}]), Value::Null)).await.is_err() {
                    return;
                }
            }
            let mut last = json!({"index": i, "delta": {}, "finish_reason": c.finish_reason.as_str()});
            if want_logprobs {
                last["logprobs"] = logprobs_json(c);
            }
            if tx.send(chunk(json!([last]), Value::Null)).await.is_err() {
                return;
            }
        }
        if include_usage {
            let _ = tx.send(chunk(json!([]), usage_of(&group))).await;
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    use futures::StreamExt;
    Ok(Sse::new(rx.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default()).into_response())
}

fn usage_of(group: &[Completion]) -> Value {
    let prompt = group.first().map_or(0, |c| c.usage.prompt_tokens);
    let completion: usize = group.iter().map(|c| c.usage.completion_tokens).sum();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Cuts `text` into word-sized pieces (each keeps its trailing whitespace), which concatenate
/// back to `text`.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, ch) in text.char_indices() {
        if ch.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_concatenate_back() {
        let t = "Hello  world,\nthis is\tit ";
        let p = super::pieces(t);
        assert_eq!(p.concat(), t);
        assert_eq!(p[0], "Hello  ");
        assert_eq!(super::pieces(""), Vec::<&str>::new());
    }
}
