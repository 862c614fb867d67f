//! Host tools: functions the guest calls through `from host import tools`.
//!
//! The guest's `host` module sends JSON frames through the `host.call` import; this module
//! answers them. Version 1 of the protocol:
//!
//! | request | reply |
//! |---|---|
//! | `{"v":1,"id":N,"op":"list"}` | `{"v":1,"id":N,"ok":true,"tools":[{"name","description","inputSchema"}]}` |
//! | `{"v":1,"id":N,"op":"call","tool":T,"args":{..}}` | `{"v":1,"id":N,"ok":true,"value":..}` |
//! | anything that fails | `{"v":1,"id":N,"ok":false,"error":{"kind","message"}}` |
//!
//! The error kinds are `tool_error`, `denied`, `invalid_arguments`, `unknown_tool`, `timeout`,
//! `budget_exceeded`, `too_large` and `protocol`.
//!
//! A [`ToolSet`] holds the tools and an optional [`Gate`] that may refuse a call before it
//! runs. Handlers are async; they run on a tokio runtime (the one current when the set was
//! made, or a small one this crate starts) while the guest thread waits, so a handler may
//! itself open sandbox sessions and run code without deadlocking.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

/// What a tool handler returns.
pub type ToolResult = Result<Value, ToolError>;
type Handler = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = ToolResult> + Send>> + Send + Sync>;

/// A tool's own failure, reported to the guest (never an `Err` of the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The tool ran and failed (`tool_error`); the message reaches the guest.
    Failed(String),
    /// The arguments were wrong in a way the schema could not say (`invalid_arguments`).
    InvalidArguments(String),
    /// The tool refused this call (`denied`).
    Denied(String),
    /// A budget shared by the tool's calls ran out (`budget_exceeded`).
    BudgetExceeded(String),
}

impl ToolError {
    fn kind_and_message(&self) -> (&'static str, &str) {
        match self {
            ToolError::Failed(m) => ("tool_error", m),
            ToolError::InvalidArguments(m) => ("invalid_arguments", m),
            ToolError::Denied(m) => ("denied", m),
            ToolError::BudgetExceeded(m) => ("budget_exceeded", m),
        }
    }
}

/// Decides whether a call may run. Returning `Err(reason)` answers the guest `denied`.
pub type Gate = Arc<dyn Fn(&str, &Value) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Tool {
    description: String,
    schema: Value,
    handler: Handler,
}

/// The host tools one session may call, and the gate in front of them.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: BTreeMap<String, Tool>,
    gate: Option<Gate>,
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSet").field("tools", &self.tools.keys().collect::<Vec<_>>()).finish()
    }
}

impl ToolSet {
    /// An empty set. Handlers will run on the tokio runtime current now, if any.
    pub fn new() -> Self {
        Self { tools: BTreeMap::new(), gate: None, runtime: tokio::runtime::Handle::try_current().ok() }
    }

    /// Adds a tool. `schema` is a JSON schema for its arguments object; the subset checked
    /// before the handler runs is `type`, `properties` (with their `type`), `required` and
    /// `additionalProperties: false`.
    pub fn add<F, Fut>(&mut self, name: &str, description: &str, schema: Value, handler: F) -> &mut Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |args| Box::pin(handler(args)));
        self.tools.insert(name.to_owned(), Tool { description: description.to_owned(), schema, handler });
        self
    }

    /// Puts a gate in front of every call.
    pub fn gate(&mut self, gate: impl Fn(&str, &Value) -> Result<(), String> + Send + Sync + 'static) -> &mut Self {
        self.gate = Some(Arc::new(gate));
        self
    }

    /// The tools' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// True when the set holds no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    fn handle(&self) -> tokio::runtime::Handle {
        if let Some(h) = &self.runtime {
            return h.clone();
        }
        static OWN: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        OWN.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sandbox-tools")
                .enable_all()
                .build()
                .expect("cannot start the sandbox's tool runtime")
        })
        .handle()
        .clone()
    }
}

/// The host side of one frame, given what the session allows.
pub(crate) struct FrameContext<'a> {
    pub tools: &'a ToolSet,
    pub payload_cap: usize,
    pub timeout: std::time::Duration,
    /// Returns false, and counts nothing, once the cell's tool-call budget is spent.
    pub take_call: &'a mut dyn FnMut() -> bool,
    /// Polled while a call runs: true when the cell was cancelled.
    pub cancelled: &'a dyn Fn() -> bool,
}

/// How a frame ended, for the session's limit accounting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameNote {
    None,
    TooLarge,
    CallCap,
    Cancelled,
}

fn error_frame(id: &Value, kind: &str, message: &str) -> Vec<u8> {
    json!({"v":1,"id":id,"ok":false,"error":{"kind":kind,"message":message}}).to_string().into_bytes()
}

/// The request id, found without parsing a frame too large to read whole.
pub(crate) fn sniff_id(prefix: &[u8]) -> Value {
    let text = String::from_utf8_lossy(prefix);
    text.find("\"id\":")
        .map(|i| text[i + 5..].trim_start())
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u64>().ok()
        })
        .map_or(Value::Null, Value::from)
}

