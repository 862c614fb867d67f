//! Deep recursion, in Python or in C, is a clean error or a reported stack trap, never a host
//! crash.

mod common;

use autodidact_sandbox::{Limit, Status};
use common::*;

#[test]
fn python_recursion_raises_recursion_error() {
    let mut s = session();
    let cell = s.exec("def f(n):\n    return f(n + 1)\nf(0)").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.stderr.contains("RecursionError"), "{}", cell.stderr);
    assert_eq!(out(&mut s, "'alive'"), "'alive'");
}

#[test]
fn recursion_through_c_raises_recursion_error() {
    let mut s = session();
    let cell = s.exec("import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)").unwrap();
    assert_eq!(cell.status, Status::Error, "{}", cell.stderr);
    assert!(cell.stderr.contains("RecursionError"), "{}", cell.stderr);
    assert_eq!(out(&mut s, "'alive'"), "'alive'");
}

#[test]
fn unbounded_python_recursion_is_stopped_by_a_limit() {
    let limits = autodidact_sandbox::Limits { memory_bytes: 256 << 20, ..quick(2_000) };
    let mut s = session_with(limits);
    let cell = s.exec("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)").unwrap();
    match cell.status {
        Status::Error => assert!(cell.stderr.contains("MemoryError") || cell.stderr.contains("RecursionError"), "{}", cell.stderr),
        Status::Trapped => assert!(matches!(cell.trapped, Some(Limit::Deadline | Limit::Memory | Limit::Stack)), "{cell:?}"),
        other => panic!("unexpected {other:?}: {}", cell.stderr),
    }
    assert_eq!(out(&mut session(), "'a fresh session works'"), "'a fresh session works'");
}

#[test]
fn deeply_nested_data_in_c_code_is_contained() {
    let mut s = session();
    let cell = s.exec("import json\njson.loads('[' * 200000 + ']' * 200000)").unwrap();
    match cell.status {
        Status::Error => assert!(cell.stderr.contains("RecursionError"), "{}", cell.stderr),
        Status::Trapped => assert_eq!(cell.trapped, Some(Limit::Stack), "{}", cell.stderr),
        other => panic!("unexpected {other:?}"),
    }
}
