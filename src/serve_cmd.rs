//! `autodidact serve`: the long-lived agent service (the server itself is in `serve/`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use autodidact_serve::{self as serve, Config, Overrides};

/// `autodidact serve` arguments.
#[derive(Args)]
#[command(after_long_help = SERVE_HELP)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8420, loopback). A non-loopback address needs
    /// AUTODIDACT_TOKEN.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// The default policy TOML for agents that bring none (default: the built-in preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The config file (TOML; see below). Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The served model: `smollm2`, `path/to/file.gguf`, `openai:URL#MODEL` or `scripted:PATH`.
    #[arg(long)]
    model: Option<String>,
    /// Runs executing at once; later submissions wait in the queue.
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
}

const SERVE_HELP: &str = "\
ENDPOINTS (all JSON; the full spec is GET /openapi.json)
  PUT    /agents/NAME            create or update an agent {model, policy (TOML), tools}
  GET    /agents[/NAME]          list or read agents;  DELETE /agents/NAME
  POST   /agents/NAME/runs       submit {task, context}: 202 with the run id, at once
  GET    /runs/ID                status and answer;  GET /runs?status=&agent=&limit=
  GET    /runs/ID/events         server-sent events: status, step (turns, cells, sub-calls), done
  GET    /runs/ID/transcript     the run tree with every step
  POST   /runs/ID/cancel         cancel a queued or running run
  POST   /runs/ID/requeue        re-queue an interrupted, failed or cancelled run
  POST   /nightly                start the configured nightly now
  POST   /v1/chat/completions    OpenAI-compatible (stream or not), the promoted model
  GET    /v1/models              OpenAI-compatible model list
  GET    /status                 model, adapter, queue counts, nightly
  GET    /                       the trajectory viewer (runs, transcripts, nightly reports)

DURABILITY
  A submission is committed to memory before its 202, so it survives kill -9. Runs in flight
  when the server stopped are marked `interrupted` at the next start; POST /runs/ID/requeue
  (or `requeue_interrupted = true`) runs them again. SIGTERM or Ctrl-C drains: no new runs
  start, running ones get drain_seconds to finish and are then marked interrupted; queued
  runs stay queued for the next start.

SECURITY
  Loopback by default. Binding another address requires AUTODIDACT_TOKEN (16+ characters);
  when it is set, every request needs `Authorization: Bearer <token>` or gets 401. Bodies,
  contexts and max_tokens are limited; agents may only use the served model and the config's
  `models`, and only the server's tools.

CONFIG FILE (--config, TOML; every key optional)
  bind = \"127.0.0.1:8420\"
  db = \"sqlite:///path/memory.db\"   # default: $AUTODIDACT_DB or $AUTODIDACT_HOME/memory.db
  model = \"smollm2\"
  models = []                      # other model specs agents may name
  policy = \"policy.toml\"          # relative to the config file
  tools = \"tools.py\"              # Python host tools agents may enable
  max_concurrent_runs = 2
  max_queued = 10000
  max_body_bytes = 1048576
  max_context_chars = 200000
  max_chat_tokens = 1024
  drain_seconds = 30
  requeue_interrupted = false
  [schedule]
  nightly = \"0 3 * * *\"           # cron in UTC (min hour dom month dow), or \"@every 6h\"
  command = [\"...\"]               # default: this binary `nightly [--policy P] --json`
  The nightly runs as a child process while serving goes on; when it exits 0, the adapter
  promoted in memory is hot-swapped into the served model without dropping requests.

The store is $AUTODIDACT_DB or sqlite://$AUTODIDACT_HOME/memory.db.";

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let flags = Overrides { bind: args.bind, model: args.model, policy: args.policy, max_concurrent_runs: args.max_concurrent };
    let config = Config::load(args.config.as_deref(), flags, std::env::var("AUTODIDACT_TOKEN").ok())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let result = rt.block_on(async move {
        let server = serve::start(config, None).await?;
        println!("listening on http://{}", server.addr);
        let app = server.app.clone();
        tokio::spawn(async move {
            crate::stop_signal("serve: cannot listen for SIGTERM; only Ctrl-C stops the server gracefully").await;
            eprintln!("serve: shutting down: draining running runs");
            app.shutdown.send_replace(true);
            app.queue.wake();
        });
        server.wait().await?;
        eprintln!("serve: stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Sandbox cells abandoned by aborted runs finish on their own threads; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
