//! The agent and run API, `/status` and `/openapi.json`.
//!
//! Every route listed in [`ROUTES`] is documented in `openapi.json`; a test checks both agree.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use autodidact_memory::{NewTask, Submission, SubmissionStatus};
use autodidact_policies::Policy;
use autodidact_runtime::model::ModelSpec;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, App, schedule};

/// The API's routes (method, path), as documented in `openapi.json` (checked by a unit test).
#[cfg_attr(not(test), allow(dead_code))]
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/status"),
    ("get", "/openapi.json"),
    ("get", "/agents"),
    ("get", "/agents/{name}"),
    ("put", "/agents/{name}"),
    ("delete", "/agents/{name}"),
    ("post", "/agents/{name}/runs"),
    ("get", "/agents/{name}/runs"),
    ("get", "/runs"),
    ("get", "/runs/{id}"),
    ("get", "/runs/{id}/events"),
    ("get", "/runs/{id}/transcript"),
    ("post", "/runs/{id}/cancel"),
    ("post", "/runs/{id}/requeue"),
    ("post", "/nightly"),
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
];

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

type AppState = State<Arc<App>>;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/status", get(status))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/agents", get(list_agents))
        .route("/agents/{name}", get(get_agent).put(put_agent).delete(delete_agent))
        .route("/agents/{name}/runs", post(submit).get(agent_runs))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/events", get(events))
        .route("/runs/{id}/transcript", get(transcript))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/requeue", post(requeue))
        .route("/nightly", post(nightly))
}

async fn status(State(app): AppState) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_value(&app).await?))
}

/// The server's state: model, adapter, queue counts, nightly.
pub async fn status_value(app: &App) -> Result<Value, ApiError> {
    let counts: serde_json::Map<String, Value> =
        app.store.submission_counts().await?.into_iter().map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect();
    let nightly = app.nightly.lock().expect("nightly state").clone();
    Ok(json!({
        "model": app.served.describe(),
        "adapter": app.adapter.lock().await.to_json(),
        "draining": app.draining(),
        "max_concurrent_runs": app.config.max_concurrent_runs,
        "running_here": app.queue.running(),
        "runs": counts,
        "started_ms": app.started_ms,
        "nightly": {
            "schedule": app.config.schedule.as_ref().map(|s| s.spec.clone()),
            "running": nightly.running,
            "started": nightly.started,
            "next_ms": nightly.next_ms,
            "last": nightly.last,
        },
    }))
}

fn agent_json(a: &autodidact_memory::ServeAgent) -> Value {
    json!({"name": a.name, "model": a.model, "policy": a.policy, "tools": a.tools, "created_ms": a.created_ms, "updated_ms": a.updated_ms})
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ApiError::bad(format!("agent names are 1-64 characters from A-Z a-z 0-9 - _ . (got {name:?})")));
    }
    Ok(())
}

async fn list_agents(State(app): AppState) -> Result<Json<Value>, ApiError> {
    let agents = app.store.agents().await?;
    Ok(Json(json!({"agents": agents.iter().map(agent_json).collect::<Vec<_>>()})))
}

