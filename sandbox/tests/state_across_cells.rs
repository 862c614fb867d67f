//! A session keeps its globals from cell to cell, echoes a final expression like a REPL, and
//! moves JSON values in and out.

mod common;

use autodidact_sandbox::Status;
use common::*;
use serde_json::json;

#[test]
fn globals_persist_and_last_expression_is_echoed() {
    let mut s = session();
    ok(&mut s, "x = 40");
    ok(&mut s, "def f(y):\n    return x + y\n");
    assert_eq!(out(&mut s, "f(2)"), "42");
    assert_eq!(out(&mut s, "14 + 95 - 98"), "11");
    assert_eq!(out(&mut s, "print('a'); 'b'"), "a\n'b'");
}

#[test]
fn an_exception_is_reported_and_the_session_lives_on() {
    let mut s = session();
    ok(&mut s, "keep = 7");
    let cell = s.exec("1 / 0").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.stderr.contains("ZeroDivisionError"), "{}", cell.stderr);
    assert!(cell.trapped.is_none());
    let cell = s.exec("def broken(:\n  pass").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.stderr.contains("SyntaxError"), "{}", cell.stderr);
    assert_eq!(out(&mut s, "keep"), "7");
}

#[test]
fn set_var_and_get_var_round_trip_json() {
    let mut s = session();
    let value = json!({"a": [1, 2.5, "três", null, true], "nested": {"k": "line\nbreak \"quoted\" \\ end"}});
    s.set_var("data", &value).unwrap();
    assert_eq!(out(&mut s, "type(data).__name__, len(data['a'])"), "('dict', 5)");
    assert_eq!(s.get_var("data").unwrap(), value);
    ok(&mut s, "big = 'x' * 3_000_000");
    assert_eq!(s.get_var("big").unwrap().as_str().unwrap().len(), 3_000_000);
}

#[test]
fn bad_names_and_unserialisable_values_are_errors() {
    let mut s = session();
    assert!(s.set_var("not a name", &json!(1)).unwrap_err().to_string().contains("not a Python identifier"));
    ok(&mut s, "obj = object()");
    let e = s.get_var("obj").unwrap_err().to_string();
    assert!(e.contains("not JSON serializable"), "{e}");
    let e = s.get_var("missing").unwrap_err().to_string();
    assert!(e.contains("NameError"), "{e}");
}

#[test]
fn many_cells_keep_memory_bounded() {
    // The guest's linecache keeps every cell's source unless the host clears it. The clearing
    // runs between cells under a cell's deadline (it once ran under an expired one, and the
    // session broke with empty errors whenever freeing 200 KB sources took over 5 ms).
    let mut s = session();
    let big = format!("s = '{}'", "y".repeat(200_000));
    for _ in 0..64 {
        ok(&mut s, &big);
    }
    let n: usize = out(&mut s, "import linecache; len(linecache._interactive_cache)").parse().unwrap();
    assert!(n < 16, "linecache holds {n} cells");
}
