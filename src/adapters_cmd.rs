//! `autodidact adapters`: the adapter registry (`autodidact_nightly::adapters`). Every promoted
//! adapter holds all updates promoted before it merged into one file (one generation), so
//! rolling back to any earlier generation is promoting it again.

use std::process::ExitCode;

use anyhow::Result;
use autodidact_memory::{Adapter, Store, iso8601};
use autodidact_nightly::adapters::{self, Rollback, generation};
use clap::Subcommand;

/// `autodidact adapters` subcommands.
#[derive(Subcommand)]
pub enum AdaptersCmd {
    /// Every registered adapter, newest first: generation, status, parent, file.
    List {
        /// The trajectory store (default: $AUTODIDACT_DB, or sqlite://$AUTODIDACT_HOME/memory.db).
        #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
        db: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make ID (or a unique prefix of it) the promoted adapter; the one promoted before is
    /// retired. A running `serve` loads it after its next scheduled night, or when restarted.
    Promote {
        /// The adapter id or a unique prefix.
        id: String,
        #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
        db: Option<String>,
    },
    /// Go back one generation: promote the promoted adapter's parent, or serve the base model
    /// when it has none.
    Rollback {
        #[arg(long, env = "AUTODIDACT_DB", value_name = "URL")]
        db: Option<String>,
    },
}

pub fn run(cmd: AdaptersCmd) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let db = match &cmd {
            AdaptersCmd::List { db, .. } | AdaptersCmd::Promote { db, .. } | AdaptersCmd::Rollback { db } => db.clone(),
        };
        let store = Store::open(&db.unwrap_or_else(autodidact_memory::default_url)).await?;
        match cmd {
            AdaptersCmd::List { json, .. } => list(&store.adapters().await?, json),
            AdaptersCmd::Promote { id, .. } => {
                let a = adapters::promote(&store, &id).await?;
                println!("promoted {} (generation {})", a.id, generation(&a));
            }
            AdaptersCmd::Rollback { .. } => match adapters::rollback(&store).await? {
                Rollback { from, to: Some(parent) } => println!("rolled back from {from} to {parent}"),
                Rollback { from, to: None } => println!("rolled back from {from} to the base model"),
            },
        }
        store.close().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn list(adapters: &[Adapter], json: bool) {
    let mut sorted: Vec<&Adapter> = adapters.iter().collect();
    sorted.sort_by_key(|a| std::cmp::Reverse(a.created_ms));
    if json {
        for a in sorted {
            println!("{}", serde_json::json!({"id": a.id, "generation": a.spec.metrics["generation"], "status": a.status.as_str(), "parent_id": a.spec.parent_id, "path": a.spec.path, "sha256": a.spec.sha256, "created_ms": a.created_ms, "night": a.spec.metrics["night"]}));
        }
        return;
    }
    if sorted.is_empty() {
        println!("no adapters yet: `autodidact nightly` or `autodidact train` registers them");
        return;
    }
    println!("{:<36}  {:>3}  {:<9}  {:<24}  {:<36}  file", "id", "gen", "status", "created", "parent");
    for a in sorted {
        println!("{:<36}  {:>3}  {:<9}  {:<24}  {:<36}  {}", a.id, generation(a), a.status.as_str(), iso8601(a.created_ms), a.spec.parent_id.as_deref().unwrap_or("-"), a.spec.path);
    }
}