/// Answers one request frame. `request` may be only a prefix when `full_len` is over the cap.
pub(crate) fn answer(request: &[u8], full_len: usize, cx: &mut FrameContext<'_>) -> (Vec<u8>, FrameNote) {
    if full_len > cx.payload_cap {
        let msg = format!("request of {full_len} bytes is over the {} byte cap (sandbox.tool_payload_bytes)", cx.payload_cap);
        return (error_frame(&sniff_id(&request[..request.len().min(256)]), "too_large", &msg), FrameNote::TooLarge);
    }
    let frame: Value = match serde_json::from_slice(request) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return (error_frame(&Value::Null, "protocol", "a frame must be a JSON object"), FrameNote::None),
        Err(e) => return (error_frame(&Value::Null, "protocol", &format!("bad JSON frame: {e}")), FrameNote::None),
    };
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    if frame.get("v") != Some(&json!(1)) {
        return (error_frame(&id, "protocol", "unsupported protocol version (this host speaks v1)"), FrameNote::None);
    }
    let (reply, note) = match frame.get("op").and_then(Value::as_str) {
        Some("list") => {
            let tools: Vec<Value> = cx.tools.tools.iter()
                .map(|(name, t)| json!({"name": name, "description": t.description, "inputSchema": t.schema}))
                .collect();
            (json!({"v":1,"id":id,"ok":true,"tools":tools}).to_string().into_bytes(), FrameNote::None)
        }
        Some("call") => call(&frame, &id, cx),
        Some(other) => (error_frame(&id, "protocol", &format!("unknown op `{other}`")), FrameNote::None),
        None => (error_frame(&id, "protocol", "a frame needs an `op`"), FrameNote::None),
    };
    if reply.len() > cx.payload_cap {
        let msg = format!("reply of {} bytes is over the {} byte cap (sandbox.tool_payload_bytes)", reply.len(), cx.payload_cap);
        return (error_frame(&id, "too_large", &msg), FrameNote::TooLarge);
    }
    (reply, note)
}

fn call(frame: &Value, id: &Value, cx: &mut FrameContext<'_>) -> (Vec<u8>, FrameNote) {
    let Some(name) = frame.get("tool").and_then(Value::as_str) else {
        return (error_frame(id, "protocol", "a call needs a `tool` name"), FrameNote::None);
    };
    let args = frame.get("args").cloned().unwrap_or_else(|| json!({}));
    let Some(tool) = cx.tools.tools.get(name) else {
        let known: Vec<&str> = cx.tools.names().collect();
        return (error_frame(id, "unknown_tool", &format!("no tool `{name}`; tools: {}", known.join(", "))), FrameNote::None);
    };
    if let Err(m) = check_args(&tool.schema, &args) {
        return (error_frame(id, "invalid_arguments", &format!("{name}: {m}")), FrameNote::None);
    }
    if let Some(gate) = &cx.tools.gate {
        if let Err(reason) = gate(name, &args) {
            return (error_frame(id, "denied", &format!("{name}: {reason}")), FrameNote::None);
        }
    }
    if !(cx.take_call)() {
        return (error_frame(id, "budget_exceeded", "tool-call limit for this cell reached (sandbox.max_tool_calls)"), FrameNote::CallCap);
    }
    let handle = cx.tools.handle();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let fut = (tool.handler)(args);
    let task = handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let started = std::time::Instant::now();
    let outcome = loop {
        match rx.recv_timeout(std::time::Duration::from_millis(5)) {
            Ok(r) => break Ok(r),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Ok(Err(ToolError::Failed("the tool panicked".into()))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if (cx.cancelled)() {
                    break Err(FrameNote::Cancelled);
                }
                if started.elapsed() >= cx.timeout {
                    break Err(FrameNote::None);
                }
            }
        }
    };
    match outcome {
        Ok(Ok(value)) => (json!({"v":1,"id":id,"ok":true,"value":value}).to_string().into_bytes(), FrameNote::None),
        Ok(Err(e)) => {
            let (kind, msg) = e.kind_and_message();
            (error_frame(id, kind, msg), FrameNote::None)
        }
        Err(note) => {
            task.abort();
            let msg = if note == FrameNote::Cancelled {
                "cancelled by the host".to_owned()
            } else {
                format!("{name} did not answer within {} ms (sandbox.tool_timeout_ms)", cx.timeout.as_millis())
            };
            (error_frame(id, "timeout", &msg), note)
        }
    }
}

/// Checks `args` against the subset of JSON schema that tools use.
pub(crate) fn check_args(schema: &Value, args: &Value) -> Result<(), String> {
    fn type_ok(ty: &str, v: &Value) -> bool {
        match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        }
    }
    fn types_ok(spec: &Value, v: &Value) -> bool {
        match spec.get("type") {
            Some(Value::String(t)) => type_ok(t, v),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        }
    }
    if !types_ok(schema, args) {
        return Err(format!("arguments must be of type {}", schema["type"]));
    }
    let Some(obj) = args.as_object() else { return Ok(()) };
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(key) {
                return Err(format!("missing required argument `{key}`"));
            }
        }
    }
    for (key, value) in obj {
        match props.and_then(|p| p.get(key)) {
            Some(spec) if !types_ok(spec, value) => {
                return Err(format!("argument `{key}` must be of type {}", spec["type"]));
            }
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err(format!("unexpected argument `{key}`"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_subset() {
        let s = json!({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":["string","null"]}},"required":["a"],"additionalProperties":false});
        assert!(check_args(&s, &json!({"a": 1})).is_ok());
        assert!(check_args(&s, &json!({"a": 1, "b": null})).is_ok());
        assert_eq!(check_args(&s, &json!({})).unwrap_err(), "missing required argument `a`");
        assert!(check_args(&s, &json!({"a": "x"})).unwrap_err().contains("`a` must be of type"));
        assert_eq!(check_args(&s, &json!({"a": 1, "c": 2})).unwrap_err(), "unexpected argument `c`");
        assert!(check_args(&s, &json!([1])).is_err());
    }

    #[test]
    fn id_is_sniffed_from_a_prefix() {
        assert_eq!(sniff_id(br#"{"v":1,"id": 42,"op":"call","args":{"x":"#), json!(42));
        assert_eq!(sniff_id(b"garbage"), Value::Null);
    }
}
