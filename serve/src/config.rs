//! The server's settings: the `--config` TOML file, overridden by command-line flags.
//!
//! ```toml
//! bind = "127.0.0.1:8420"        # a non-loopback address needs AUTODIDACT_TOKEN
//! db = "sqlite:///var/lib/autodidact/memory.db"   # default: $AUTODIDACT_DB or the home's
//! model = "smollm2"              # the served model (agents with no model use it)
//! models = ["openai:http://10.0.0.5:8080#qwen"]   # other models agents may name
//! policy = "policy.toml"         # the default policy (relative to this file)
//! tools = "tools.py"             # Python host tools agents may enable
//! max_concurrent_runs = 2        # runs executing at once; the rest wait in the queue
//! max_queued = 10000             # submissions waiting; beyond it POST .../runs gets 503
//! max_body_bytes = 1048576       # request bodies
//! max_context_chars = 200000     # task + context of a run, messages of a chat completion
//! max_chat_tokens = 1024         # the most max_tokens a chat completion may ask for
//! drain_seconds = 30             # on SIGTERM, how long running runs may take to finish
//! requeue_interrupted = false    # on start, put runs interrupted by a crash back in the queue
//!
//! [schedule]
//! nightly = "0 3 * * *"          # cron, UTC: minute hour day-of-month month day-of-week
//! # command = ["/usr/local/bin/autodidact", "nightly", "--json"]   # default: this binary
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use serde::Deserialize;

use super::schedule::Cron;

/// The default address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8420";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    db: Option<String>,
    model: Option<String>,
    models: Option<Vec<String>>,
    policy: Option<PathBuf>,
    tools: Option<PathBuf>,
    max_concurrent_runs: Option<usize>,
    max_queued: Option<usize>,
    max_body_bytes: Option<usize>,
    max_context_chars: Option<usize>,
    max_chat_tokens: Option<usize>,
    drain_seconds: Option<u64>,
    requeue_interrupted: Option<bool>,
    schedule: Option<FileSchedule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedule {
    nightly: String,
    command: Option<Vec<String>>,
}

/// The nightly schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// When to start it.
    pub cron: Cron,
    /// The text it was parsed from.
    pub spec: String,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// Everything the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub bind: SocketAddr,
    /// The store's URL (default: `$AUTODIDACT_DB` or `sqlite://$AUTODIDACT_HOME/memory.db`).
    pub db: String,
    /// The served model's spec.
    pub model: String,
    /// Other model specs agents may name (deny by default: none).
    pub models: Vec<String>,
    /// The default policy file (none: the built-in preset).
    pub policy: Option<PathBuf>,
    /// A Python tools file.
    pub tools: Option<PathBuf>,
    /// Runs executing at once.
    pub max_concurrent_runs: usize,
    /// Submissions waiting at most.
    pub max_queued: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest task + context, or chat messages, in characters.
    pub max_context_chars: usize,
    /// Largest `max_tokens` of a chat completion.
    pub max_chat_tokens: usize,
    /// How long SIGTERM waits for running runs.
    pub drain: Duration,
    /// Re-queue interrupted runs at start-up.
    pub requeue_interrupted: bool,
    /// The nightly schedule, if any.
    pub schedule: Option<Schedule>,
    /// The bearer token (from `AUTODIDACT_TOKEN`); required for non-loopback binds.
    pub token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND.parse().expect("a valid address"),
            db: autodidact_memory::default_url(),
            model: "smollm2".into(),
            models: Vec::new(),
            policy: None,
            tools: None,
            max_concurrent_runs: 2,
            max_queued: 10_000,
            max_body_bytes: 1 << 20,
            max_context_chars: 200_000,
            max_chat_tokens: 1024,
            drain: Duration::from_secs(30),
            requeue_interrupted: false,
            schedule: None,
            token: None,
        }
    }
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--model`.
    pub model: Option<String>,
    /// `--policy`.
    pub policy: Option<PathBuf>,
    /// `--max-concurrent`.
    pub max_concurrent_runs: Option<usize>,
}

impl Config {
    /// Reads `file` (if any), applies `flags` and the token from the environment, and checks
    /// the result.
    pub fn load(file: Option<&Path>, flags: Overrides, token: Option<String>) -> Result<Config> {
        let (fc, base) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|cause| Error::ReadConfig { path: path.to_path_buf(), cause })?;
                let fc: FileConfig = toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                (fc, path.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None => (FileConfig::default(), PathBuf::new()),
        };
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let d = Config::default();
        let bind_text = flags.bind.or(fc.bind).unwrap_or_else(|| DEFAULT_BIND.into());
        let bind: SocketAddr = bind_text.parse().map_err(|e| Error::Config(format!("--bind {bind_text:?} is not an address like 127.0.0.1:8420: {e}")))?;
        let policy = flags.policy.or(fc.policy.map(rel));
        let schedule = match fc.schedule {
            None => None,
            Some(s) => {
                let cron = Cron::parse(&s.nightly).map_err(|e| Error::Config(format!("[schedule] nightly = {:?}: {e}", s.nightly)))?;
                let command = match s.command {
                    Some(c) if c.is_empty() => return Err(bail("[schedule] command is an empty list")),
                    Some(c) => c,
                    None => {
                        let exe = std::env::current_exe().map_err(|e| Error::Config(format!("cannot find this program to start `nightly`: {e}")))?;
                        let mut c = vec![exe.display().to_string(), "nightly".into()];
                        if let Some(p) = &policy {
                            c.extend(["--policy".into(), p.display().to_string()]);
                        }
                        c.push("--json".into());
                        c
                    }
                };
                Some(Schedule { cron, spec: s.nightly, command })
            }
        };
        let token = token.filter(|t| !t.is_empty());
        let config = Config {
            bind,
            db: fc.db.unwrap_or(d.db),
            model: flags.model.or(fc.model).unwrap_or(d.model),
            models: fc.models.unwrap_or_default(),
            policy,
            tools: fc.tools.map(rel),
            max_concurrent_runs: flags.max_concurrent_runs.or(fc.max_concurrent_runs).unwrap_or(d.max_concurrent_runs),
            max_queued: fc.max_queued.unwrap_or(d.max_queued),
            max_body_bytes: fc.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_context_chars: fc.max_context_chars.unwrap_or(d.max_context_chars),
            max_chat_tokens: fc.max_chat_tokens.unwrap_or(d.max_chat_tokens),
            drain: fc.drain_seconds.map(Duration::from_secs).unwrap_or(d.drain),
            requeue_interrupted: fc.requeue_interrupted.unwrap_or(false),
            schedule,
            token,
        };
        config.check()?;
        Ok(config)
    }

    /// Refuses settings that would be unsafe or useless.
    pub fn check(&self) -> Result<()> {
        if self.max_concurrent_runs == 0 {
            return Err(bail("max_concurrent_runs must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(bail("max_body_bytes must be at least 1024"));
        }
        if self.max_chat_tokens == 0 || self.max_context_chars == 0 {
            return Err(bail("max_chat_tokens and max_context_chars must be at least 1"));
        }
        if !self.bind.ip().is_loopback() {
            match &self.token {
                None => {
                    return Err(Error::Config(format!(
                        "binding the non-loopback address {} needs a bearer token: set AUTODIDACT_TOKEN (16 characters or more); \
                         every request must then send `Authorization: Bearer <token>`",
                        self.bind
                    )));
                }
                Some(t) if t.chars().count() < 16 => return Err(bail("AUTODIDACT_TOKEN is too short: use 16 characters or more")),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// A configuration error with a fixed text.
fn bail(msg: &str) -> Error {
    Error::Config(msg.to_owned())
}
