//! `exit()` ends the session: the cell reports it, and later cells are refused.

mod common;

use autodidact_sandbox::{Error, Status};
use common::*;

#[test]
fn exit_with_a_code_ends_the_session() {
    let mut s = session();
    ok(&mut s, "x = 1");
    let cell = s.exec("exit(3)").unwrap();
    assert_eq!(cell.status, Status::Exited(3));
    assert!(s.is_closed());
    let e = s.exec("x").unwrap_err();
    assert!(matches!(e, Error::SessionClosed(_)));
    assert!(e.to_string().contains("exit(3)"), "{e}");
}

#[test]
fn sys_exit_ends_the_cell_but_not_the_session() {
    // As in a notebook kernel: `sys.exit()` (SystemExit) ends the cell; `exit()` ends the session.
    let mut s = session();
    ok(&mut s, "kept = 1");
    let cell = s.exec("import sys\nsys.exit(0)\nprint('not reached')").unwrap();
    assert_eq!(cell.status, Status::Ok);
    assert_eq!(cell.stdout, "");
    let cell = s.exec("raise SystemExit(5)").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(!s.is_closed());
    assert_eq!(out(&mut s, "kept"), "1");
}

#[test]
fn a_new_session_after_exit_starts_clean() {
    let mut s = session();
    ok(&mut s, "leftover = 1");
    s.exec("exit()").unwrap();
    let mut fresh = session();
    let cell = fresh.exec("leftover").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.stderr.contains("NameError"));
}
