//! The scheduled nightly: a cron-style clock that starts `autodidact nightly` as a child
//! process while serving goes on, and the hot swap of the adapter it promotes.
//!
//! The schedule is a five-field cron line read in UTC (`minute hour day-of-month month
//! day-of-week`; each field `*`, `N`, `A-B`, `*/S`, `A-B/S` or a comma list of those; day of
//! week 0-6 from Sunday, 7 is Sunday too), or `@every 30m` (`s`, `m`, `h` suffixes). As in
//! cron, when both day fields are restricted a day matching either is enough.
//!
//! When the child exits, [`swap_promoted`] reads [`Store::promoted_adapter`] and, if it changed,
//! loads it into the served model and activates it; calls already running finish with the
//! adapter they started with, so no request is dropped. The old adapter is then freed.

use std::sync::Arc;
use std::time::Duration;

use autodidact_memory::Store;
use autodidact_runtime::model::AdapterId;
use serde_json::{Value, json};

use super::{App, now_ms};

/// When the nightly runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Cron {
    /// A fixed period (`@every 30m`).
    Every(Duration),
    /// A cron line.
    Fields {
        /// Allowed minutes (0-59).
        minute: Vec<bool>,
        /// Allowed hours (0-23).
        hour: Vec<bool>,
        /// Allowed days of the month (1-31).
        dom: Vec<bool>,
        /// Allowed months (1-12).
        month: Vec<bool>,
        /// Allowed days of the week (0-6, Sunday 0).
        dow: Vec<bool>,
        /// Whether the day-of-month field was `*`.
        dom_any: bool,
        /// Whether the day-of-week field was `*`.
        dow_any: bool,
    },
}

fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; hi as usize + 1];
    let num = |s: &str| -> Result<u32, String> {
        let v: u32 = s.parse().map_err(|_| format!("{name}: {s:?} is not a number"))?;
        if v < lo || v > hi {
            return Err(format!("{name}: {v} is outside {lo}-{hi}"));
        }
        Ok(v)
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s.parse().map_err(|_| format!("{name}: step {s:?} is not a number"))?;
                if s == 0 {
                    return Err(format!("{name}: a step of 0"));
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("{name}: the range {a}-{b} is backwards"));
            }
            (a, b)
        } else {
            let a = num(range)?;
            (a, if step > 1 { hi } else { a })
        };
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, text == "*"))
}

impl Cron {
    /// Parses a cron line or `@every DURATION`.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        if let Some(d) = text.strip_prefix("@every") {
            let d = d.trim();
            let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
            let n: u64 = n.parse().map_err(|_| format!("@every needs a duration like 30m, not {d:?}"))?;
            let secs = match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                _ => return Err(format!("@every: unit {unit:?} is not s, m or h")),
            };
            if secs == 0 {
                return Err("@every needs a positive duration".into());
            }
            return Ok(Cron::Every(Duration::from_secs(secs)));
        }
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected 5 fields (minute hour day-of-month month day-of-week), found {}", f.len()));
        }
        let (minute, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_any) = field(f[2], 1, 31, "day of month")?;
        let (month, _) = field(f[3], 1, 12, "month")?;
        let (mut dow, dow_any) = field(f[4], 0, 7, "day of week")?;
        if dow[7] {
            dow[0] = true;
        }
        dow.truncate(7);
        Ok(Cron::Fields { minute, hour, dom, month, dow, dom_any, dow_any })
    }

    /// The first time strictly after `after` (seconds since the Unix epoch, UTC) it fires.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            Cron::Every(d) => Some(after + d.as_secs() as i64),
            Cron::Fields { minute, hour, dom, month, dow, dom_any, dow_any } => {
                let mut t = (after / 60 + 1) * 60;
                // Five years of minutes covers every satisfiable line (29 February included).
                for _ in 0..(5 * 366 * 24 * 60) {
                    let days = t.div_euclid(86_400);
                    let (_, m, d) = civil_from_days(days);
                    let wd = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday.
                    let day_ok = match (dom_any, dow_any) {
                        (true, true) => true,
                        (false, true) => dom[d as usize],
                        (true, false) => dow[wd],
                        (false, false) => dom[d as usize] || dow[wd],
                    };
                    if !month[m as usize] || !day_ok {
                        t = (days + 1) * 86_400;
                        continue;
                    }
                    let secs = t.rem_euclid(86_400);
                    let (h, mi) = ((secs / 3600) as usize, ((secs % 3600) / 60) as usize);
                    if !hour[h] {
                        t = days * 86_400 + (h as i64 + 1) * 3600;
                        continue;
                    }
                    if minute[mi] {
                        return Some(t);
                    }
                    t += 60;
                }
                None
            }
        }
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What the viewer and `/status` show about the nightly and the adapter.
#[derive(Debug, Default, Clone)]
pub struct NightlyState {
    /// Whether a nightly child is running now.
    pub running: bool,
    /// How many were started.
    pub started: u64,
    /// The last one's start and end (ms), exit code and the tail of its output.
    pub last: Option<Value>,
    /// The next scheduled start (ms).
    pub next_ms: Option<i64>,
}

