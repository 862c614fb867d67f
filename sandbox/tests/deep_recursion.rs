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
fn raised_recursion_limit_is_still_contained() {
    let mut s = session();
    let cell = s.exec("import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return f(n + 1)\nf(0)").unwrap();
    match cell.status {
        Status::Error => assert!(cell.stderr.contains("Error"), "{}", cell.stderr),
        Status::Trapped => assert_eq!(cell.trapped, Some(Limit::Stack), "{}", cell.stderr),
        other => panic!("unexpected {other:?}: {}", cell.stderr),
    }
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
