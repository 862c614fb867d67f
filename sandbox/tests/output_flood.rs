//! Output floods on stdout and stderr are cut at their caps and marked; the guest is not
//! trapped and the host does not grow.

mod common;

use autodidact_sandbox::{Limit, Limits, Status};
use common::*;

fn small_output() -> Limits {
    Limits { stdout_bytes: 1000, stderr_bytes: 500, ..Limits::default() }
}

#[test]
fn stdout_flood_is_truncated_and_marked() {
    let mut s = session_with(small_output());
    let cell = s.exec("for i in range(100_000):\n    print('x' * 100)\n'done'").unwrap();
    assert_eq!(cell.status, Status::Ok, "{}", cell.stderr);
    assert!(cell.truncated);
    assert!(cell.limits_hit.contains(&Limit::Output));
    let kept = cell.stdout.split("\n[sandbox:").next().unwrap();
    assert_eq!(kept.len(), 1000);
    assert!(cell.stdout.contains("more bytes of stdout dropped (sandbox.stdout_bytes = 1000)"), "{}", &cell.stdout[1000..]);
    // The next cell starts with an empty buffer.
    let next = ok(&mut s, "print('fresh')");
    assert_eq!(next.stdout, "fresh\n");
    assert!(!next.truncated);
}

#[test]
fn stderr_flood_is_truncated_and_marked() {
    let mut s = session_with(small_output());
    let cell = s.exec("import sys\nsys.stderr.write('e' * 50_000_000)\nprint('still here')").unwrap();
    assert_eq!(cell.status, Status::Ok);
    assert!(cell.truncated);
    assert_eq!(cell.stdout, "still here\n");
    assert!(cell.stderr.contains("more bytes of stderr dropped (sandbox.stderr_bytes = 500)"));
}

#[test]
fn one_giant_print_is_truncated() {
    let mut s = session_with(small_output());
    let cell = s.exec("print('z' * 100_000_000)").unwrap();
    assert_eq!(cell.status, Status::Ok);
    assert!(cell.truncated);
    assert!(cell.stdout.len() < 1200);
}
