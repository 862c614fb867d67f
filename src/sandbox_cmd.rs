//! `autodidact sandbox ...`: prepare the module, run files, an interactive REPL, benchmarks.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use autodidact_policies::Policy;
use autodidact_sandbox::{Cell, Limits, Sandbox, SandboxConfig, Status, ToolSet};
use clap::{Args, Subcommand};
use serde_json::json;

/// Sandbox subcommands.
#[derive(Subcommand)]
pub enum SandboxCmd {
    /// Compile python.wasm for this machine and cache it (minutes, once; the bootstrap runs it).
    Prepare {
        /// Also compile the fuel-metering variant, used when a policy sets `sandbox.fuel`.
        #[arg(long)]
        fuel: bool,
    },
    /// Run a Python file (or `-` for stdin) in a fresh session and print its output.
    ///
    /// Exits 0 whenever the host worked, even if the Python code failed; the cell's status
    /// says how the code ended.
    Exec(ExecArgs),
    /// An interactive Python REPL inside the sandbox, for people.
    Repl(LimitArgs),
    /// Measure session start, per-cell overhead, module load time and idle-session memory.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Limits, from a policy file with command-line overrides.
#[derive(Args, Clone)]
pub struct LimitArgs {
    /// A policy TOML file; its `[sandbox]` section sets the limits (default: the built-in preset).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Override `sandbox.deadline_ms`: the wall-clock deadline of one cell.
    #[arg(long, value_name = "N")]
    deadline_ms: Option<u64>,
    /// Override `sandbox.memory_mb`: the guest's memory cap.
    #[arg(long, value_name = "N")]
    memory_mb: Option<u64>,
}

/// `sandbox exec` arguments.
#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    limits: LimitArgs,
    /// Print one JSON object: status, stdout, stderr, truncated, trapped, duration_ms.
    #[arg(long)]
    json: bool,
    /// The Python file to run, or `-` to read it from stdin.
    file: String,
}

pub fn run(cmd: SandboxCmd) -> Result<ExitCode> {
    match cmd {
        SandboxCmd::Prepare { fuel } => prepare(fuel),
        SandboxCmd::Exec(args) => exec(args),
        SandboxCmd::Repl(limits) => repl(limits),
        SandboxCmd::Bench { json } => bench(json),
    }
}

impl LimitArgs {
    fn resolve(&self) -> Result<(Limits, bool)> {
        let policy = match &self.policy {
            Some(p) => Policy::load(p)?,
            None => Policy::preset_default(),
        };
        let mut limits = autodidact_runtime::sandbox_limits(&policy);
        if let Some(ms) = self.deadline_ms {
            anyhow::ensure!(ms > 0, "--deadline-ms must be greater than 0");
            limits.deadline = Duration::from_millis(ms);
        }
        if let Some(mb) = self.memory_mb {
            anyhow::ensure!((1..=4096).contains(&mb), "--memory-mb must be between 1 and 4096");
            limits.memory_bytes = mb << 20;
        }
        let fuel = limits.fuel.is_some();
        Ok((limits, fuel))
    }
}

fn open(fuel: bool) -> Result<Sandbox> {
    let mut config = SandboxConfig::from_env();
    config.fuel = fuel;
    if !config.cache_dir.exists() || Sandbox::prepare(&SandboxConfig { compile_if_missing: false, ..config.clone() }, |_| {}).is_err() {
        // Not compiled yet: say so, since it takes minutes.
        let spinner = spinner("compiling python.wasm for this machine (once; a few minutes)");
        let r = Sandbox::prepare(&config, |_| {});
        spinner.finish_and_clear();
        r?;
    }
    Ok(Sandbox::open(&config)?)
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn prepare(with_fuel: bool) -> Result<ExitCode> {
    let variants: &[bool] = if with_fuel { &[false, true] } else { &[false] };
    for &fuel in variants {
        let config = SandboxConfig { fuel, ..SandboxConfig::from_env() };
        let started = Instant::now();
        let label = if fuel { "fuel-metering module" } else { "module" };
        let pb = spinner("checking the module cache");
        let path = Sandbox::prepare(&config, |m| pb.set_message(format!("{label}: {m}")));
        pb.finish_and_clear();
        let path = path?;
        eprintln!("sandbox {label} ready: {} ({:.1}s)", path.display(), started.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}

fn read_source(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(Path::new(file)).with_context(|| format!("cannot read {file}"))
}

/// The JSON shape of a cell, as `sandbox exec --json` prints it.
pub fn cell_json(cell: &Cell) -> serde_json::Value {
    let mut v = json!({
        "status": cell.status.name(),
        "stdout": cell.stdout,
        "stderr": cell.stderr,
        "truncated": cell.truncated,
        "trapped": cell.trapped.map(|l| l.name()),
        "limits_hit": cell.limits_hit.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "duration_ms": cell.duration.as_secs_f64() * 1e3,
    });
    if let Status::Exited(code) = cell.status {
        v["exit_code"] = json!(code);
    }
    v
}

fn exec(args: ExecArgs) -> Result<ExitCode> {
    let code = read_source(&args.file)?;
    let (limits, fuel) = args.limits.resolve()?;
    let sandbox = open(fuel)?;
    let mut session = sandbox.session(limits, ToolSet::new())?;
    let cell = session.exec(&code)?;
    if args.json {
        println!("{}", cell_json(&cell));
    } else {
        print!("{}", cell.stdout);
        eprint!("{}", cell.stderr);
        std::io::stdout().flush()?;
        if cell.status != Status::Ok {
            eprintln!("[{}{}]", cell.status.name(), cell.trapped.map(|l| format!(": {l}")).unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn repl(limits: LimitArgs) -> Result<ExitCode> {
    let (limits, fuel) = limits.resolve()?;
    let sandbox = open(fuel)?;
    let mut session = sandbox.session(limits.clone(), ToolSet::new())?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("autodidact sandbox: CPython 3.15 on WASI. Ctrl-D to quit; a blank line ends a block.");
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let mut block = String::new();
        let mut prompt = ">>> ";
        loop {
            if interactive {
                eprint!("{prompt}");
            }
            let Some(line) = lines.next() else {
                if !block.is_empty() {
                    break;
                }
                return Ok(ExitCode::SUCCESS);
            };
            let line = line?;
            let opens_block = line.trim_end().ends_with(':') || line.starts_with([' ', '\t', '@']);
            if block.is_empty() && !opens_block {
                block = line;
                break;
            }
            if line.trim().is_empty() {
                break;
            }
            block.push_str(&line);
            block.push('\n');
            prompt = "... ";
        }
        if block.trim().is_empty() {
            continue;
        }
        let cell = session.exec(&block)?;
        print!("{}", cell.stdout);
        std::io::stdout().flush()?;
        eprint!("{}", cell.stderr);
        if session.is_closed() {
            eprintln!("[session over ({}); starting a fresh one]", cell.status.name());
            session = sandbox.session(limits.clone(), ToolSet::new())?;
        }
    }
}

fn bench(as_json: bool) -> Result<ExitCode> {
    let result = autodidact_sandbox::bench::measure(&open(false)?, &SandboxConfig::from_env())?;
    if as_json {
        println!("{result}");
    } else {
        for (k, v) in result.as_object().expect("object") {
            println!("{k:<28} {:.3}", v.as_f64().unwrap_or(0.0));
        }
    }
    Ok(ExitCode::SUCCESS)
}
