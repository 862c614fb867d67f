//! `autodidact report`: the self-contained HTML report of what memory holds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use autodidact_memory::{Store, default_url, home_dir};
use clap::Args;

/// `autodidact report` arguments.
#[derive(Args)]
#[command(after_help = "One self-contained HTML page (inline SVG plots, no scripts, no network): \
    eval results by adapter and suite, pass@k tables, learning curves (reward per training step), \
    LADDER tree statistics, and the latest runs with their transcripts. Open it in any browser.")]
pub struct ReportArgs {
    /// Where to write the page (default: $AUTODIDACT_HOME/report.html).
    #[arg(long, value_name = "FILE.html")]
    out: Option<PathBuf>,
    /// Database URL (sqlite://PATH or postgres://...).
    #[arg(long, env = "AUTODIDACT_DB")]
    db: Option<String>,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let store = Store::open(&args.db.unwrap_or_else(default_url)).await?;
        let html = autodidact_evals::report::render(&store).await?;
        let out = args.out.unwrap_or_else(|| home_dir().join("report.html"));
        let tmp = out.with_extension("html.tmp");
        std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &out).with_context(|| format!("cannot write {}", out.display()))?;
        println!("{}", out.display());
        Ok(ExitCode::SUCCESS)
    })
}
