//! A session: one interpreter whose globals persist from cell to cell.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::{Memory, Store, Trap, TypedFunc, UpdateDeadline};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::config::{Limit, Limits};
use crate::compiled::Compiled;
use crate::host::{Capture, CellState, HostState, MemoryCap, SandboxClock};
use crate::pool;
use crate::tools::ToolSet;
use crate::Error;

/// Clear the guest's `linecache` of cell sources every this many cells.
const LINECACHE_EVERY: u64 = 8;
const CLEAR_LINECACHE: &str = "__import__('linecache')._interactive_cache.clear()";

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The code ran to the end.
    Ok,
    /// The code raised; the traceback is in `stderr`. The session lives on.
    Error,
    /// The code called `exit(code)`; the session is over.
    Exited(i32),
    /// The guest was stopped (a limit, a cancel, or a crash); the session is over.
    Trapped,
}

impl Status {
    /// `ok`, `error`, `exited` or `trapped`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Exited(_) => "exited",
            Status::Trapped => "trapped",
        }
    }
}

/// What running one cell produced.
#[derive(Debug, Clone)]
pub struct Cell {
    /// How the cell ended.
    pub status: Status,
    /// What the guest printed, with the echo of a final expression; cut at the cap.
    pub stdout: String,
    /// Tracebacks and warnings; cut at the cap. Host notes about limits are appended here.
    pub stderr: String,
    /// True when either stream was cut.
    pub truncated: bool,
    /// The limit that stopped the guest, when one did.
    pub trapped: Option<Limit>,
    /// Every limit the cell ran into, fatal or not (an output cap, a refused file call, ...).
    pub limits_hit: Vec<Limit>,
    /// Wall-clock time of the cell.
    pub duration: Duration,
}

/// Cancels the running cell of a session from any thread.
#[derive(Debug, Clone)]
pub struct Canceller(Arc<AtomicBool>);

impl Canceller {
    /// Stops the session's running cell (or its next one) within a few milliseconds. The
    /// session is over afterwards.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One live interpreter. Globals persist across [`Session::exec`] calls.
///
/// A session is `Send`: it can be moved between threads, but runs one cell at a time. Guest
/// code always runs on a large-stack thread of the sandbox's pool; the sync methods block the
/// caller, and the `_async` methods await without blocking a tokio worker.
pub struct Session {
    inner: Option<Box<Inner>>,
    cancel: Arc<AtomicBool>,
    closed: Option<String>,
}

struct Inner {
    store: Store<HostState>,
    memory: Memory,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
    fuel: bool,
    cells: u64,
    /// Why the interpreter can no longer be trusted, when host upkeep between cells failed.
    broken: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("closed", &self.closed).finish()
    }
}

