//! The trajectory viewer: server-rendered HTML (minijinja templates in `templates/`) with a
//! little JS for live updates.
//!
//! - `/` lists the server's state, the agents, the newest runs (`?agent=NAME` filters) and the
//!   nightly reports;
//! - `/view/runs/{id}` shows one run's transcript: model turns, code cells with their output,
//!   sub-calls and tool calls, the tree of sub-runs `rlm_query` started, tokens and timings;
//!   while the run is live, new steps arrive over `/runs/{id}/events`;
//! - `/reports/{file}` serves the HTML reports in `$AUTODIDACT_HOME` (`report.html`) and
//!   `$AUTODIDACT_HOME/reports/`, by plain file name only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::Environment;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, App, api};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("index.html", include_str!("templates/index.html")),
        ("run.html", include_str!("templates/run.html")),
        ("step.html", include_str!("templates/step.html")),
    ] {
        env.add_template(name, text).expect("the viewer's templates parse");
    }
    env.add_filter("truncate", |s: String, n: usize| -> String {
        if s.chars().count() <= n { s } else { format!("{}…", s.chars().take(n).collect::<String>()) }
    });
    env
});

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/", get(index)).route("/view/runs/{id}", get(run_page)).route("/reports/{file}", get(report))
}

fn render(name: &str, ctx: Value) -> Result<Html<String>, ApiError> {
    let t = TEMPLATES.get_template(name).map_err(ApiError::internal)?;
    t.render(minijinja::value::Serde(&ctx)).map(Html).map_err(|e| ApiError::internal(format!("rendering {name}: {e:#}")))
}

/// Where reports are looked for: `$AUTODIDACT_HOME/reports/` (and `report.html` beside it).
fn reports_dir() -> PathBuf {
    autodidact_memory::home_dir().join("reports")
}

fn reports() -> Vec<Value> {
    let mut found = Vec::new();
    let home = autodidact_memory::home_dir();
    let mut consider = |p: PathBuf| {
        if let (Some(name), Ok(meta)) = (p.file_name().and_then(|n| n.to_str()).map(str::to_owned), std::fs::metadata(&p))
            && meta.is_file()
            && name.ends_with(".html")
        {
            let ms = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            found.push((ms, name));
        }
    };
    consider(home.join("report.html"));
    if let Ok(rd) = std::fs::read_dir(reports_dir()) {
        for e in rd.flatten() {
            consider(e.path());
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().map(|(s, name)| json!({"name": name, "modified": format!("{} s since the epoch", s)})).collect()
}

#[derive(Deserialize)]
struct IndexQuery {
    #[serde(default)]
    agent: Option<String>,
}

async fn index(State(app): State<Arc<App>>, Query(q): Query<IndexQuery>) -> Result<Response, ApiError> {
    let agents: Vec<Value> = app.store.agents().await?.iter().map(|a| json!({"name": a.name, "model": a.model, "policy": a.policy, "tools": a.tools})).collect();
    let runs: Vec<Value> = app
        .store
        .submissions(q.agent.as_deref(), 200)
        .await?
        .iter()
        .map(|s| json!({"id": s.id, "agent": s.agent, "task": s.task, "status": s.status.as_str(), "answer": s.answer, "created_ms": s.created_ms}))
        .collect();
    let status = api::status_value(&app).await?;
    let ctx = json!({"status": status, "agents": agents, "runs": runs, "agent": q.agent, "reports": reports(), "reports_dir": reports_dir().display().to_string()});
    Ok(render("index.html", ctx)?.into_response())
}

async fn run_page(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let sub = app.store.submission(&id).await?.ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))?;
    let run = api::run_json(&app, &sub).await?;
    let tree = api::tree(&app, &sub, &HashMap::new()).await?;
    Ok(render("run.html", json!({"run": run, "tree": tree}))?.into_response())
}

async fn report(Path(file): Path<String>) -> Result<Response, ApiError> {
    // A plain file name: no separators, no dot-dot, only .html.
    let ok = file.ends_with(".html") && !file.starts_with('.') && file.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return Err(ApiError::bad("report names are plain .html file names"));
    }
    let home = autodidact_memory::home_dir();
    for p in [reports_dir().join(&file), home.join(&file)] {
        if p.is_file() && (p.parent() == Some(reports_dir().as_path()) || file == "report.html") {
            let text = std::fs::read_to_string(&p).map_err(ApiError::internal)?;
            return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response());
        }
    }
    Err(ApiError::not_found(format!("no report {file:?} in {}", reports_dir().display())))
}