async fn get_agent(State(app): AppState, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let a = app.store.agent(&name).await?.ok_or_else(|| ApiError::not_found(format!("no agent named {name:?}")))?;
    Ok(Json(agent_json(&a)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    tools: Vec<String>,
}

async fn put_agent(State(app): AppState, Path(name): Path<String>, ApiJson(body): ApiJson<AgentBody>) -> Result<Response, ApiError> {
    check_name(&name)?;
    if !body.model.is_empty() && body.model != app.config.model && !app.config.models.contains(&body.model) {
        return Err(ApiError::bad(format!(
            "model {:?} is not served here: use \"\" (the served model, {}) or one of the config's `models` list {:?}",
            body.model, app.config.model, app.config.models
        )));
    }
    if !body.model.is_empty() {
        ModelSpec::parse(&body.model).map_err(|e| ApiError::bad(e.to_string()))?;
    }
    if !body.policy.is_empty() {
        Policy::parse(&body.policy, std::path::Path::new(&format!("agent {name} policy"))).map_err(|e| ApiError::bad(format!("invalid policy: {e}")))?;
    }
    let known: Vec<&str> = app.tools.iter().map(|t| t.name()).collect();
    if let Some(bad) = body.tools.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(ApiError::bad(format!("unknown tool {bad:?}; this server has {known:?}")));
    }
    let existed = app.store.agent(&name).await?.is_some();
    let a = app.store.put_agent(&name, &body.model, &body.policy, &body.tools).await?;
    let code = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((code, Json(agent_json(&a))).into_response())
}

async fn delete_agent(State(app): AppState, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    if !app.store.delete_agent(&name).await? {
        return Err(ApiError::not_found(format!("no agent named {name:?}")));
    }
    Ok(Json(json!({"deleted": name})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    task: String,
    #[serde(default)]
    context: Value,
    #[serde(default)]
    expect: Option<Expect>,
}

/// The expected answer of a submitted task: its run is rewarded, and a failure is tried again
/// and trained on by the next night.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    answer: Value,
    #[serde(default = "numeric")]
    verifier: String,
}

fn numeric() -> String {
    "numeric".into()
}

fn context_chars(v: &Value) -> Result<usize, ApiError> {
    match v {
        Value::Null => Ok(0),
        Value::String(s) => Ok(s.chars().count()),
        Value::Array(a) if a.iter().all(Value::is_string) => Ok(a.iter().map(|s| s.as_str().map_or(0, |s| s.chars().count())).sum()),
        _ => Err(ApiError::bad("`context` must be null, a string or a list of strings")),
    }
}

async fn submit(State(app): AppState, Path(name): Path<String>, ApiJson(body): ApiJson<SubmitBody>) -> Result<Response, ApiError> {
    if app.draining() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down; submit again after it restarts"));
    }
    if app.store.agent(&name).await?.is_none() {
        return Err(ApiError::not_found(format!("no agent named {name:?}; create it with PUT /agents/{name}")));
    }
    if body.task.trim().is_empty() {
        return Err(ApiError::bad("`task` is empty"));
    }
    let size = body.task.chars().count() + context_chars(&body.context)?;
    if size > app.config.max_context_chars {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("task and context hold {size} characters; this server accepts at most {} (max_context_chars)", app.config.max_context_chars),
        ));
    }
    let queued = app.store.submission_counts().await?.into_iter().find(|(s, _)| *s == SubmissionStatus::Queued).map_or(0, |c| c.1);
    if queued as usize >= app.config.max_queued {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the queue is full ({queued} waiting); try again later")));
    }
    // A task with an expected answer becomes a memory task with its verifier first, and the
    // submission runs as it.
    let task_id = match &body.expect {
        None => None,
        Some(e) => {
            let answer = match &e.answer {
                Value::String(s) if !s.trim().is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(ApiError::bad("`expect.answer` must be a non-empty string or a number")),
            };
            let kind = autodidact_evals::VerifierKind::parse(&e.verifier).filter(|k| *k != autodidact_evals::VerifierKind::Python);
            let Some(kind) = kind else {
                return Err(ApiError::bad(format!("`expect.verifier` must be numeric, exact or contains, not {:?}", e.verifier)));
            };
            let item = autodidact_evals::Item::user(&body.task, &answer, kind);
            let mut spec = item.answer_spec();
            // The context is not stored with the task: a night cannot try such a task again.
            spec["has_context"] = json!(!body.context.is_null());
            let task = NewTask { family: item.family, prompt: item.prompt, context_ref: None, answer_spec: spec, split: item.split, parent_id: None, difficulty: None, source: format!("serve:{name}") };
            Some(app.store.writer().add_task(task).await?.committed().await?)
        }
    };
    // Committed before the answer: an acknowledged submission survives kill -9.
    let sub = app.store.submit(&name, &body.task, &body.context, task_id.as_deref()).await?;
    app.queue.wake();
    let location = format!("/runs/{}", sub.id);
    let body = json!({"id": sub.id, "status": sub.status.as_str(), "agent": sub.agent, "links": {"self": location, "events": format!("{location}/events"), "view": format!("/view/runs/{}", sub.id)}});
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// The API's view of a submission, with its memory run when there is one.
pub async fn run_json(app: &App, sub: &Submission) -> Result<Value, ApiError> {
    let root = match (&sub.run_id, &sub.task_id) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(t)) => app.store.latest_run_of_task(t).await?,
        _ => None,
    };
    let mut v = json!({
        "id": sub.id,
        "agent": sub.agent,
        "task": sub.task,
        "status": sub.status.as_str(),
        "attempts": sub.attempts,
        "answer": sub.answer,
        "stop": sub.stop,
        "error": sub.error,
        "created_ms": sub.created_ms,
        "started_ms": sub.started_ms,
        "finished_ms": sub.finished_ms,
        "task_id": sub.task_id,
        "run_id": root,
    });
    if let Some(r) = &root
        && let Ok(run) = app.store.run(r).await
    {
        v["tokens"] = json!({"prompt": run.prompt_tokens, "completion": run.completion_tokens});
        v["model"] = json!(run.spec.model_id);
        v["adapter_id"] = json!(run.spec.adapter_id);
    }
    Ok(v)
}

