//! The in-process backend: a GGUF model run by llama.cpp (through `llama-cpp-2`).
//!
//! **One worker thread owns the model.** Every call becomes a job on a channel; the worker runs
//! jobs one at a time and answers through a oneshot channel, so async callers never block
//! tokio and concurrent callers simply queue. llama.cpp's own threads (`threads` in
//! [`LlamaCppConfig`]) do the math inside each job. llama.cpp is built without OpenMP, whose
//! spin-waiting collapsed throughput when another process competed for the cores.
//!
//! **Groups share one prompt.** `chat_group` evaluates the prompt once on sequence 0, copies
//! its KV cells to sequences 1..n (a unified KV cache, so the cells are shared, not
//! duplicated), and then decodes all n sequences together: each step is one batch holding one
//! token per live sequence.
//!
//! **Adapters swap without reloading the base model.** `llama-cpp-2` needs `&mut` on the model
//! to load an adapter, so the worker drops its context, loads (or frees) the adapter and makes
//! a new context (a few ms); jobs sent meanwhile wait in the channel. Activating a loaded
//! adapter only re-points the context. The KV cache is cleared at the start of every job, so
//! nothing computed under one adapter is reused under another. Adapters are freed when
//! unloaded (`ffi::OwnedAdapter`); llama-cpp-2 alone would leak them.
//!
//! **Log-probs are computed by one function** (`sampler::log_z`) when sampling and when
//! scoring, from the raw logits, so `score` reproduces the sampling log-probs.

mod batch;
pub mod bench;
pub mod cpu;
mod ffi;

pub use batch::KvState;

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, mpsc};
use std::time::Instant;

use async_trait::async_trait;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::sampler::{self, Rng, Scratch};
use super::template::{CHATML, ChatTemplate};
use super::{
    AdapterId, Completion, LanguageModel, Message, Sampling,
    check_prompt, check_request,
};
use crate::{Error, Result};

/// Settings of the llama.cpp backend.
#[derive(Debug, Clone)]
pub struct LlamaCppConfig {
    /// The GGUF model file.
    pub path: PathBuf,
    /// Threads for llama.cpp's math; `None`: all available cores.
    pub threads: Option<usize>,
    /// The longest sequence in tokens (prompt and reply); 0: the model's own training context.
    pub n_ctx: u32,
    /// KV cells shared by every sequence decoded at once and every prefix kept for reuse;
    /// 0: twice `n_ctx`.
    pub kv_cells: u32,
    /// The most sequences decoded together, across all requests; more wait for a free place.
    pub max_group: u32,
    /// Reuse the KV cells of a shared prompt prefix (a system prompt, an agent's earlier
    /// turns) instead of evaluating it again. Off only to measure what it saves: the members
    /// of one `chat_group` share their prompt either way.
    pub reuse_prefixes: bool,
    /// Tokens per `llama_decode` call for prompts (logical batch).
    pub n_batch: u32,
    /// llama.cpp's flash-attention kernel; on by default. Without it, decoding at 1,500 tokens
    /// of context was 2.2x (one sequence) to 3.5x (a group of 8) faster on an earlier CPU and
    /// no faster on a Sapphire Rapids Xeon (`bench model --no-flash-attention`), but llama.cpp's batched and one-token attention
    /// paths then round differently: `score` and the sampling log-probs disagreed by up to 0.22
    /// nats on SmolLM2, where with the kernel they agree exactly. Turn it off only where
    /// nothing compares those log-probs.
    pub flash_attention: bool,
    /// The element type of the KV cache.
    pub kv_type: KvType,
}

/// The element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision (the default).
    #[default]
    F16,
    /// Single precision.
    F32,
    /// 8-bit blocks (llama.cpp's Q8_0).
    Q8_0,
}

impl KvType {
    /// `f16`, `f32` or `q8_0`.
    pub fn parse(s: &str) -> Result<KvType> {
        match s {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            "q8_0" => Ok(KvType::Q8_0),
            other => Err(Error::Llama(format!("unknown KV cache type {other:?}: expected f16, f32 or q8_0"))),
        }
    }