/// The adapter the served model runs with.
#[derive(Debug, Default)]
pub struct AdapterState {
    /// Its id in memory and its handle in the model.
    pub active: Option<(String, AdapterId)>,
    /// When it was swapped in, and the last swap error.
    pub swapped_ms: Option<i64>,
    /// What went wrong at the last swap.
    pub error: Option<String>,
    /// How many swaps succeeded.
    pub swaps: u64,
}

impl AdapterState {
    /// For `/status`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.active.as_ref().map(|a| a.0.clone()),
            "swapped_ms": self.swapped_ms,
            "swaps": self.swaps,
            "error": self.error,
        })
    }
}

/// Loads the promoted adapter into the served model if it is not the active one. Returns the
/// active adapter's id afterwards.
pub async fn swap_promoted(app: &App) -> crate::Result<Option<String>> {
    let promoted = app.store.promoted_adapter().await?;
    let mut state = app.adapter.lock().await;
    let current = state.active.as_ref().map(|a| a.0.clone());
    if promoted.as_ref().map(|a| &a.id) == current.as_ref() {
        return Ok(current);
    }
    let result: crate::Result<Option<(String, AdapterId)>> = async {
        match &promoted {
            Some(a) => {
                autodidact_runtime::model::check_digest(std::path::Path::new(&a.spec.path), &a.spec.sha256)
                    .map_err(|why| crate::Error::Invalid(format!("the promoted adapter {} ({}): {why}", a.id, a.spec.path)))?;
                let handle = app.served.load_adapter(std::path::Path::new(&a.spec.path)).await?;
                app.served.set_adapter(Some((handle, 1.0))).await?;
                Ok(Some((a.id.clone(), handle)))
            }
            None => {
                app.served.set_adapter(None).await?;
                Ok(None)
            }
        }
    }
    .await;
    match result {
        Ok(next) => {
            if let Some((_, old)) = state.active.take() {
                // The old adapter is no longer active: free it (llama.cpp adapters leak otherwise).
                if let Err(e) = app.served.unload_adapter(old).await {
                    eprintln!("serve: freeing the previous adapter failed: {e}");
                }
            }
            state.active = next;
            state.swapped_ms = Some(now_ms());
            state.error = None;
            state.swaps += 1;
            let id = state.active.as_ref().map(|a| a.0.clone());
            eprintln!("serve: now serving adapter {}", id.as_deref().unwrap_or("(none: the base model)"));
            Ok(id)
        }
        Err(e) => {
            state.error = Some(format!("{e:#}"));
            Err(e)
        }
    }
}