async fn find(app: &App, id: &str) -> Result<Submission, ApiError> {
    app.store.submission(id).await?.ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))
}

async fn get_run(State(app): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let sub = find(&app, &id).await?;
    Ok(Json(run_json(&app, &sub).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    agent: Option<String>,
}

async fn list(app: &App, agent: Option<&str>, q: ListQuery) -> Result<Json<Value>, ApiError> {
    let status = q.status.as_deref().map(SubmissionStatus::parse).transpose().map_err(|e| ApiError::bad(e.to_string()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let subs = app.store.submissions(agent.or(q.agent.as_deref()), limit).await?;
    let runs: Vec<Value> = subs
        .iter()
        .filter(|s| status.is_none_or(|st| s.status == st))
        .map(|s| json!({"id": s.id, "agent": s.agent, "task": s.task, "status": s.status.as_str(), "answer": s.answer, "created_ms": s.created_ms, "finished_ms": s.finished_ms}))
        .collect();
    Ok(Json(json!({"runs": runs})))
}

async fn list_runs(State(app): AppState, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    list(&app, None, q).await
}

async fn agent_runs(State(app): AppState, Path(name): Path<String>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    list(&app, Some(&name), q).await
}

async fn cancel(State(app): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let sub = find(&app, &id).await?;
    match app.store.cancel_submission(&id).await? {
        Some(was) => {
            if was == SubmissionStatus::Running {
                crate::queue::Queue::cancel(&app, &id);
            }
            Ok(Json(json!({"id": id, "status": "cancelled", "was": was.as_str()})))
        }
        None => Err(ApiError::new(StatusCode::CONFLICT, format!("run {id} is already {}; only queued or running runs can be cancelled", sub.status.as_str()))),
    }
}

async fn requeue(State(app): AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let sub = find(&app, &id).await?;
    if app.draining() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"));
    }
    if !app.store.requeue(&id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run {id} is {}; only interrupted, failed or cancelled runs can be re-queued", sub.status.as_str()),
        ));
    }
    app.queue.wake();
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "status": "queued"}))).into_response())
}

async fn nightly(State(app): AppState) -> Result<Response, ApiError> {
    if app.config.schedule.is_none() {
        return Err(ApiError::not_found("no [schedule] in the config: the nightly is not configured on this server"));
    }
    if !schedule::start_nightly(&app) {
        return Err(ApiError::new(StatusCode::CONFLICT, "a nightly is already running"));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"started": true}))).into_response())
}

