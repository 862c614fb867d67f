//! A cell cannot outlive its wall-clock deadline (`sandbox.deadline_ms`): not in a busy loop,
//! not in `time.sleep`.

mod common;

use std::time::{Duration, Instant};

use autodidact_sandbox::{Error, Limit, Status};
use common::*;

#[test]
fn busy_loop_is_stopped_at_the_deadline() {
    let mut s = session_with(quick(300));
    let t = Instant::now();
    let cell = s.exec("while True:\n    pass\n").unwrap();
    assert_eq!(cell.status, Status::Trapped);
    assert_eq!(cell.trapped, Some(Limit::Deadline));
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(cell.stderr.contains("sandbox.deadline_ms"), "{}", cell.stderr);
    // After a trap the session is over.
    assert!(matches!(s.exec("1"), Err(Error::SessionClosed(_))));
    assert!(s.is_closed());
}

#[test]
fn sleep_is_stopped_at_the_deadline() {
    let mut s = session_with(quick(300));
    let t = Instant::now();
    let cell = s.exec("import time\ntime.sleep(1000)").unwrap();
    assert_eq!(cell.trapped, Some(Limit::Deadline));
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
}

#[test]
fn short_sleeps_sleep_for_real() {
    let mut s = session_with(quick(5_000));
    let cell = ok(&mut s, "import time\nt = time.monotonic()\ntime.sleep(0.2)\nround(time.monotonic() - t, 1)");
    assert_eq!(cell.stdout.trim(), "0.2");
    assert!(cell.duration >= Duration::from_millis(200));
}

#[test]
fn the_deadline_is_per_cell() {
    let mut s = session_with(quick(400));
    for _ in 0..3 {
        ok(&mut s, "import time\ntime.sleep(0.25)");
    }
}
