//! Host tools through `from host import tools`: list, call, unknown tool, a gate that denies,
//! bad arguments, frames over the size cap, the per-cell call cap, a tool that fails and one
//! that times out.

mod common;

use std::time::Duration;

use autodidact_sandbox::{Limit, Limits, Session, Status, ToolError, ToolSet};
use common::*;
use serde_json::{Value, json};

fn toolset() -> ToolSet {
    let mut t = ToolSet::new();
    let ints = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]});
    t.add("add", "Add two integers.", ints, |args: Value| async move {
        Ok(json!(args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap()))
    });
    t.add("fail", "Always fails.", json!({"type": "object"}), |_| async { Err(ToolError::Failed("boom".into())) });
    t.add("nap", "Sleeps for `ms` milliseconds.", json!({"type": "object", "properties": {"ms": {"type": "integer"}}}), |args: Value| async move {
        tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap_or(0))).await;
        Ok(json!("rested"))
    });
    t.add("big", "Returns n bytes of text.", json!({"type": "object", "properties": {"n": {"type": "integer"}}}), |args: Value| async move {
        Ok(json!("x".repeat(args["n"].as_u64().unwrap() as usize)))
    });
    t.add("echo", "Returns its argument.", json!({"type": "object", "properties": {"s": {"type": "string"}}}), |args: Value| async move {
        Ok(args["s"].clone())
    });
    t.add("secret", "Refused by the gate.", json!({"type": "object"}), |_| async { Ok(json!("leaked")) });
    t.gate(|name, _args| if name == "secret" { Err("not in this policy's allow list".into()) } else { Ok(()) });
    t
}

fn tool_session(limits: Limits) -> Session {
    let mut s = sandbox().session(limits, toolset()).unwrap();
    ok(&mut s, "from host import tools\nimport host, _host, json");
    s
}

/// Runs `code` expecting it to raise; returns `type(e).__name__: e.kind: str(e)`.
fn raised(s: &mut Session, code: &str) -> String {
    let wrapped = format!("try:\n    {code}\n    r = 'no error'\nexcept Exception as e:\n    r = f'{{type(e).__name__}}: {{getattr(e, \"kind\", \"-\")}}: {{e}}'\nprint(r)");
    out(s, &wrapped)
}

fn raw(s: &mut Session, frame: Value) -> Value {
    let code = format!("print(_host.call(json.dumps({frame}).encode()).decode())");
    serde_json::from_str(&out(s, &code)).unwrap()
}

#[test]
fn list_shows_every_tool_with_its_description() {
    let mut s = tool_session(Limits::default());
    assert_eq!(out(&mut s, "sorted(n for n in dir(tools) if not n.startswith('_'))"), "['add', 'big', 'echo', 'fail', 'nap', 'secret']");
    assert!(out(&mut s, "tools.add.__doc__").contains("Add two integers."));
    let reply = raw(&mut s, json!({"v": 1, "id": 3, "op": "list"}));
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(reply["id"], json!(3));
    assert_eq!(reply["tools"][0]["name"], json!("add"));
    assert_eq!(reply["tools"][0]["inputSchema"]["required"], json!(["a", "b"]));
}

#[test]
fn call_returns_the_value() {
    let mut s = tool_session(Limits::default());
    assert_eq!(out(&mut s, "tools.add(a=2, b=40)"), "42");
    assert_eq!(out(&mut s, "tools.echo(s='héllo')"), "'héllo'");
}

#[test]
fn unknown_tool_and_bad_frames_are_answered_not_crashed() {
    let mut s = tool_session(Limits::default());
    let reply = raw(&mut s, json!({"v": 1, "id": 9, "op": "call", "tool": "rm_rf", "args": {}}));
    assert_eq!(reply["error"]["kind"], json!("unknown_tool"), "{reply}");
    assert_eq!(reply["id"], json!(9));
    assert!(out(&mut s, "_host.call(b'not json').decode()").contains("\"protocol\""));
    let reply = raw(&mut s, json!({"v": 2, "id": 1, "op": "list"}));
    assert_eq!(reply["error"]["kind"], json!("protocol"));
    assert!(raised(&mut s, "tools.rm_rf()").starts_with("AttributeError"));
}

#[test]
fn the_gate_denies() {
    let mut s = tool_session(Limits::default());
    let r = raised(&mut s, "tools.secret()");
    assert!(r.starts_with("ToolDenied: denied:"), "{r}");
    assert!(r.contains("not in this policy's allow list"), "{r}");
}

#[test]
fn bad_arguments_are_refused() {
    let mut s = tool_session(Limits::default());
    let r = raised(&mut s, "tools.add(a='two', b=1)");
    assert!(r.starts_with("ToolArgumentError"), "{r}");
    // The host checks too, whatever the guest library let through.
    let reply = raw(&mut s, json!({"v": 1, "id": 4, "op": "call", "tool": "add", "args": {"a": "two", "b": 1}}));
    assert_eq!(reply["error"]["kind"], json!("invalid_arguments"), "{reply}");
    let reply = raw(&mut s, json!({"v": 1, "id": 5, "op": "call", "tool": "add", "args": {"a": 1}}));
    assert!(reply["error"]["message"].as_str().unwrap().contains("missing required argument `b`"), "{reply}");
}

#[test]
fn frames_over_the_cap_are_too_large() {
    let mut s = tool_session(Limits { tool_payload_bytes: 10_000, ..Limits::default() });
    let r = raised(&mut s, "tools.echo(s='x' * 50_000)");
    assert!(r.starts_with("ToolTooLarge"), "{r}");
    let r = raised(&mut s, "tools.big(n=50_000)");
    assert!(r.starts_with("ToolTooLarge"), "{r}");
    assert!(r.contains("sandbox.tool_payload_bytes"), "{r}");
    let cell = s.exec("tools.big(n=50_000)").unwrap();
    assert!(cell.limits_hit.contains(&Limit::ToolPayload));
    assert_eq!(out(&mut s, "len(tools.big(n=5_000))"), "5000");
}

#[test]
fn calls_per_cell_are_capped() {
    let mut s = tool_session(Limits { max_tool_calls: 3, ..Limits::default() });
    let cell = s.exec("r = [tools.add(a=i, b=0) for i in range(3)]\ntools.add(a=1, b=1)").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.stderr.contains("ToolBudgetExceeded"), "{}", cell.stderr);
    assert!(cell.limits_hit.contains(&Limit::ToolCalls));
    // The cap is per cell.
    assert_eq!(out(&mut s, "tools.add(a=1, b=1)"), "2");
}

#[test]
fn a_failing_tool_raises_tool_error_in_the_guest() {
    let mut s = tool_session(Limits::default());
    assert_eq!(raised(&mut s, "tools.fail()"), "ToolError: tool_error: boom");
}

#[test]
fn a_slow_tool_times_out_and_tool_time_does_not_count_against_the_deadline() {
    let limits = Limits { tool_timeout: Duration::from_millis(300), deadline: Duration::from_millis(400), ..Limits::default() };
    let mut s = tool_session(limits);
    let r = raised(&mut s, "tools.nap(ms=5_000)");
    assert!(r.starts_with("ToolTimeout"), "{r}");
    // Two 250 ms tool calls in a 400 ms cell: the cell's own compute is tiny.
    assert_eq!(out(&mut s, "[tools.nap(ms=250), tools.nap(ms=250)]"), "['rested', 'rested']");
}
