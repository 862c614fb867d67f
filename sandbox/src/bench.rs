//! The sandbox's own costs (`autodidact sandbox bench`): loading the cached module, starting a
//! fresh session through its first cell, one trivial cell on a guest thread and from an
//! ordinary thread (with the hand-off), and the memory of 100 idle sessions. Medians.

use std::time::Instant;

use serde_json::{Value, json};

use crate::{Error, Limits, Sandbox, SandboxConfig, ToolSet, on_guest_thread};

/// Measures `sandbox` (opened from `config`). The report's keys: `fresh_session_ms`,
/// `cell_overhead_us`, `cell_overhead_handoff_us`, `module_load_ms`, `sessions_100_rss_mb`,
/// `sessions_100_added_rss_mb`.
pub fn measure(sandbox: &Sandbox, config: &SandboxConfig) -> Result<Value, Error> {
    // Module load: deserialize the cached module in a fresh engine, several times.
    let loads: Vec<f64> = (0..5).map(|_| Sandbox::open_uncached_for_bench(config).map(|s| s.module_load_time().as_secs_f64() * 1e3)).collect::<Result<_, _>>()?;
    let sb = sandbox.clone();
    let (fresh, cells) = on_guest_thread(move || -> Result<_, Error> {
        // A fresh session, started and through its first trivial cell.
        let mut fresh = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let mut s = sb.session(Limits::default(), ToolSet::new())?;
            s.exec("pass")?;
            fresh.push(t.elapsed().as_secs_f64() * 1e3);
            drop(s);
        }
        let mut s = sb.session(Limits::default(), ToolSet::new())?;
        s.exec("pass")?;
        let mut cells = Vec::new();
        for _ in 0..500 {
            let t = Instant::now();
            s.exec("pass")?;
            cells.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok((fresh, cells))
    })?;
    // The same trivial cell from an ordinary thread: includes the hand-off to a guest thread.
    let mut s = sandbox.session(Limits::default(), ToolSet::new())?;
    let mut handoff = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        s.exec("pass")?;
        handoff.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let before = rss_mb();
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut s = sandbox.session(Limits::default(), ToolSet::new())?;
        s.exec("x = 1")?;
        idle.push(s);
    }
    let with_100 = rss_mb();
    drop(idle);
    Ok(json!({
        "fresh_session_ms": median(fresh),
        "cell_overhead_us": median(cells),
        "cell_overhead_handoff_us": median(handoff),
        "module_load_ms": median(loads),
        "sessions_100_rss_mb": with_100,
        "sessions_100_added_rss_mb": with_100 - before,
    }))
}

/// This process's resident memory (MiB), from `/proc/self/status`.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
}

/// The median (the mean of the two middle values for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}
