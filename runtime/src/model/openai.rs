//! The OpenAI-compatible backend: vLLM, llama-server, llama-cpp-python, hosted APIs.
//!
//! Requests go to `{url}/v1/chat/completions` with `stream: true`; the server-sent events are
//! accumulated per choice. `n` asks for a group in one request; servers that return fewer
//! choices get follow-up requests for the rest. Log-probs are requested and used when the
//! server returns them (`choices[].logprobs.content[].logprob`); token ids never cross HTTP, so
//! `Completion::tokens` stays empty.
//!
//! Failures: connection errors, timeouts, 429 and 5xx are retried with exponential backoff
//! (honouring `Retry-After`); other statuses and malformed bodies are errors that quote the
//! server. The API key, if any, is read from the environment variable named in
//! [`OpenAiConfig::api_key_env`] (default `OPENAI_API_KEY`).
//!
//! Budget forcing over HTTP is partial: `min_new_tokens` is sent as `min_tokens` (a vLLM
//! extension); continuation strings need token-level control and are refused.
//! `Sampling::stop_after_block` is applied to the finished reply: the server generates on, and
//! the text (and the log-probs, where the server names their tokens) are cut where the engine
//! would have stopped.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage, check_request,
    finished_block_stop,
};
use crate::{Error, Result};

/// Settings of the OpenAI-compatible backend.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The environment variable holding the API key (no key: no `Authorization` header).
    pub api_key_env: String,
    /// Limit on one whole request, streaming included.
    pub timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for transport errors, 429 and 5xx.
    pub max_retries: u32,
    /// The first retry's delay; each further one doubles it.
    pub initial_backoff: Duration,
    /// Ask for per-token log-probs.
    pub logprobs: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            api_key_env: "OPENAI_API_KEY".into(),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            logprobs: true,
        }
    }
}

/// A model behind an OpenAI-compatible HTTP API.
#[derive(Debug)]
pub struct OpenAiModel {
    client: reqwest::Client,
    base: String,
    model: String,
    api_key: Option<String>,
    config: OpenAiConfig,
}

/// One choice being assembled from stream chunks.
#[derive(Debug, Default)]
struct Partial {
    text: String,
    logprobs: Vec<f32>,
    /// The byte length of each log-prob's token, where the server names the token.
    token_lens: Vec<usize>,
    finish: Option<String>,
    chunks: usize,
}