    /// `f16`, `f32` or `q8_0`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
        }
    }

    fn ggml(self) -> llama_cpp_2::context::params::KvCacheType {
        match self {
            KvType::F16 => llama_cpp_2::context::params::KvCacheType::F16,
            KvType::F32 => llama_cpp_2::context::params::KvCacheType::F32,
            KvType::Q8_0 => llama_cpp_2::context::params::KvCacheType::Q8_0,
        }
    }
}

impl Default for LlamaCppConfig {
    fn default() -> Self {
        LlamaCppConfig {
            path: super::smollm2_path(),
            threads: None,
            n_ctx: 8192,
            kv_cells: 0,
            max_group: 16,
            reuse_prefixes: true,
            n_batch: 2048,
            flash_attention: true,
            kv_type: KvType::default(),
        }
    }
}

/// Facts about the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// The longest sequence in tokens.
    pub n_ctx: u32,
    /// KV cells shared by all sequences.
    pub kv_cells: u32,
    /// Threads llama.cpp uses.
    pub threads: usize,
    /// `general.architecture`.
    pub architecture: String,
    /// The buffer types holding the weights, as llama.cpp logged them while loading
    /// (`CPU_Mapped`, `CPU_REPACK`; `AMX` would mean the AMX kernels are in use).
    pub weight_buffers: Vec<String>,
}

/// A reply scored by teacher forcing ([`LlamaCppModel::score_detailed`]), with the token ids
/// the scores refer to: what a trainer needs to compare its own log-probs with llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredReply {
    /// The rendered prompt's tokens (chat template applied, generation prompt included).
    pub prompt_tokens: Vec<u32>,
    /// The reply's tokens.
    pub completion_tokens: Vec<u32>,
    /// Log-probability of each reply token (what [`LanguageModel::score`] returns).
    pub logprobs: Vec<f32>,
    /// The most likely token at each reply position, under the same logits.
    pub argmax: Vec<u32>,
}

/// A GGUF model served by a dedicated llama.cpp worker thread.
#[derive(Debug)]
pub struct LlamaCppModel {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
    info: ModelInfo,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Job {
    Generate { messages: Vec<Message>, n: usize, sampling: Sampling, reply: Reply<Vec<Completion>> },
    Score { messages: Vec<Message>, completion: String, reply: Reply<ScoredReply> },
    Tokenize { messages: Vec<Message>, completion: String, reply: Reply<(Vec<u32>, Vec<u32>)> },
    Embed { text: String, reply: Reply<Vec<f32>> },
    Prefill { n_tokens: usize, reply: Reply<f64> },
    KvState { reply: Reply<KvState> },
    LoadAdapter { path: PathBuf, reply: Reply<AdapterId> },
    SetAdapter { adapter: Option<(AdapterId, f32)>, reply: Reply<()> },
    UnloadAdapter { adapter: AdapterId, reply: Reply<()> },
}

fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    // Before any llama.cpp code runs: a kernel built for another CPU would die of SIGILL.
    cpu::check()?;
    BACKEND
        .get_or_init(|| {
            let b = LlamaBackend::init().map_err(|e| e.to_string());
            ffi::install_log_callback();
            b
        })
        .as_ref()
        .map_err(|e| Error::Llama(format!("cannot initialise the backend: {e}")))
}

