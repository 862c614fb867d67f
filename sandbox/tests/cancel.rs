//! A running cell can be cancelled from another thread, and many sessions run at once on the
//! pool, through the async facade.

mod common;

use std::time::{Duration, Instant};

use autodidact_sandbox::{Limit, Limits, Status, ToolSet};
use common::*;

#[test]
fn cancel_stops_a_running_cell() {
    let mut s = session_with(quick(60_000));
    let c = s.canceller();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c.cancel();
    });
    let t = Instant::now();
    let cell = s.exec("while True:\n    pass").unwrap();
    assert_eq!(cell.trapped, Some(Limit::Cancelled));
    assert_eq!(cell.status, Status::Trapped);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn cancel_stops_a_sleeping_cell() {
    let mut s = session_with(quick(60_000));
    let c = s.canceller();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c.cancel();
    });
    let cell = s.exec("import time\ntime.sleep(600)").unwrap();
    assert_eq!(cell.trapped, Some(Limit::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_run_concurrently() {
    let sandbox = sandbox();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let sandbox = sandbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = sandbox.session(Limits::default(), ToolSet::new()).unwrap();
            s.exec_async(&format!("n = {i}")).await.unwrap();
            let cell = s.exec_async("import time\ntime.sleep(0.2)\nsum(range(n * 1000))").await.unwrap();
            assert_eq!(cell.status, Status::Ok, "{}", cell.stderr);
            cell.stdout.trim().parse::<u64>().unwrap()
        }));
    }
    let t = Instant::now();
    for (i, task) in tasks.into_iter().enumerate() {
        let n = i as u64 * 1000;
        assert_eq!(task.await.unwrap(), n * (n.saturating_sub(1)) / 2);
    }
    // Sixteen 200 ms sleeps in parallel, not in series.
    assert!(t.elapsed() < Duration::from_millis(16 * 200), "took {:?}", t.elapsed());
}

#[tokio::test]
async fn dropping_an_async_cell_cancels_it() {
    let mut s = session_with(quick(60_000));
    let r = tokio::time::timeout(Duration::from_millis(200), s.exec_async("while True:\n    pass")).await;
    assert!(r.is_err(), "the cell should still be running");
    assert!(s.exec_async("1").await.is_err(), "an abandoned session takes no more cells");
}
