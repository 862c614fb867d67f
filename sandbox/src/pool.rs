//! An elastic pool of large-stack threads that guest code runs on.
//!
//! Guest code runs synchronously on the calling thread's native stack, so that thread needs
//! room for [`WASM_STACK`] plus host frames. Threads are reused while idle and new ones are
//! started when all are busy: a cell blocked in a host tool call (a recursive sub-agent, say)
//! must never starve the cells that the call itself waits for, so the pool has no fixed size.
//! Idle threads are kept (their stacks are reserved address space, not resident memory), so
//! the pool is as large as the peak number of cells that ran at once.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};

/// The most native stack guest code may use (wasmtime's `max_wasm_stack`).
pub const WASM_STACK: usize = 8 << 20;
/// Each pool thread's stack: the guest's share plus room for the host.
pub const THREAD_STACK: usize = WASM_STACK + (16 << 20);

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    static LARGE_STACK: Cell<bool> = const { Cell::new(false) };
}

/// True on a thread that may run guest code directly.
pub fn on_large_stack() -> bool {
    LARGE_STACK.with(|c| c.get())
}

static IDLE: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// Runs `f` on a large-stack thread and returns its result, blocking the caller.
pub fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    if on_large_stack() {
        return f();
    }
    let (tx, rx) = mpsc::sync_channel(1);
    submit(Box::new(move || {
        let _ = tx.send(f());
    }));
    rx.recv().expect("a sandbox pool thread panicked")
}

/// Runs `f` on a large-stack thread; the returned receiver yields its result.
pub fn spawn<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> tokio::sync::oneshot::Receiver<R> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(Box::new(move || {
        let _ = tx.send(f());
    }));
    rx
}

fn submit(mut job: Job) {
    loop {
        let worker = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match worker {
            Some(w) => match w.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(j)) => job = j, // that worker died; try another
            },
            None => return start_worker(job),
        }
    }
}

fn start_worker(first: Job) {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("sandbox-guest".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            LARGE_STACK.with(|c| c.set(true));
            let mut job = first;
            loop {
                job();
                IDLE.lock().unwrap_or_else(|e| e.into_inner()).push(tx.clone());
                match rx.recv() {
                    Ok(next) => job = next,
                    Err(_) => return,
                }
            }
        })
        .expect("cannot start a sandbox thread");
}
