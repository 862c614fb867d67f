//! The host side of a session: the store's data and every import the guest reaches.
//!
//! The guest imports `wasi_snapshot_preview1` (from `wasmtime-wasi`) and `host.call` (the
//! tool bridge). Three pieces of WASI are replaced or wrapped here:
//! - **stdout and stderr** go to [`Capture`] buffers that keep up to the cap and drop the
//!   rest, marking the truncation. wasmtime's `MemoryOutputPipe` traps the guest when full.
//! - **`poll_oneoff`** is shadowed by one that sleeps in slices and checks the cell's deadline
//!   and the cancel flag, so `time.sleep(1e9)` cannot outlive a deadline.
//! - **path operations** (`path_open`, `path_filestat_get`, ...) are counted against
//!   `sandbox.max_file_calls`. They are linked with a context accessor that counts each call
//!   and, past the cap, hands WASI an empty context with no preopened folders, so the call
//!   fails with `EBADF` instead of touching a file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::{Caller, Extern, Linker, Memory, ResourceLimiter};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::config::{Limit, Limits};
use crate::tools::{self, FrameContext, FrameNote, ToolSet};

/// The WASI path operations counted as file calls.
pub(crate) const FILE_CALLS: &[&str] = &[
    "path_open",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_create_directory",
    "path_remove_directory",
    "path_unlink_file",
    "path_rename",
    "path_link",
    "path_symlink",
    "path_readlink",
    "fd_readdir",
];
const WASI: &str = "wasi_snapshot_preview1";
const ERRNO_INVAL: i32 = 28;
const ERRNO_FAULT: i32 = 21;
/// `host.call` results that are not 0: no host, or a fault in the frame.
const HOST_FAULT: i32 = -2;

/// Everything a session's store holds.
pub(crate) struct HostState {
    pub wasi: WasiP1Ctx,
    pub memory: MemoryCap,
    pub stdout: Capture,
    pub stderr: Capture,
    pub limits: Arc<Limits>,
    pub tools: ToolSet,
    pub cancel: Arc<AtomicBool>,
    pub cell: CellState,
    /// What path operations see once the file-call cap is spent: no folders at all.
    pub denied_wasi: WasiP1Ctx,
}

/// Per-cell accounting, reset before each cell.
#[derive(Debug)]
pub(crate) struct CellState {
    pub deadline: Instant,
    pub file_calls: u64,
    pub tool_calls: u64,
    /// Limits hit during the cell, in order, without repeats.
    pub hits: Vec<Limit>,
    /// The limit that stopped the guest, if one did.
    pub fatal: Option<Limit>,
}

impl CellState {
    pub fn new(deadline: Instant) -> Self {
        Self { deadline, file_calls: 0, tool_calls: 0, hits: Vec::new(), fatal: None }
    }

    pub fn hit(&mut self, limit: Limit) {
        if !self.hits.contains(&limit) {
            self.hits.push(limit);
        }
    }

    /// Records a limit that stops the guest and returns the trap to raise.
    pub fn stop(&mut self, limit: Limit) -> wasmtime::Error {
        self.hit(limit);
        self.fatal.get_or_insert(limit);
        wasmtime::Error::msg(format!("stopped by the {limit}"))
    }
}

impl HostState {
    /// True once the host asked this session's running cell to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Ends the guest if the cell is cancelled or past its deadline.
    pub fn check_time(&mut self) -> wasmtime::Result<()> {
        if self.cancelled() {
            return Err(self.cell.stop(Limit::Cancelled));
        }
        if Instant::now() >= self.cell.deadline {
            return Err(self.cell.stop(Limit::Deadline));
        }
        Ok(())
    }
}