impl LlamaCppModel {
    /// Loads the model on a new worker thread. A missing file, a file that is not a GGUF model,
    /// or one llama.cpp cannot load, is an error that says why.
    pub async fn load(config: LlamaCppConfig) -> Result<Self> {
        let path = config.path.clone();
        if !path.is_file() {
            let hint = if path == super::smollm2_path() {
                "; run scripts/bootstrap.sh to fetch it (it goes to $AUTODIDACT_HOME, \
                 default ~/.cache/autodidact)"
                    .to_string()
            } else {
                String::new()
            };
            return Err(Error::ModelMissing { path, hint });
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let worker = std::thread::Builder::new()
            .name("llamacpp".into())
            .spawn(move || worker_main(config, rx, ready_tx))
            .map_err(|e| Error::Llama(format!("cannot start the worker thread: {e}")))?;
        match ready_rx.await {
            Ok(Ok(info)) => Ok(LlamaCppModel { jobs: Some(tx), worker: Some(worker), info }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => Err(Error::WorkerGone),
        }
    }

    /// Facts about the loaded model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// What the KV cache holds now: live and kept sequences, and the cells of each sequence id.
    pub async fn kv_state(&self) -> Result<KvState> {
        self.call(|reply| Job::KvState { reply }).await
    }

    /// Benchmark helper: evaluates `n_tokens` random tokens as one prompt (llama-bench's pp
    /// test) and returns the milliseconds it took.
    pub async fn prefill_ms(&self, n_tokens: usize) -> Result<f64> {
        self.call(|reply| Job::Prefill { n_tokens, reply }).await
    }

    /// Like [`LanguageModel::score`], with the prompt's and the reply's token ids and the most
    /// likely token at each reply position. One code path computes both.
    pub async fn score_detailed(&self, messages: &[Message], completion: &str) -> Result<ScoredReply> {
        check_prompt(messages)?;
        let (messages, completion) = (messages.to_vec(), completion.to_string());
        self.call(|reply| Job::Score { messages, completion, reply }).await
    }

    /// The token ids `score` and `chat` would use: the rendered prompt (chat template applied,
    /// generation prompt included) and `completion` as its reply.
    pub async fn tokenize_chat(&self, messages: &[Message], completion: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        check_prompt(messages)?;
        let (messages, completion) = (messages.to_vec(), completion.to_string());
        self.call(|reply| Job::Tokenize { messages, completion, reply }).await
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.as_ref().ok_or(Error::WorkerGone)?.send(job(tx)).map_err(|_| Error::WorkerGone)?;
        rx.await.map_err(|_| Error::WorkerGone)?
    }
}

impl Drop for LlamaCppModel {
    fn drop(&mut self) {
        // Closing the channel ends the worker, which frees adapters, then the model.
        self.jobs.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[async_trait]
impl LanguageModel for LlamaCppModel {
    fn describe(&self) -> String {
        format!("llamacpp:{}", self.info.path.display())
    }

    fn backend_name(&self) -> &'static str {
        "llamacpp"
    }

    async fn chat_group(
        &self,
        messages: &[Message],
        n: usize,
        sampling: &Sampling,
    ) -> Result<Vec<Completion>> {
        check_request(messages, n, sampling)?;
        let (messages, sampling) = (messages.to_vec(), sampling.clone());
        self.call(|reply| Job::Generate { messages, n, sampling, reply }).await
    }

    async fn score(&self, messages: &[Message], completion: &str) -> Result<Vec<f32>> {
        check_prompt(messages)?;
        let (messages, completion) = (messages.to_vec(), completion.to_string());
        Ok(self.call(|reply| Job::Score { messages, completion, reply }).await?.logprobs)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>> {
        if text.trim().is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let text = text.to_string();
        self.call(|reply| Job::Embed { text, reply }).await
    }

    async fn load_adapter(&self, path: &Path) -> Result<AdapterId> {
        let path = path.to_path_buf();
        self.call(|reply| Job::LoadAdapter { path, reply }).await
    }

    async fn set_adapter(&self, adapter: Option<(AdapterId, f32)>) -> Result<()> {
        self.call(|reply| Job::SetAdapter { adapter, reply }).await
    }

    async fn unload_adapter(&self, adapter: AdapterId) -> Result<()> {
        self.call(|reply| Job::UnloadAdapter { adapter, reply }).await
    }
}

// ---------------------------------------------------------------------------------------------
// The worker thread.

/// What the worker keeps across contexts.
struct Shared {
    config: LlamaCppConfig,
    threads: usize,
    n_ctx: u32,
    kv_cells: u32,
    template: ChatTemplate,
    eog: Vec<u32>,
    adapters: BTreeMap<u64, ffi::OwnedAdapter>,
    active: Option<(u64, f32)>,
    next_adapter: u64,
}

impl Shared {
    /// Sequence ids: as many for decoding as for finished sequences kept for their prefixes.
    fn n_seq_max(&self) -> usize {
        2 * self.config.max_group.max(1) as usize
    }
}

fn worker_main(
    config: LlamaCppConfig,
    jobs: mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<ModelInfo>>,
) {
    let (mut model, mut shared, info) = match load_model(config) {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    // Jobs received but not started, in order; kept across contexts.
    let mut queue = VecDeque::new();
    loop {
        // Serve jobs with a context until one needs `&mut model` (or the channel closes).
        let pending = serve(&model, &mut shared, &jobs, &mut queue);
        match pending {
            None => break,
            Some(Job::LoadAdapter { path, reply }) => {
                let _ = reply.send(load_adapter(&mut model, &mut shared, &path));
            }
            Some(Job::UnloadAdapter { adapter, reply }) => {
                let r = match shared.adapters.remove(&adapter.0) {
                    Some(a) => {
                        if shared.active.is_some_and(|(id, _)| id == adapter.0) {
                            shared.active = None;
                        }
                        drop(a);
                        Ok(())
                    }
                    None => Err(Error::UnknownAdapter(adapter.0)),
                };
                let _ = reply.send(r);
            }
            Some(_) => unreachable!("serve returns only adapter loads and unloads"),
        }
    }
    // Adapters must be freed before the model.
    shared.adapters.clear();
    drop(model);
}

fn load_model(config: LlamaCppConfig) -> Result<(LlamaModel, Shared, ModelInfo)> {
    let backend = backend()?;
    let path = config.path.clone();
    if path.is_file() {
        super::check_gguf(&path).map_err(|why| Error::ModelLoad { path: path.clone(), reason: format!("damaged GGUF: {why}") })?;
    }
    let (model, log) =
        ffi::capture(|| LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()));
    let model = model.map_err(|e| Error::ModelLoad {
        path: path.clone(),
        reason: ffi::reason_from_log(&log, &format!("{e} (not a loadable GGUF model)")),
    })?;
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1);
    let n_ctx_train = model.n_ctx_train();
    let n_ctx = if config.n_ctx == 0 { n_ctx_train } else { config.n_ctx.min(n_ctx_train.max(1)) };
    let kv_cells = if config.kv_cells == 0 { n_ctx.saturating_mul(2) } else { config.kv_cells.max(n_ctx) };
    let vocab = model.vocab();
    let piece = |t: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
    let bos = if vocab.should_add_bos() { piece(vocab.bos()) } else { String::new() };
    let eos = piece(vocab.eos());
    let source = model.meta_val_str("tokenizer.chat_template").unwrap_or_else(|_| CHATML.into());
    let template = ChatTemplate::new(&source, &bos, &eos)?;
    let eog: Vec<u32> =
        vocab.tokens().filter(|&t| vocab.is_eog(t)).map(|t| t.0 as u32).collect();
    let architecture = model.meta_val_str("general.architecture").unwrap_or_default();
    let info = ModelInfo {
        path: path.clone(),
        n_vocab: model.n_vocab().max(0) as usize,
        n_ctx,
        kv_cells,
        threads,
        architecture,
        weight_buffers: weight_buffers(&log),
    };
    let shared = Shared {
        config,
        threads,
        n_ctx,
        kv_cells,
        template,
        eog,
        adapters: BTreeMap::new(),
        active: None,
        next_adapter: 1,
    };
    Ok((model, shared, info))
}

/// The buffer names of llama.cpp's `load_tensors:   CPU_REPACK model buffer size = ...` lines.
fn weight_buffers(log: &str) -> Vec<String> {
    let mut names: Vec<String> = log
        .lines()
        .filter_map(|l| l.split_once(" model buffer size"))
        .filter_map(|(head, _)| head.split_whitespace().last().map(str::to_string))
        .collect();
    names.dedup();
    names
}

fn load_adapter(model: &mut LlamaModel, shared: &mut Shared, path: &Path) -> Result<AdapterId> {
    if !path.is_file() {
        return Err(Error::AdapterLoad { path: path.into(), reason: "no such file".into() });
    }
    super::check_gguf(path).map_err(|why| Error::AdapterLoad { path: path.into(), reason: format!("damaged GGUF: {why}") })?;
    let (adapter, log) = ffi::capture(|| model.lora_adapter_init(path));
    let adapter = adapter.map_err(|e| Error::AdapterLoad {
        path: path.into(),
        reason: ffi::reason_from_log(&log, &e.to_string()),
    })?;
    let id = shared.next_adapter;
    shared.next_adapter += 1;
    shared.adapters.insert(id, ffi::OwnedAdapter::new(adapter));
    Ok(AdapterId(id))
}

/// Serves jobs with one context. Returns the job that needs the context gone, or `None` when
/// the channel is closed.
///
/// Jobs start in the order they came. Generation requests join the [`batch::Batcher`] and are
/// decoded together; tokenizing and embedding need nothing of the context and run between
/// steps; everything else (scoring, a prefill benchmark, adapter changes) waits until no
/// request is in flight, then runs alone, so a request never changes adapter halfway.
fn serve(model: &LlamaModel, shared: &mut Shared, jobs: &mpsc::Receiver<Job>, queue: &mut VecDeque<Job>) -> Option<Job> {
    let mut engine = match Engine::new(model, shared) {
        Ok(e) => e,
        Err(e) => {
            // Without a context only adapter jobs can run; fail the others with the reason.
            let msg = e.to_string();
            loop {
                let job = match queue.pop_front() {
                    Some(j) => j,
                    None => jobs.recv().ok()?,
                };
                match job {
                    j @ (Job::LoadAdapter { .. } | Job::UnloadAdapter { .. }) => return Some(j),
                    j => fail(j, Error::Llama(msg.clone())),
                }
            }
        }
    };
    let mut batcher = batch::Batcher::new(shared);
    loop {
        if batcher.idle() && queue.is_empty() {
            queue.push_back(jobs.recv().ok()?);
        }
        while let Ok(j) = jobs.try_recv() {
            queue.push_back(j);
        }
        while let Some(job) = queue.pop_front() {
            match job {
                Job::Generate { messages, n, sampling, reply } => {
                    batcher.submit(model, &engine, shared, &messages, n, sampling, reply);
                }
                Job::Tokenize { messages, completion, reply } => {
                    let r = engine.prompt_tokens(model, shared, &messages).map(|p| {
                        let c = model.vocab().tokenize(completion.as_bytes(), false, false);
                        (p.iter().map(|t| t.0 as u32).collect(), c.iter().map(|t| t.0 as u32).collect())
                    });
                    let _ = reply.send(r);
                }
                Job::Embed { text, reply } => {
                    let _ = reply.send(embed(model, shared, &text));
                }
                Job::KvState { reply } => {
                    let _ = reply.send(Ok(batcher.state(&engine)));
                }
                j if !batcher.idle() => {
                    queue.push_front(j);
                    break;
                }
                j @ (Job::LoadAdapter { .. } | Job::UnloadAdapter { .. }) => return Some(j),
                Job::Score { messages, completion, reply } => {
                    batcher.clear(&mut engine);
                    let _ = reply.send(engine.score(model, shared, &messages, &completion));
                }
                Job::Prefill { n_tokens, reply } => {
                    batcher.clear(&mut engine);
                    let _ = reply.send(engine.prefill(model, n_tokens));
                }
                Job::SetAdapter { adapter, reply } => {
                    batcher.clear(&mut engine);
                    let _ = reply.send(engine.set_adapter(shared, adapter));
                }
            }
        }
        batcher.advance(model, &mut engine, shared);
    }
}

fn fail(job: Job, e: Error) {
    match job {
        Job::Generate { reply, .. } => drop(reply.send(Err(e))),
        Job::Score { reply, .. } => drop(reply.send(Err(e))),
        Job::Tokenize { reply, .. } => drop(reply.send(Err(e))),
        Job::Embed { reply, .. } => drop(reply.send(Err(e))),
        Job::Prefill { reply, .. } => drop(reply.send(Err(e))),
        Job::KvState { reply, .. } => drop(reply.send(Err(e))),
        Job::LoadAdapter { reply, .. } => drop(reply.send(Err(e))),
        Job::SetAdapter { reply, .. } => drop(reply.send(Err(e))),
        Job::UnloadAdapter { reply, .. } => drop(reply.send(Err(e))),
    }
}

fn llama_err(what: &str) -> impl Fn(llama_cpp_2::DecodeError) -> Error + '_ {
    move |e| Error::Llama(format!("{what}: {e}"))
}

fn flash_attention(config: &LlamaCppConfig) -> llama_cpp_sys_2::llama_flash_attn_type {
    if config.flash_attention {
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
    } else {
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
    }
}

/// A context and the buffers that go with it.
struct Engine<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    batch_cap: usize,
    scratch: Scratch,
}

impl<'m> Engine<'m> {
    fn new(model: &'m LlamaModel, shared: &mut Shared) -> Result<Self> {
        let threads = i32::try_from(shared.threads).unwrap_or(i32::MAX);
        let n_batch = shared.config.n_batch.clamp(1, shared.n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(shared.kv_cells))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_seq_max(shared.n_seq_max() as u32)
            .with_kv_unified(true)
            .with_type_k(shared.config.kv_type.ggml())
            .with_type_v(shared.config.kv_type.ggml())
            .with_flash_attention_policy(flash_attention(&shared.config))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let backend = backend()?;
        let (ctx, log) = ffi::capture(|| model.new_context(backend, params));
        let ctx = ctx.map_err(|e| Error::Llama(ffi::reason_from_log(&log, &e.to_string())))?;
        let batch_cap = n_batch as usize;
        let mut engine = Engine {
            ctx,
            batch: LlamaBatch::new(batch_cap, 1),
            batch_cap,
            scratch: Scratch::default(),
        };
        let active = shared.active;
        engine.set_adapter(shared, active.map(|(id, s)| (AdapterId(id), s)))?;
        Ok(engine)
    }

