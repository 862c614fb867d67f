//! The guest's memory is capped (`sandbox.memory_mb`): a memory bomb gets `MemoryError`, the
//! host stays up, and the hit is reported.

mod common;

use autodidact_sandbox::{Limit, Limits, Status};
use common::*;

fn capped(mb: u64) -> Limits {
    Limits { memory_bytes: mb << 20, ..Limits::default() }
}

#[test]
fn one_huge_allocation_raises_memory_error() {
    let mut s = session_with(capped(256));
    let cell = s.exec("x = bytearray(1024 * 1024 * 1024)").unwrap();
    assert_eq!(cell.status, Status::Error, "{cell:?}");
    assert!(cell.stderr.contains("MemoryError"), "{}", cell.stderr);
    assert!(cell.limits_hit.contains(&Limit::Memory));
    assert!(cell.stderr.contains("sandbox.memory_mb"), "{}", cell.stderr);
    // The session survives an allocation that failed cleanly.
    assert_eq!(out(&mut s, "1 + 1"), "2");
}

#[test]
fn a_growing_bomb_is_stopped() {
    let mut s = session_with(capped(256));
    let cell = s.exec("a = []\nwhile True:\n    a.append(' ' * 1_000_000)\n").unwrap();
    assert!(cell.limits_hit.contains(&Limit::Memory), "{cell:?}");
    assert!(matches!(cell.status, Status::Error | Status::Trapped), "{cell:?}");
    if cell.status == Status::Error {
        assert!(cell.stderr.contains("MemoryError"), "{}", cell.stderr);
    } else {
        assert_eq!(cell.trapped, Some(Limit::Memory));
    }
}