/// The store limiter: linear memory may not grow past the cap.
pub(crate) struct MemoryCap {
    pub cap: u64,
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired as u64 <= self.cap;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// An output stream that keeps up to `cap` bytes per cell and counts what it drops.
#[derive(Clone)]
pub(crate) struct Capture(Arc<Mutex<CaptureBuf>>);

#[derive(Default)]
pub(crate) struct CaptureBuf {
    pub bytes: Vec<u8>,
    pub cap: usize,
    pub dropped: u64,
}

impl Capture {
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(CaptureBuf { bytes: Vec::new(), cap, dropped: 0 })))
    }

    fn push(&self, data: &[u8]) {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = b.cap.saturating_sub(b.bytes.len());
        let keep = data.len().min(room);
        b.bytes.extend_from_slice(&data[..keep]);
        b.dropped += (data.len() - keep) as u64;
    }

    /// Takes what was captured, resetting the buffer for the next cell with a new cap.
    pub fn take(&self, next_cap: usize) -> (Vec<u8>, u64) {
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let out = std::mem::take(&mut b.bytes);
        let dropped = std::mem::take(&mut b.dropped);
        b.cap = next_cap;
        (out, dropped)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The guest's monotonic clock: nanoseconds since a process-wide origin, so the shadowed
/// `poll_oneoff` can read absolute deadlines on the same clock.
pub(crate) struct SandboxClock;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn monotonic_now() -> u64 {
    origin().elapsed().as_nanos() as u64
}

impl wasmtime_wasi::HostMonotonicClock for SandboxClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        monotonic_now()
    }
}

/// The linker the guest is instantiated with.
pub(crate) fn guest_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    const COUNTED: &str = "autodidact_counted_wasi";
    let mut linker = Linker::new(engine);
    linker.allow_shadowing(true);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, counted_wasi)?;
    linker.alias_module(WASI, COUNTED)?;
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| &mut s.wasi)?;
    for name in FILE_CALLS {
        linker.alias(COUNTED, name, WASI, name)?;
    }
    linker.func_wrap(WASI, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap("host", "call", host_call)?;
    Ok(linker)
}

/// The WASI context for a path operation: counted, and empty once the cap is spent.
fn counted_wasi(s: &mut HostState) -> &mut WasiP1Ctx {
    s.cell.file_calls += 1;
    if s.cell.file_calls > s.limits.max_file_calls {
        s.cell.hit(Limit::FileCalls);
        return &mut s.denied_wasi;
    }
    &mut s.wasi
}

fn memory(caller: &mut Caller<'_, HostState>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`, sleeping in slices.
///
/// Clock subscriptions wait until the earliest one is due. File-descriptor subscriptions are
/// answered ready at once: the guest has no pipes or sockets that could block.
fn poll_oneoff(mut caller: Caller<'_, HostState>, inp: i32, out: i32, nsubs: i32, nevents: i32) -> wasmtime::Result<i32> {
    const SUB: usize = 48;
    const EVENT: usize = 32;
    let Some(mem) = memory(&mut caller) else { return Ok(ERRNO_FAULT) };
    let (inp, out, n, nevents) = (inp as u32 as usize, out as u32 as usize, nsubs as u32 as usize, nevents as u32 as usize);
    if n == 0 || n > 4096 {
        return Ok(ERRNO_INVAL);
    }
    let mut subs = vec![0u8; n * SUB];
    if mem.read(&caller, inp, &mut subs).is_err() {
        return Ok(ERRNO_FAULT);
    }
    let now = monotonic_now();
    let wall_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // (userdata, tag, due-in-ns or None for fd subscriptions)
    let mut parsed = Vec::with_capacity(n);
    for s in subs.chunks_exact(SUB) {
        let userdata = read_u64(s, 0);
        let tag = s[8];
        let due = if tag == 0 {
            let clock = u32::from_le_bytes(s[16..20].try_into().unwrap());
            let timeout = read_u64(s, 24);
            let absolute = u16::from_le_bytes(s[40..42].try_into().unwrap()) & 1 == 1;
            let base = if clock == 0 { wall_now } else { now };
            Some(if absolute { timeout.saturating_sub(base) } else { timeout })
        } else {
            None
        };
        parsed.push((userdata, tag, due));
    }
    let any_fd = parsed.iter().any(|p| p.2.is_none());
    let wait = if any_fd { 0 } else { parsed.iter().filter_map(|p| p.2).min().unwrap_or(0) };
    let start = Instant::now();
    let wait = Duration::from_nanos(wait);
    while start.elapsed() < wait {
        caller.data_mut().check_time()?;
        let left = wait.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(5)));
    }
    let waited = start.elapsed().as_nanos() as u64;
    let mut events = Vec::new();
    for (userdata, tag, due) in parsed {
        let ready = due.is_none_or(|d| d <= waited);
        if !ready {
            continue;
        }
        let mut e = [0u8; EVENT];
        e[0..8].copy_from_slice(&userdata.to_le_bytes());
        e[10] = tag;
        events.extend_from_slice(&e);
    }
    let count = (events.len() / EVENT) as u32;
    if mem.write(&mut caller, out, &events).is_err() || mem.write(&mut caller, nevents, &count.to_le_bytes()).is_err() {
        return Ok(ERRNO_FAULT);
    }
    Ok(0)
}