/// Runs the nightly command once, unless one is running; returns false if one was.
pub fn start_nightly(app: &Arc<App>) -> bool {
    let Some(schedule) = app.config.schedule.clone() else { return false };
    {
        let mut n = app.nightly.lock().expect("nightly state");
        if n.running {
            return false;
        }
        n.running = true;
        n.started += 1;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let started = now_ms();
        let mut cmd = tokio::process::Command::new(&schedule.command[0]);
        cmd.args(&schedule.command[1..]).stdin(std::process::Stdio::null()).kill_on_drop(true);
        let mut shutdown = app.shutdown.subscribe();
        let out = tokio::select! {
            out = cmd.output() => out,
            _ = shutdown.wait_for(|s| *s) => Err(std::io::Error::other("the server shut down; the nightly was stopped")),
        };
        let (code, stdout, stderr) = match out {
            Ok(o) => (o.status.code(), tail(&o.stdout), tail(&o.stderr)),
            Err(e) => (None, String::new(), format!("cannot run {:?}: {e}", schedule.command)),
        };
        let swap = if code == Some(0) {
            match swap_promoted(&app).await {
                Ok(id) => json!({"ok": true, "adapter": id}),
                Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
            }
        } else {
            json!({"ok": false, "error": "the nightly did not succeed; the adapter was left as it was"})
        };
        eprintln!("serve: nightly finished with exit code {code:?}");
        let mut n = app.nightly.lock().expect("nightly state");
        n.running = false;
        n.last = Some(json!({
            "started_ms": started,
            "finished_ms": now_ms(),
            "exit_code": code,
            "stdout_tail": stdout,
            "stderr_tail": stderr,
            "swap": swap,
        }));
    });
    true
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(4000)).collect()
}

/// The clock: sleeps until the next firing, starts the nightly, repeats until shutdown.
pub async fn clock(app: Arc<App>) {
    let Some(schedule) = app.config.schedule.clone() else { return };
    let mut shutdown = app.shutdown.subscribe();
    loop {
        let now = now_ms();
        let Some(next) = schedule.cron.next_after(now / 1000) else {
            eprintln!("serve: the schedule {:?} never fires", schedule.spec);
            return;
        };
        app.nightly.lock().expect("nightly state").next_ms = Some(next * 1000);
        let wait = Duration::from_millis((next * 1000 - now).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !start_nightly(&app) {
            eprintln!("serve: the nightly is still running; this start is skipped");
        }
    }
}

/// Applies the promoted adapter at start-up; a failure is reported, not fatal.
pub async fn initial_swap(app: &App, store: &Store) {
    match store.promoted_adapter().await {
        Ok(None) => {}
        Ok(Some(_)) => {
            if let Err(e) = swap_promoted(app).await {
                eprintln!("warning: the promoted adapter could not be loaded; serving the base model: {e:#}");
            }
        }
        Err(e) => eprintln!("warning: cannot read the promoted adapter: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        // Days from civil, the inverse of civil_from_days, by search (tests only).
        let mut days = (y - 1970) * 365 + (y - 1969) / 4;
        while civil_from_days(days) != (y, mo, d) {
            days += 1;
        }
        days * 86_400 + h * 3600 + mi * 60
    }

    #[test]
    fn cron_lines_fire_when_cron_would() {
        let c = Cron::parse("0 3 * * *").unwrap();
        assert_eq!(c.next_after(at(2026, 11, 29, 13, 5)), Some(at(2026, 11, 30, 3, 0)));
        let c = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(at(2026, 11, 29, 13, 5)), Some(at(2026, 11, 29, 13, 15)));
        // 2026-11-29 is a Sunday; the next Monday 00:30 is the 30th.
        let c = Cron::parse("30 0 * * 1").unwrap();
        assert_eq!(c.next_after(at(2026, 11, 29, 13, 5)), Some(at(2026, 11, 30, 0, 30)));
        let c = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(c.next_after(at(2026, 3, 1, 0, 0)), Some(at(2028, 2, 29, 0, 0)));
        assert_eq!(Cron::parse("@every 2s").unwrap().next_after(100), Some(102));
    }

    #[test]
    fn bad_cron_lines_say_why() {
        assert!(Cron::parse("0 3 * *").unwrap_err().contains("5 fields"));
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("outside 0-59"));
        assert!(Cron::parse("@every 5y").unwrap_err().contains("unit"));
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(0), None);
    }
}