impl Session {
    pub(crate) fn start(sb: &Compiled, limits: Limits, tools: ToolSet) -> Result<Session, Error> {
        let instantiate = |e: wasmtime::Error| Error::Instantiate(format!("{e:#}"));
        let limits = Arc::new(limits);
        let stdout = Capture::new(limits.stdout_bytes);
        let stderr = Capture::new(limits.stderr_bytes);
        let mut b = WasiCtxBuilder::new();
        b.arg("/usr/local/bin/python.wasm")
            .env("TMPDIR", "/tmp")
            .env("PYTHONTZPATH", "")
            .env("HOME", "/tmp")
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .monotonic_clock(SandboxClock)
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        b.preopened_dir(&sb.stdlib_dir, "/usr/local/lib", FsPerms::ReadOnly)
            .map_err(|e| Error::Grant { host: sb.stdlib_dir.clone(), message: format!("{e:#}") })?;
        for g in &limits.grants {
            let perms = if g.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            b.preopened_dir(&g.host, &g.guest, perms)
                .map_err(|e| Error::Grant { host: g.host.clone(), message: format!("{e:#}") })?;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let state = HostState {
            wasi: b.build_p1(),
            memory: MemoryCap { cap: limits.memory_bytes, hit: false },
            stdout,
            stderr,
            limits: limits.clone(),
            tools,
            cancel: cancel.clone(),
            cell: CellState::new(Instant::now() + limits.deadline),
            denied_wasi: WasiCtxBuilder::new().build_p1(),
        };
        let mut store = Store::new(&sb.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            cx.data_mut().check_time()?;
            Ok(UpdateDeadline::Continue(1))
        });
        if sb.fuel {
            store.set_fuel(u64::MAX).map_err(instantiate)?;
        }
        let instance = sb.pre.instantiate(&mut store).map_err(instantiate)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| Error::Instantiate("the module exports no `memory`".into()))?;
        let turn = instance.get_typed_func::<(i32, i32), i32>(&mut store, "turn").map_err(instantiate)?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, "host_alloc").map_err(instantiate)?;
        let inner = Inner { store, memory, turn, alloc, fuel: sb.fuel, cells: 0, broken: None };
        Ok(Session { inner: Some(Box::new(inner)), cancel, closed: None })
    }

    /// A handle that cancels this session's running cell from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
    }

    /// True once the session is over (after `exit()`, a trap or a cancel).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Runs `code` like a REPL input in `__main__`: a final expression is echoed, exceptions
    /// print a traceback to stderr. Limits are reported in the [`Cell`]; `Err` means the host
    /// itself failed or the session is already over.
    pub fn exec(&mut self, code: &str) -> Result<Cell, Error> {
        let code = code.to_owned();
        self.with_inner(move |inner| inner.exec(&code))
    }

    /// [`Session::exec`] without blocking the async executor. Dropping the future cancels
    /// the cell and ends the session.
    pub async fn exec_async(&mut self, code: &str) -> Result<Cell, Error> {
        let code = code.to_owned();
        self.with_inner_async(move |inner| inner.exec(&code)).await
    }

    /// Binds `name` in `__main__` to `value`, converted from JSON to Python.
    pub fn set_var(&mut self, name: &str, value: &Value) -> Result<(), Error> {
        let code = set_var_code(name, value)?;
        let cell = self.exec(&code)?;
        guest_ok(cell, "set_var", name).map(drop)
    }

    /// [`Session::set_var`] without blocking the async executor.
    pub async fn set_var_async(&mut self, name: &str, value: &Value) -> Result<(), Error> {
        let code = set_var_code(name, value)?;
        let cell = self.exec_async(&code).await?;
        guest_ok(cell, "set_var", name).map(drop)
    }

    /// Reads `name` from `__main__` as JSON. Values JSON cannot hold are an error.
    pub fn get_var(&mut self, name: &str) -> Result<Value, Error> {
        let code = get_var_code(name)?;
        let cell = self.with_inner(move |inner| inner.exec_with_stdout_cap(&code, usize::MAX >> 1))?;
        parse_var(guest_ok(cell, "get_var", name)?, name)
    }

    /// [`Session::get_var`] without blocking the async executor.
    pub async fn get_var_async(&mut self, name: &str) -> Result<Value, Error> {
        let code = get_var_code(name)?;
        let cell = self.with_inner_async(move |inner| inner.exec_with_stdout_cap(&code, usize::MAX >> 1)).await?;
        parse_var(guest_ok(cell, "get_var", name)?, name)
    }

    /// Ends the session and frees its memory.
    pub fn close(mut self) {
        self.inner = None;
        self.closed = Some("closed by the host".into());
    }

    fn take_inner(&mut self) -> Result<Box<Inner>, Error> {
        if let Some(reason) = &self.closed {
            return Err(Error::SessionClosed(reason.clone()));
        }
        self.inner.take().ok_or_else(|| Error::SessionClosed("a cell was abandoned mid-run".into()))
    }

    fn put_back(&mut self, mut inner: Box<Inner>, cell: &Result<Cell, Error>) {
        self.cancel.store(false, Ordering::Relaxed);
        if let Ok(c) = cell {
            match c.status {
                Status::Exited(code) => self.closed = Some(format!("the guest called exit({code})")),
                Status::Trapped => {
                    let why = c.trapped.map_or_else(|| "a trap".to_owned(), |l| format!("the {l}"));
                    self.closed = Some(format!("the guest was stopped by {why}"));
                }
                _ => {}
            }
        }
        if self.closed.is_none() {
            match inner.broken.take() {
                Some(why) => self.closed = Some(why),
                None => self.inner = Some(inner),
            }
        }
    }

    fn with_inner(&mut self, f: impl FnOnce(&mut Inner) -> Result<Cell, Error> + Send + 'static) -> Result<Cell, Error> {
        let mut inner = self.take_inner()?;
        let (inner, cell) = pool::run(move || {
            let cell = f(&mut inner);
            (inner, cell)
        });
        self.put_back(inner, &cell);
        cell
    }

    async fn with_inner_async(&mut self, f: impl FnOnce(&mut Inner) -> Result<Cell, Error> + Send + 'static) -> Result<Cell, Error> {
        let mut inner = self.take_inner()?;
        struct CancelOnDrop(Option<Arc<AtomicBool>>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                if let Some(c) = &self.0 {
                    c.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut guard = CancelOnDrop(Some(self.cancel.clone()));
        let rx = pool::spawn(move || {
            let cell = f(&mut inner);
            (inner, cell)
        });
        let (inner, cell) = rx.await.map_err(|_| Error::SessionClosed("a sandbox thread panicked".into()))?;
        guard.0 = None;
        self.put_back(inner, &cell);
        cell
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn set_var_code(name: &str, value: &Value) -> Result<String, Error> {
    if !is_identifier(name) {
        return Err(Error::BadName(name.to_owned()));
    }
    // A JSON string literal is also a valid Python string literal.
    let text = serde_json::to_string(&value.to_string()).expect("strings serialize");
    Ok(format!("{name} = __import__('json').loads({text})"))
}

fn get_var_code(name: &str) -> Result<String, Error> {
    if !is_identifier(name) {
        return Err(Error::BadName(name.to_owned()));
    }
    Ok(format!("print(__import__('json').dumps({name}))"))
}

fn guest_ok(cell: Cell, what: &'static str, name: &str) -> Result<Cell, Error> {
    if cell.status == Status::Ok {
        Ok(cell)
    } else {
        Err(Error::Guest { what, name: name.to_owned(), stderr: cell.stderr })
    }
}

fn parse_var(cell: Cell, name: &str) -> Result<Value, Error> {
    serde_json::from_str(cell.stdout.trim_end())
        .map_err(|e| Error::Guest { what: "get_var", name: name.to_owned(), stderr: format!("not JSON: {e}") })
}

impl Inner {
    fn exec(&mut self, code: &str) -> Result<Cell, Error> {
        let cap = self.store.data().limits.stdout_bytes;
        self.exec_with_stdout_cap(code, cap)
    }

    fn exec_with_stdout_cap(&mut self, code: &str, stdout_cap: usize) -> Result<Cell, Error> {
        let started = Instant::now();
        let limits = self.store.data().limits.clone();
        {
            let s = self.store.data_mut();
            s.cell = CellState::new(started + limits.deadline);
            s.memory.hit = false;
            s.stdout.take(stdout_cap);
        }
        if self.fuel {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            self.store.set_fuel(fuel).map_err(|e| Error::Instantiate(format!("{e:#}")))?;
        }
        let result = self.run_turn(code.as_bytes());
        let duration = started.elapsed();
        let state = self.store.data_mut();
        if state.memory.hit {
            state.cell.hit(Limit::Memory);
        }
        let (status, crash) = match result {
            Ok(v) if v == 0 => (Status::Ok, None),
            Ok(v) if v < 256 => (Status::Error, None),
            Ok(v) => (Status::Exited(v - 256), None),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    (Status::Exited(exit.0), None)
                } else {
                    let limit = match e.downcast_ref::<Trap>() {
                        Some(Trap::StackOverflow) => Some(Limit::Stack),
                        Some(Trap::OutOfFuel) => Some(Limit::Fuel),
                        _ if state.memory.hit => Some(Limit::Memory),
                        _ => None,
                    };
                    if let Some(l) = limit {
                        state.cell.stop(l);
                    }
                    (Status::Trapped, Some(format!("{e:#}")))
                }
            }
        };
        let (out, out_dropped) = state.stdout.take(limits.stdout_bytes);
        let (err, err_dropped) = state.stderr.take(limits.stderr_bytes);
        if out_dropped + err_dropped > 0 {
            state.cell.hit(Limit::Output);
        }
        let mut stdout = String::from_utf8_lossy(&out).into_owned();
        let mut stderr = String::from_utf8_lossy(&err).into_owned();
        if out_dropped > 0 {
            stdout.push_str(&format!("\n[sandbox: {out_dropped} more bytes of stdout dropped (sandbox.stdout_bytes = {})]\n", limits.stdout_bytes));
        }
        if err_dropped > 0 {
            stderr.push_str(&format!("\n[sandbox: {err_dropped} more bytes of stderr dropped (sandbox.stderr_bytes = {})]\n", limits.stderr_bytes));
        }
        let cell_state = std::mem::replace(&mut state.cell, CellState::new(Instant::now()));
        for limit in &cell_state.hits {
            if Some(*limit) != cell_state.fatal && *limit != Limit::Output {
                stderr.push_str(&format!("[sandbox: the cell reached the {limit}]\n"));
            }
        }
        if let Some(msg) = crash {
            match cell_state.fatal {
                Some(limit) => stderr.push_str(&format!("[sandbox: stopped by the {limit}; the session is over]\n")),
                None => stderr.push_str(&format!("[sandbox: the guest trapped; the session is over: {msg}]\n")),
            }
        }
        self.cells += 1;
        if matches!(status, Status::Ok | Status::Error) && self.cells % LINECACHE_EVERY == 0 {
            self.clear_linecache(&limits);
        }
        Ok(Cell {
            status,
            stdout,
            stderr,
            truncated: out_dropped + err_dropped > 0,
            trapped: if status == Status::Trapped { cell_state.fatal } else { None },
            limits_hit: cell_state.hits,
            duration,
        })
    }

    /// Host upkeep between cells, under the same deadline and fuel as a cell. If it fails the
    /// interpreter is in an unknown state, so the session ends with the reason.
    fn clear_linecache(&mut self, limits: &Limits) {
        self.store.data_mut().cell = CellState::new(Instant::now() + limits.deadline);
        let fuel = if self.fuel { self.store.set_fuel(limits.fuel.unwrap_or(u64::MAX)) } else { Ok(()) };
        let result = fuel.and_then(|()| self.run_turn(CLEAR_LINECACHE.as_bytes()));
        let s = self.store.data_mut();
        let (_, _) = s.stdout.take(limits.stdout_bytes);
        let (err, _) = s.stderr.take(limits.stderr_bytes);
        s.cell = CellState::new(Instant::now());
        let why = match result {
            Ok(0) => return,
            Ok(_) => String::from_utf8_lossy(&err).trim().to_owned(),
            Err(e) => format!("{e:#}").lines().next().unwrap_or_default().to_owned(),
        };
        self.broken = Some(format!("the host's linecache upkeep between cells failed: {why}"));
    }

    fn run_turn(&mut self, code: &[u8]) -> wasmtime::Result<i32> {
        let (mut p, len) = (0i32, code.len());
        if len > 0 {
            p = self.alloc.call(&mut self.store, len as i32)?;
            if p == 0 || self.memory.write(&mut self.store, p as u32 as usize, code).is_err() {
                // No room for the source: the guest reports MemoryError for an empty input.
                p = 0;
            }
        }
        let len = if p == 0 { 0 } else { len as i32 };
        self.turn.call(&mut self.store, (p, len))
    }
}
