//! `autodidact serve` as a library: long-lived agents behind an HTTP API (axum on tokio).
//! [`start`] takes a [`Config`] (from [`Config::load`]: a TOML file, flag overrides, the token)
//! and returns a [`Running`] server; the binary only parses flags and calls it.
//!
//! - `api.rs`: named agents, run submission, status, SSE events, cancel and re-queue,
//!   `/status`, `/openapi.json` (the spec is the data file `openapi.json`).
//! - `queue.rs`: the durable queue. A submission is committed to memory before the 202; a
//!   dispatcher claims queued submissions up to `max_concurrent_runs` and runs each through
//!   the runtime's `Agent`, linked to the memory task and run it produces.
//! - `openai.rs`: the OpenAI-compatible `POST /v1/chat/completions` (streaming or not) and
//!   `GET /v1/models`, served by the model with the promoted adapter.
//! - `schedule.rs`: the cron clock that starts `nightly` as a child process, and the adapter
//!   hot swap when it ends.
//! - `viewer.rs` and `templates/`: the trajectory viewer at `/` (minijinja, a little JS).
//! - [`bench`]: the service under load (`autodidact bench serve`).
//!
//! Security is deny-by-default: loopback unless a token is set, every route behind the
//! bearer token when one is set, bounded bodies and contexts, and every error a JSON object.

pub mod api;
pub mod bench;
pub mod config;
mod error;
pub mod openai;
pub mod queue;
pub mod schedule;
pub mod viewer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use autodidact_memory::Store;
use autodidact_policies::Policy;
use autodidact_runtime::model::{self, LanguageModel, ModelSpec, OpenOptions};
use autodidact_runtime::tools::{MemorySearch, Tool};
use autodidact_sandbox::Sandbox;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use config::{Config, Overrides};
pub use error::{Error, Result};

pub use autodidact_memory::now_ms;

/// The server's shared state.
pub struct App {
    /// Settings.
    pub config: Config,
    /// Memory: agents, the queue, trajectories.
    pub store: Arc<Store>,
    /// The default policy.
    pub policy: Policy,
    /// The served model (agents without a model, and `/v1/chat/completions`).
    pub served: Arc<dyn LanguageModel>,
    /// Other models agents named, opened on first use.
    models: tokio::sync::Mutex<HashMap<String, Arc<dyn LanguageModel>>>,
    /// The sandbox engine (cheap to clone).
    pub sandbox: Sandbox,
    /// Tools agents may enable, by name.
    pub tools: Vec<Arc<dyn Tool>>,
    /// The run queue.
    pub queue: queue::Queue,
    /// The served model's adapter.
    pub adapter: tokio::sync::Mutex<schedule::AdapterState>,
    /// The nightly's state.
    pub nightly: std::sync::Mutex<schedule::NightlyState>,
    /// Becomes true when the server starts draining.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// When the server started (ms).
    pub started_ms: i64,
}

impl App {
    /// The model a spec names: the served one for `""` or the served spec, else opened once.
    pub async fn model(&self, spec: &str) -> Result<Arc<dyn LanguageModel>> {
        if spec.is_empty() || spec == self.config.model {
            return Ok(self.served.clone());
        }
        let mut models = self.models.lock().await;
        if let Some(m) = models.get(spec) {
            return Ok(m.clone());
        }
        let m = model::open(&ModelSpec::parse(spec)?, &OpenOptions::default()).await?;
        models.insert(spec.to_owned(), m.clone());
        Ok(m)
    }

    /// Whether the server is draining (SIGTERM received).
    pub fn draining(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// An API error: an HTTP status and a message, sent as
/// `{"error": {"message": ..., "type": ..., "code": status}}` (the OpenAI shape).
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    /// 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500, for failures of the host (the store, the model).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            400 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            404 => "not_found_error",
            409 => "conflict_error",
            503 => "unavailable_error",
            _ => "server_error",
        };
        let body = json!({"error": {"message": self.message, "type": kind, "code": self.status.as_u16()}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// Rejections axum makes itself (a path segment or a query string it cannot parse) come as
/// plain text; they are said again as the API's JSON error, so that every error is JSON.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let plain = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let text = axum::body::to_bytes(res.into_body(), 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    ApiError::new(status, message).into_response()
}

impl From<autodidact_memory::Error> for ApiError {
    fn from(e: autodidact_memory::Error) -> Self {
        ApiError::internal(e)
    }
}

/// A JSON body whose rejections (malformed JSON, wrong content type, too large) are
/// [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let status = rejection.status();
                let text = rejection.body_text();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is larger than max_body_bytes".to_string()
                } else {
                    text
                };
                Err(ApiError::new(status, message))
            }
        }
    }
}