    /// Drops every sequence's KV cells. Metadata only: zeroing the buffers (what
    /// `clear_kv_cache` does) would cost tens of milliseconds per call at 8k context.
    fn forget(&mut self) {
        let _ = self.ctx.clear_kv_cache_seq(None, None, None);
    }

    fn set_adapter(&mut self, shared: &mut Shared, adapter: Option<(AdapterId, f32)>) -> Result<()> {
        match adapter {
            Some((id, scale)) => {
                let a = shared.adapters.get_mut(&id.0).ok_or(Error::UnknownAdapter(id.0))?;
                self.ctx
                    .lora_adapter_set(a.get_mut(), scale)
                    .map_err(|e| Error::Llama(format!("cannot activate adapter {}: {e}", id.0)))?;
                shared.active = Some((id.0, scale));
            }
            None => {
                if let Some((id, _)) = shared.active
                    && let Some(a) = shared.adapters.get_mut(&id)
                {
                    self.ctx
                        .lora_adapter_remove(a.get_mut())
                        .map_err(|e| Error::Llama(format!("cannot deactivate adapter: {e}")))?;
                }
                shared.active = None;
            }
        }
        self.forget();
        Ok(())
    }

    fn prompt_tokens(&self, model: &LlamaModel, shared: &Shared, messages: &[Message]) -> Result<Vec<LlamaToken>> {
        // A trailing assistant message is a prefill: the generation prompt, then its text.
        let text = match messages.split_last() {
            Some((last, rest)) if last.role == crate::model::Role::Assistant && !rest.is_empty() => {
                format!("{}{}", shared.template.render(rest, true)?, last.content)
            }
            _ => shared.template.render(messages, true)?,
        };
        let tokens = model.vocab().tokenize(text.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        Ok(tokens)
    }

    /// Evaluates `tokens` on sequence 0 from position 0, in chunks. `on_logits(i, logits)` is
    /// called for every position `i >= want_from` with the logits predicting position `i + 1`.
    fn eval(&mut self, tokens: &[LlamaToken], want_from: usize, on_logits: impl FnMut(usize, &[f32])) -> Result<()> {
        self.eval_at(tokens, 0, 0, want_from, on_logits)
    }

    /// Evaluates `tokens` on sequence `seq` from position `pos0` and returns the logits after
    /// the last one.
    fn eval_seq(&mut self, tokens: &[LlamaToken], pos0: usize, seq: i32) -> Result<Vec<f32>> {
        let mut last = Vec::new();
        let n = tokens.len();
        self.eval_at(tokens, pos0, seq, n - 1, |_, logits| last = logits.to_vec())?;
        Ok(last)
    }

    fn eval_at(
        &mut self,
        tokens: &[LlamaToken],
        pos0: usize,
        seq: i32,
        want_from: usize,
        mut on_logits: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let mut start = 0;
        while start < tokens.len() {
            let end = (start + self.batch_cap).min(tokens.len());
            self.batch.clear();
            for (i, &t) in tokens.iter().enumerate().take(end).skip(start) {
                self.batch
                    .add(t, (pos0 + i) as i32, &[seq], i >= want_from)
                    .map_err(|e| Error::Llama(format!("batch: {e}")))?;
            }
            self.ctx.decode(&mut self.batch).map_err(llama_err("decoding the prompt"))?;
            for i in start.max(want_from)..end {
                on_logits(i, self.ctx.get_logits_ith((i - start) as i32));
            }
            start = end;
        }
        Ok(())
    }

    fn prefill(&mut self, model: &LlamaModel, n_tokens: usize) -> Result<f64> {
        let n_vocab = model.n_vocab().max(1) as u64;
        let mut rng = Rng::new(42, 0);
        let tokens: Vec<LlamaToken> = (0..n_tokens.max(1))
            .map(|_| LlamaToken((rng.next_f64() * n_vocab as f64) as i32))
            .collect();
        self.forget();
        let t = Instant::now();
        self.eval(&tokens, tokens.len() - 1, |_, _| {})?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        self.forget();
        Ok(ms)
    }

    fn score(
        &mut self,
        model: &LlamaModel,
        shared: &Shared,
        messages: &[Message],
        completion: &str,
    ) -> Result<ScoredReply> {
        let mut tokens = self.prompt_tokens(model, shared, messages)?;
        let n_prompt = tokens.len();
        let completion_tokens = model.vocab().tokenize(completion.as_bytes(), false, false);
        let ids = |ts: &[LlamaToken]| ts.iter().map(|t| t.0 as u32).collect::<Vec<u32>>();
        let mut scored = ScoredReply {
            prompt_tokens: ids(&tokens),
            completion_tokens: ids(&completion_tokens),
            logprobs: Vec::with_capacity(completion_tokens.len()),
            argmax: Vec::with_capacity(completion_tokens.len()),
        };
        if completion_tokens.is_empty() {
            return Ok(scored);
        }
        tokens.extend_from_slice(&completion_tokens);
        if tokens.len() > shared.n_ctx as usize {
            return Err(Error::ContextOverflow { needed: tokens.len(), n_ctx: shared.n_ctx });
        }
        self.forget();
        let all = tokens.clone();
        self.eval(&tokens, n_prompt - 1, |i, logits| {
            if let Some(next) = all.get(i + 1) {
                scored.logprobs.push(logits[next.0 as usize] - sampler::log_z(logits));
                let best = logits.iter().enumerate().fold(0, |b, (j, &x)| if x > logits[b] { j } else { b });
                scored.argmax.push(best as u32);
            }
        })?;
        self.forget();
        Ok(scored)
    }

}

/// Embeds `text` with a fresh embedding context: no adapter, so retrieval indexes stay valid
/// when the adapter changes.
fn embed(model: &LlamaModel, shared: &Shared, text: &str) -> Result<Vec<f32>> {
    let tokens = model.vocab().tokenize(text.as_bytes(), true, false);
    if tokens.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    if tokens.len() > shared.n_ctx as usize {
        return Err(Error::ContextOverflow { needed: tokens.len(), n_ctx: shared.n_ctx });
    }
    let n = tokens.len() as u32;
    let threads = i32::try_from(shared.threads).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n.max(64)))
        .with_n_batch(n.max(64))
        .with_n_ubatch(n.max(64))
        .with_n_seq_max(1)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let backend = backend()?;
    let (ctx, log) = ffi::capture(|| model.new_context(backend, params));
    let mut ctx = ctx.map_err(|e| Error::Llama(ffi::reason_from_log(&log, &e.to_string())))?;
    let mut batch = LlamaBatch::new(tokens.len(), 1);
    batch.add_sequence(&tokens, 0, true).map_err(|e| Error::Llama(format!("batch: {e}")))?;
    ctx.decode(&mut batch).map_err(llama_err("embedding"))?;
    let v = ctx.embeddings_seq_ith(0).map_err(|e| Error::Llama(format!("embedding: {e}")))?;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    Ok(v.iter().map(|x| x / norm).collect())
}
