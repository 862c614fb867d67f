//! The `autodidact sandbox` commands as other tools call them: exact JSON fields, exit codes,
//! and clear errors for bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn autodidact(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn exec_json_prints_the_documented_fields() {
    let (code, out, err) = autodidact(&["sandbox", "exec", "--json", "-"], "print('hi')\n6 * 7");
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in ["status", "stdout", "stderr", "truncated", "trapped", "duration_ms"] {
        assert!(v.get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(v["status"], "ok");
    assert_eq!(v["stdout"], "hi\n42\n");
    assert_eq!(v["trapped"], Value::Null);
}

#[test]
fn a_failing_guest_still_exits_zero() {
    let (code, out, _) = autodidact(&["sandbox", "exec", "--json", "--deadline-ms", "200", "-"], "while True: pass");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "trapped");
    assert_eq!(v["trapped"], "deadline");
    let (code, out, _) = autodidact(&["sandbox", "exec", "--json", "--memory-mb", "128", "-"], "x = bytearray(10**9)");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "error");
    assert!(v["stderr"].as_str().unwrap().contains("MemoryError"));
}

#[test]
fn a_broken_policy_is_a_clear_error_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("autodidact-cli-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("bad.toml");
    std::fs::write(&policy, "[sandbox]\ndeadline_ms = 100\nmemroy_mb = 5\n").unwrap();
    let (code, _, err) = autodidact(&["sandbox", "exec", "--policy", policy.to_str().unwrap(), "-"], "1");
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:3: key `sandbox.memroy_mb`: unknown field"), "{err}");
    let (code, _, err) = autodidact(&["sandbox", "exec", "/no/such/file.py"], "");
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /no/such/file.py"), "{err}");
}

#[test]
fn the_repl_keeps_state_between_inputs() {
    let (code, out, err) = autodidact(&["sandbox", "repl"], "x = 20\ndef f(y):\n    return x + y\n\nf(22)\nexit()\nx\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("42"), "{out}");
    // After exit() the REPL starts a fresh session, where x is gone.
    assert!(err.contains("NameError"), "{err}");
}

#[test]
fn help_explains_the_commands() {
    let (code, out, _) = autodidact(&["sandbox", "--help"], "");
    assert_eq!(code, 0);
    for cmd in ["prepare", "exec", "repl", "bench"] {
        assert!(out.contains(cmd), "{out}");
    }
    let (_, out, _) = autodidact(&["sandbox", "exec", "--help"], "");
    assert!(out.contains("--deadline-ms") && out.contains("--memory-mb") && out.contains("--policy"), "{out}");
}