/// The run tree of a submission: its root run and the runs `rlm_query` started, each with
/// its steps (after `seen[run]`).
pub async fn tree(app: &App, sub: &Submission, seen: &HashMap<String, u64>) -> Result<Vec<Value>, ApiError> {
    let Some(task_id) = &sub.task_id else { return Ok(Vec::new()) };
    let mut runs: Vec<(String, u32, String, String, Option<String>)> = Vec::new();
    if let Some(root) = match &sub.run_id {
        Some(r) => Some(r.clone()),
        None => app.store.latest_run_of_task(task_id).await?,
    } {
        let run = app.store.run(&root).await?;
        runs.push((root, 0, sub.task.clone(), run.status.as_str().to_owned(), None));
    }
    let mut depth: HashMap<String, u32> = HashMap::from([(task_id.clone(), 0)]);
    for c in app.store.child_runs(task_id, 4).await? {
        let d = c.parent_task_id.as_ref().and_then(|p| depth.get(p)).map_or(1, |d| d + 1);
        depth.insert(c.task_id.clone(), d);
        runs.push((c.run_id, d, c.prompt, c.status, c.parent_task_id));
    }
    let mut out = Vec::new();
    for (run_id, depth, prompt, status, parent) in runs {
        let run = app.store.run(&run_id).await?;
        let from = seen.get(&run_id).copied().unwrap_or(0);
        let steps: Vec<Value> = app
            .store
            .steps(&run_id)
            .await?
            .into_iter()
            .filter(|s| s.idx >= from)
            .map(|s| {
                json!({
                    "run_id": s.run_id, "idx": s.idx, "kind": s.data.kind.as_str(), "input": s.data.input, "output": s.data.output,
                    "stdout": s.data.stdout, "stderr": s.data.stderr, "error": s.data.error,
                    "prompt_tokens": s.data.prompt_tokens, "completion_tokens": s.data.completion_tokens,
                    "latency_ms": s.data.latency_us as f64 / 1e3, "depth": depth,
                })
            })
            .collect();
        let duration_ms = run.finished_ms.map(|f| f - run.started_ms);
        let warnings: Vec<Value> = app
            .store
            .run_warnings(&run_id)
            .await?
            .into_iter()
            .map(|w| json!({"idx": w.idx, "source": w.source, "message": w.message, "created_ms": w.created_ms}))
            .collect();
        out.push(json!({
            "run_id": run_id, "depth": depth, "prompt": prompt, "status": status, "parent_task_id": parent,
            "prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens, "duration_ms": duration_ms,
            "end_reason": run.end_reason, "steps": steps, "warnings": warnings,
        }));
    }
    Ok(out)
}

async fn transcript(State(app): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let sub = find(&app, &id).await?;
    let runs = tree(&app, &sub, &HashMap::new()).await?;
    Ok(Json(json!({"run": run_json(&app, &sub).await?, "tree": runs})))
}

/// `GET /runs/{id}/events`: `status` when the state changes, `step` for each turn, cell,
/// sub-call and tool call as memory commits it (sub-runs included, with their depth), and
/// `done` with the final run object, after which the stream ends.
async fn events(State(app): AppState, Path(id): Path<String>) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    find(&app, &id).await?;
    let (mut tx, rx) = futures::channel::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        use futures::SinkExt;
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut last_status = String::new();
        loop {
            let Ok(Some(sub)) = app.store.submission(&id).await else { return };
            let final_now = sub.status.is_final();
            let status_key = format!("{}:{}", sub.status.as_str(), sub.attempts);
            if status_key != last_status {
                last_status = status_key;
                let ev = Event::default().event("status").json_data(json!({"status": sub.status.as_str(), "attempts": sub.attempts})).expect("json");
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            if let Ok(runs) = tree(&app, &sub, &seen).await {
                for run in runs {
                    for step in run["steps"].as_array().into_iter().flatten() {
                        let ev = Event::default().event("step").json_data(step).expect("json");
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                        let rid = step["run_id"].as_str().unwrap_or_default().to_owned();
                        let next = step["idx"].as_u64().unwrap_or(0) + 1;
                        seen.insert(rid, next);
                    }
                }
            }
            if final_now {
                let body = run_json(&app, &sub).await.unwrap_or_else(|e| json!({"error": e.message}));
                let _ = tx.send(Event::default().event("done").json_data(body).expect("json")).await;
                return;
            }
            if app.draining() && sub.status == SubmissionStatus::Queued {
                let _ = tx.send(Event::default().event("shutdown").data("the server is shutting down; the run stays queued")).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    use futures::StreamExt;
    Ok(Sse::new(rx.map(Ok)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    /// The spec documents every route the API serves, and nothing else.
    #[test]
    fn every_route_is_documented() {
        let spec: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        for (method, path) in super::ROUTES {
            assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is not in openapi.json");
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, super::ROUTES.len(), "openapi.json documents a route ROUTES does not list");
    }
}
