//! The runtime's one error type.
//!
//! Errors are for the machinery: a missing model file, a corrupt adapter, a server that keeps
//! answering 503. What a *model* gets wrong (bad code, a malformed answer) is data, recorded
//! in the trajectory, and never an `Err`.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox failed as a host (not the guest's code, which is data).
    #[error("sandbox: {0}")]
    Sandbox(#[from] autodidact_sandbox::Error),
    /// The trajectory store failed.
    #[error("memory: {0}")]
    Memory(#[from] autodidact_memory::Error),
    /// A Python tools file could not be loaded.
    #[error("cannot load Python tools from {}: {reason}", path.display())]
    Tools {
        /// The file.
        path: PathBuf,
        /// What Python said.
        reason: String,
    },
    /// A prompt template or the REPL scaffold is broken.
    #[error("prompt: {0}")]
    Prompt(String),
    /// A model file named by `--model` (or the bootstrapped default) does not exist.
    #[error("model file {path} does not exist{hint}")]
    ModelMissing {
        /// The path that was looked for.
        path: PathBuf,
        /// Extra advice, e.g. to run the bootstrap; empty or starting with "; ".
        hint: String,
    },
    /// The linked llama.cpp was compiled for instructions this CPU lacks: the binary (or its
    /// target directory) was built on another machine.
    #[error(
        "this build of llama.cpp uses {} but this CPU lacks {}: it was built on another CPU. \
         Rebuild it here with `make build` (it compiles llama.cpp for the CPU it runs on)",
        compiled.join(" "), missing.join(" ")
    )]
    CpuMismatch {
        /// The instruction sets the CPU lacks, by ggml's names (`AVX512`, `AVX512_VNNI`).
        missing: Vec<String>,
        /// Every instruction set llama.cpp was compiled with.
        compiled: Vec<String>,
    },
    /// llama.cpp could not load a model file.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// What llama.cpp logged about it, or a summary.
        reason: String,
    },
    /// llama.cpp could not load a LoRA adapter.
    #[error("cannot load LoRA adapter {path}: {reason}")]
    AdapterLoad {
        /// The adapter file.
        path: PathBuf,
        /// What llama.cpp logged about it (e.g. "tensor ... has incorrect shape").
        reason: String,
    },
    /// An adapter id that is not (or no longer) loaded.
    #[error("no LoRA adapter with id {0} is loaded")]
    UnknownAdapter(u64),
    /// A `--model` string that names no backend.
    #[error("cannot understand model name {name:?}: {reason}")]
    ModelName {
        /// The string given.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The conversation has no message, or its last message is blank.
    #[error("empty prompt: the conversation needs a last message with some text")]
    EmptyPrompt,
    /// Sampling settings that make no sense (e.g. `n = 0`, `top_p > 1`).
    #[error("invalid sampling settings: {0}")]
    InvalidSampling(String),
    /// The prompt and the requested tokens do not fit the context window.
    #[error("{needed} tokens do not fit the context window of {n_ctx}")]
    ContextOverflow {
        /// Tokens needed.
        needed: usize,
        /// The context size.
        n_ctx: u32,
    },
    /// The GGUF chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
    /// llama.cpp failed at run time (context creation, decode).
    #[error("llama.cpp: {0}")]
    Llama(String),
    /// The operation is not offered by this backend (e.g. `score` over HTTP).
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// An HTTP request failed after its retries.
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// Status, transport error or timeout, after retries.
        reason: String,
    },
    /// A server answered with something that is not a valid OpenAI-style response.
    #[error("bad response from {url}: {reason}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The model's worker thread has stopped (it panicked or was shut down).
    #[error("the model worker thread has stopped")]
    WorkerGone,
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