/// `host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> 0 | -2`: one tool-protocol frame.
fn host_call(mut caller: Caller<'_, HostState>, ptr: i32, len: i32, out_pp: i32, out_lp: i32) -> wasmtime::Result<i32> {
    let Some(mem) = memory(&mut caller) else { return Ok(HOST_FAULT) };
    let (ptr, len, out_pp, out_lp) = (ptr as u32 as usize, len as u32 as usize, out_pp as u32 as usize, out_lp as u32 as usize);
    let size = mem.data_size(&caller);
    if ptr.checked_add(len).is_none_or(|end| end > size) || out_pp + 4 > size || out_lp + 4 > size {
        return Ok(HOST_FAULT);
    }
    let cap = caller.data().limits.tool_payload_bytes;
    // A frame over the cap is answered from its first bytes; it is never copied whole.
    let request = mem.data(&caller)[ptr..ptr + len.min(cap + 1)].to_vec();
    let started = Instant::now();
    let (reply, note) = {
        let state = caller.data_mut();
        let limits = state.limits.clone();
        let tools = state.tools.clone();
        let cancel = state.cancel.clone();
        let mut calls = state.cell.tool_calls;
        let mut take = || {
            if calls >= limits.max_tool_calls {
                return false;
            }
            calls += 1;
            true
        };
        let cancelled = || cancel.load(Ordering::Relaxed);
        let mut cx = FrameContext {
            tools: &tools,
            payload_cap: cap,
            timeout: limits.tool_timeout,
            take_call: &mut take,
            cancelled: &cancelled,
        };
        let r = tools::answer(&request, len, &mut cx);
        state.cell.tool_calls = calls;
        r
    };
    // Time spent waiting on the host does not count against the guest's deadline.
    caller.data_mut().cell.deadline += started.elapsed();
    match note {
        FrameNote::None => {}
        FrameNote::TooLarge => caller.data_mut().cell.hit(Limit::ToolPayload),
        FrameNote::CallCap => caller.data_mut().cell.hit(Limit::ToolCalls),
        FrameNote::Cancelled => return Err(caller.data_mut().cell.stop(Limit::Cancelled)),
    }
    let alloc = match caller.get_export("host_alloc") {
        Some(Extern::Func(f)) => f.typed::<i32, i32>(&caller)?,
        _ => return Ok(HOST_FAULT),
    };
    let p = alloc.call(&mut caller, reply.len() as i32)? as u32 as usize;
    let size = mem.data_size(&caller);
    if p == 0 || p + reply.len() > size {
        return Ok(HOST_FAULT);
    }
    mem.write(&mut caller, p, &reply)?;
    mem.write(&mut caller, out_pp, &(p as u32).to_le_bytes())?;
    mem.write(&mut caller, out_lp, &(reply.len() as u32).to_le_bytes())?;
    Ok(0)
}
