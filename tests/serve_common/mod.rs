//! Shared by the `serve_*` tests: start `autodidact serve` on a free loopback port with its
//! own store, talk to it over HTTP, read its server-sent events.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autodidact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A reply that answers through the REPL.
pub fn fin(answer: &str) -> String {
    format!("```repl\nFINAL({answer:?})\n```")
}

/// Writes scripted replies (separated by `---` lines) and returns the `--model` argument.
pub fn script(dir: &Path, name: &str, replies: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, replies.join("\n---\n")).unwrap();
    format!("scripted:{}", path.display())
}

/// A running `autodidact serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// Starts the server with `args` (plus `--bind 127.0.0.1:0` unless given) on the store
    /// `db`, and waits for it to listen.
    pub fn start(dir: &Path, db: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let log = dir.join(format!("serve-{}.log", Instant::now().elapsed().as_nanos() ^ rand_tag()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autodidact"));
        cmd.arg("serve");
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        cmd.args(args).env("AUTODIDACT_DB", db).env_remove("AUTODIDACT_TOKEN");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap()).spawn().expect("autodidact serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("the server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        let base = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_owned();
        Server { child, base, log }
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a signal (`-9`, `-TERM`) to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the process to exit, at most `limit`; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not exit within {limit:?}: {}", self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A request's status and JSON body (every answer of the API is JSON).
pub async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("the request reaches the server");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
    (status, v)
}

/// Polls `GET /runs/{id}` until the run is final.
pub async fn wait_final(c: &reqwest::Client, s: &Server, id: &str, limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let (code, v) = call(c.get(s.url(&format!("/runs/{id}")))).await;
        assert_eq!(code, 200, "{v}");
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            return v;
        }
        assert!(t.elapsed() < limit, "run {id} did not finish in {limit:?}: {v}\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a server-sent event stream to its end: (event name, data) pairs.
pub async fn sse(c: &reqwest::Client, url: &str, limit: Duration) -> Vec<(String, String)> {
    let mut r = c.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut buf = String::new();
    let t = Instant::now();
    loop {
        let chunk = tokio::time::timeout(limit.saturating_sub(t.elapsed()), r.chunk()).await.expect("the event stream ended in time").unwrap();
        match chunk {
            Some(b) => buf.push_str(&String::from_utf8_lossy(&b)),
            None => break,
        }
    }
    let mut events = Vec::new();
    for block in buf.replace("\r\n", "\n").split("\n\n") {
        let mut name = "message".to_string();
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d).to_owned());
            }
        }
        if !data.is_empty() {
            events.push((name, data.join("\n")));
        }
    }
    events
}