impl OpenAiModel {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`, without `/v1`) and `model`.
    pub fn new(base: &str, model: &str, config: OpenAiConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Http { url: base.into(), reason: e.to_string() })?;
        let api_key = std::env::var(&config.api_key_env).ok().filter(|k| !k.is_empty());
        Ok(OpenAiModel {
            client,
            base: base.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            config,
        })
    }

    fn body(&self, messages: &[Message], n: usize, s: &Sampling, seed: Option<u64>) -> Value {
        let msgs: Vec<Value> =
            messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect();
        let mut body = json!({
            "model": self.model,
            "messages": msgs,
            "stream": true,
            "temperature": s.temperature,
            "max_tokens": s.max_new_tokens,
        });
        let obj = body.as_object_mut().expect("a JSON object");
        if n > 1 {
            obj.insert("n".into(), json!(n));
        }
        if s.top_p < 1.0 {
            obj.insert("top_p".into(), json!(s.top_p));
        }
        if s.top_k > 0 {
            obj.insert("top_k".into(), json!(s.top_k));
        }
        if s.min_p > 0.0 {
            obj.insert("min_p".into(), json!(s.min_p));
        }
        if s.min_new_tokens > 0 {
            obj.insert("min_tokens".into(), json!(s.min_new_tokens));
        }
        if let Some(seed) = seed {
            obj.insert("seed".into(), json!(seed));
        }
        if !s.stop.is_empty() {
            obj.insert("stop".into(), json!(s.stop));
        }
        if self.config.logprobs {
            obj.insert("logprobs".into(), json!(true));
            // Some servers (llama-cpp-python) stream log-probs only when asked for alternatives.
            obj.insert("top_logprobs".into(), json!(1));
        }
        body
    }

    /// POSTs `body` to `path`, retrying transport errors, 429 and 5xx with backoff.
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path);
        let mut delay = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            let mut req = self.client.post(&url).json(body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let (retryable, reason, retry_after) = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    let text: String = text.chars().take(500).collect();
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    (retryable, format!("HTTP {status}: {text}"), retry_after)
                }
                Err(e) => (true, describe_reqwest(&e), None),
            };
            if !retryable || attempt >= self.config.max_retries {
                let tries = if retryable { format!(" (after {} attempts)", attempt + 1) } else { String::new() };
                return Err(Error::Http { url, reason: format!("{reason}{tries}") });
            }
            tokio::time::sleep(retry_after.unwrap_or(delay).min(Duration::from_secs(60))).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// One streamed request; returns the choices it produced, in index order.
    async fn request(&self, body: &Value) -> Result<(Vec<Partial>, Option<Usage>, Timings)> {
        let url = format!("{}/v1/chat/completions", self.base);
        let bad = |reason: String| Error::BadResponse { url: url.clone(), reason };
        let start = Instant::now();
        let mut resp = self.post("/v1/chat/completions", body).await?;
        let is_json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let mut choices: Vec<Partial> = Vec::new();
        let mut usage = None;
        let mut first_byte: Option<f64> = None;
        if is_json {
            // A server that ignores `stream` answers with one JSON object.
            let text = resp.text().await.map_err(|e| bad(describe_reqwest(&e)))?;
            first_byte = Some(start.elapsed().as_secs_f64() * 1e3);
            let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e}): {}", clip(&text))))?;
            absorb(&v, &mut choices, &mut usage, true).map_err(bad)?;
        } else {
            let mut buf: Vec<u8> = Vec::new();
            let mut done = false;
            while !done {
                let chunk = resp.chunk().await.map_err(|e| Error::Http { url: url.clone(), reason: describe_reqwest(&e) })?;
                let Some(chunk) = chunk else { break };
                first_byte.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim();
                    let Some(data) = line.strip_prefix("data:") else { continue };
                    let data = data.trim();
                    if data == "[DONE]" {
                        done = true;
                        break;
                    }
                    let v: Value = serde_json::from_str(data)
                        .map_err(|e| bad(format!("bad event ({e}): {}", clip(data))))?;
                    absorb(&v, &mut choices, &mut usage, false).map_err(bad)?;
                }
            }
        }
        if choices.is_empty() {
            return Err(bad("no choices in the response".into()));
        }
        let total = start.elapsed().as_secs_f64() * 1e3;
        let prompt_ms = first_byte.unwrap_or(total);
        Ok((choices, usage, Timings { prompt_ms, generation_ms: total - prompt_ms }))
    }
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Folds one response object (a stream chunk, or a whole response) into `choices`.
fn absorb(
    v: &Value,
    choices: &mut Vec<Partial>,
    usage: &mut Option<Usage>,
    whole: bool,
) -> std::result::Result<(), String> {
    if let Some(err) = v.get("error") {
        return Err(format!("server error: {err}"));
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
        *usage = Some(Usage { prompt_tokens: get("prompt_tokens"), completion_tokens: get("completion_tokens") });
    }
    let Some(list) = v.get("choices").and_then(Value::as_array) else {
        return if v.get("usage").is_some() { Ok(()) } else { Err(format!("no choices: {}", clip(&v.to_string()))) };
    };
    for c in list {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        if index > 4096 {
            return Err(format!("choice index {index} is implausible"));
        }
        if choices.len() <= index {
            choices.resize_with(index + 1, Partial::default);
        }
        let p = &mut choices[index];
        let part = if whole { c.get("message") } else { c.get("delta") };
        if let Some(text) = part.and_then(|d| d.get("content")).and_then(Value::as_str) {
            p.text.push_str(text);
        }
        if let Some(lps) = c.pointer("/logprobs/content").and_then(Value::as_array) {
            for lp in lps {
                let x = lp
                    .get("logprob")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("a logprob entry without a number: {lp}"))?;
                p.logprobs.push(x as f32);
                if let Some(t) = lp.get("token").and_then(Value::as_str) {
                    p.token_lens.push(t.len());
                }
            }
        }
        if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
            p.finish = Some(f.to_string());
        }
        p.chunks += 1;
    }
    Ok(())
}

#[async_trait]
impl LanguageModel for OpenAiModel {
    fn describe(&self) -> String {
        format!("openai:{}#{}", self.base, self.model)
    }

    fn backend_name(&self) -> &'static str {
        "openai"
    }

    async fn chat_group(
        &self,
        messages: &[Message],
        n: usize,
        sampling: &Sampling,
    ) -> Result<Vec<Completion>> {
        check_request(messages, n, sampling)?;
        if !sampling.continuations.is_empty() {
            return Err(Error::Unsupported {
                backend: "openai",
                operation: "budget-forcing continuation strings",
            });
        }
        let mut out: Vec<Completion> = Vec::with_capacity(n);
        let mut round = 0u64;
        while out.len() < n {
            let want = n - out.len();
            // Follow-up requests need another seed, or a seeded server repeats itself.
            let seed = sampling.seed.map(|s| s.wrapping_add(round.wrapping_mul(0x9E37_79B9)));
            let body = self.body(messages, want, sampling, seed);
            let (choices, usage, timings) = self.request(&body).await?;
            let got = choices.len().min(want);
            for mut p in choices.into_iter().take(want) {
                // A server cannot apply this rule: the reply is cut where the engine would
                // have stopped, and so are its log-probs when the server named the tokens.
                if let Some(end) = finished_block_stop(&p.text, &sampling.stop_after_block) {
                    p.text.truncate(end);
                    p.finish = Some("stop".into());
                    if p.token_lens.len() == p.logprobs.len() {
                        let mut at = 0;
                        let kept = p.token_lens.iter().take_while(|&&len| {
                            at += len;
                            at - len < end
                        });
                        p.logprobs.truncate(kept.count());
                    }
                }
                let finish_reason = match p.finish.as_deref() {
                    Some("length") => FinishReason::Length,
                    _ => FinishReason::Stop,
                };
                let completion_tokens = if !p.logprobs.is_empty() {
                    p.logprobs.len()
                } else {
                    usage.map(|u| u.completion_tokens / got.max(1)).unwrap_or(0)
                };
                out.push(Completion {
                    text: p.text,
                    tokens: Vec::new(),
                    token_logprobs: p.logprobs,
                    finish_reason,
                    usage: Usage {
                        prompt_tokens: usage.map(|u| u.prompt_tokens).unwrap_or(0),
                        completion_tokens,
                    },
                    timings,
                });
            }
            round += 1;
            if round > n as u64 + 2 {
                return Err(Error::BadResponse {
                    url: format!("{}/v1/chat/completions", self.base),
                    reason: format!("asked for {n} choices, got {} after {round} requests", out.len()),
                });
            }
        }
        Ok(out)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>> {
        if text.trim().is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let url = format!("{}/v1/embeddings", self.base);
        let resp = self.post("/v1/embeddings", &json!({"model": self.model, "input": text})).await?;
        let v: Value = resp.json().await.map_err(|e| Error::BadResponse { url: url.clone(), reason: e.to_string() })?;
        let emb = v
            .pointer("/data/0/embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::BadResponse { url: url.clone(), reason: format!("no data[0].embedding: {}", clip(&v.to_string())) })?;
        let v: Vec<f32> = emb.iter().filter_map(Value::as_f64).map(|x| x as f32).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        Ok(v.iter().map(|x| x / norm).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_chunks_accumulate_per_choice() {
        let mut choices = Vec::new();
        let mut usage = None;
        for chunk in [
            json!({"choices":[{"index":0,"delta":{"role":"assistant"}}]}),
            json!({"choices":[{"index":1,"delta":{"content":"b"},"logprobs":{"content":[{"token":"b","logprob":-0.5}]}}]}),
            json!({"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.25}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}),
        ] {
            absorb(&chunk, &mut choices, &mut usage, false).unwrap();
        }
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[0].text, "a");
        assert_eq!(choices[0].logprobs, vec![-0.25]);
        assert_eq!(choices[0].finish.as_deref(), Some("length"));
        assert_eq!(choices[1].text, "b");
        assert_eq!(usage.unwrap().prompt_tokens, 3);
        let err = absorb(&json!({"error": {"message": "boom"}}), &mut choices, &mut usage, false);
        assert!(err.unwrap_err().contains("boom"));
    }
}