/// Checks `Authorization: Bearer <AUTODIDACT_TOKEN>` when a token is configured.
async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.config.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token: send `Authorization: Bearer <AUTODIDACT_TOKEN>`").into_response();
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in b.iter().enumerate() {
        diff |= (*a.get(i).unwrap_or(&0) ^ x) as usize;
    }
    diff == 0
}

/// The whole router: API, OpenAI endpoint and viewer, behind the token check and body limit.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .merge(api::routes())
        .merge(openai::routes())
        .merge(viewer::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here; see /openapi.json") })
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(app.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(app.config.max_body_bytes))
        .with_state(app)
}

/// A started server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The shared state.
    pub app: Arc<App>,
    done: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Starts draining, as SIGTERM does: no new runs start; running ones get `drain` to finish,
    /// then are marked interrupted; then the listener closes.
    pub fn shutdown(&self) {
        self.app.shutdown.send_replace(true);
        self.app.queue.wake();
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> Result<()> {
        self.done.await.map_err(|e| Error::Invalid(format!("the server task panicked: {e}")))?
    }
}

/// Opens the store, model, sandbox and tools, marks runs left running by a previous process
/// interrupted, and starts serving. `model` replaces the configured model (the load bench).
pub async fn start(config: Config, model: Option<Arc<dyn LanguageModel>>) -> Result<Running> {
    let policy = match &config.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::preset_default(),
    };
    let store = Arc::new(Store::open(&config.db).await?);
    for w in store.warnings() {
        eprintln!("warning: {w}");
    }
    let interrupted = store.interrupt_running("interrupted: the server stopped while the run was in flight").await?;
    if interrupted > 0 {
        eprintln!("serve: {interrupted} run(s) were in flight when the server last stopped; marked interrupted");
    }
    if config.requeue_interrupted {
        let n = store.requeue_interrupted().await?;
        if n > 0 {
            eprintln!("serve: re-queued {n} interrupted run(s)");
        }
    }
    let served = match model {
        Some(m) => m,
        None => model::open(&ModelSpec::parse(&config.model)?, &OpenOptions::default()).await?,
    };
    let sandbox = Sandbox::open(&autodidact_sandbox::SandboxConfig::from_env())?;
    let mut tools: Vec<Arc<dyn Tool>> = vec![Arc::new(MemorySearch::new(store.clone()))];
    if let Some(path) = &config.tools {
        tools.extend(autodidact_runtime::pytools::load(path)?);
    }
    let listener = tokio::net::TcpListener::bind(config.bind).await.map_err(|cause| Error::Net { what: format!("cannot listen on {}", config.bind), cause })?;
    let addr = listener.local_addr().map_err(|cause| Error::Net { what: "cannot read the listening address".into(), cause })?;
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        queue: queue::Queue::new(config.max_concurrent_runs),
        config,
        store: store.clone(),
        policy,
        served,
        models: Default::default(),
        sandbox,
        tools,
        adapter: Default::default(),
        nightly: Default::default(),
        shutdown,
        started_ms: now_ms(),
    });
    schedule::initial_swap(&app, &store).await;
    let dispatcher = tokio::spawn(queue::dispatch(app.clone()));
    tokio::spawn(schedule::clock(app.clone()));
    let router = router(app.clone());
    let a = app.clone();
    let done = tokio::spawn(async move {
        let mut stop = a.shutdown.subscribe();
        let drained = a.clone();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
            // Keep answering status requests while running runs drain.
            queue::drain(&drained).await;
        });
        server.await.map_err(|cause| Error::Net { what: "the HTTP server failed".into(), cause })?;
        dispatcher.abort();
        a.store.flush().await?;
        Ok(())
    });
    eprintln!("serve: listening on http://{addr} (model {}, {} concurrent runs)", app.served.describe(), app.config.max_concurrent_runs);
    Ok(Running { addr, app, done })
}
