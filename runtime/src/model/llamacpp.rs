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

pub mod bench;
pub mod cpu;
mod ffi;

use std::collections::BTreeMap;
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
    AdapterId, Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage,
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
    /// Context size in tokens, shared by the sequences of a group; 0: the model's own.
    pub n_ctx: u32,
    /// The most sequences decoded together; larger groups run in several rounds.
    pub max_group: u32,
    /// Tokens per `llama_decode` call for prompts (logical batch).
    pub n_batch: u32,
    /// llama.cpp's flash-attention kernel; on by default. Without it, decoding on this CPU
    /// backend is 2.2x (one sequence) to 3.5x (a group of 8) faster at 1,500 tokens of context
    /// (`bench model --no-flash-attention`), but llama.cpp's batched and one-token attention
    /// paths then round differently: `score` and the sampling log-probs disagreed by up to 0.22
    /// nats on SmolLM2, where with the kernel they agree exactly. Turn it off only where
    /// nothing compares those log-probs.
    pub flash_attention: bool,
}

impl Default for LlamaCppConfig {
    fn default() -> Self {
        LlamaCppConfig {
            path: super::smollm2_path(),
            threads: None,
            n_ctx: 8192,
            max_group: 16,
            n_batch: 2048,
            flash_attention: true,
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
    /// Context size in use.
    pub n_ctx: u32,
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
    template: ChatTemplate,
    eog: Vec<u32>,
    adapters: BTreeMap<u64, ffi::OwnedAdapter>,
    active: Option<(u64, f32)>,
    next_adapter: u64,
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
    loop {
        // Serve jobs with a context until one needs `&mut model` (or the channel closes).
        let pending = serve(&model, &mut shared, &jobs);
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
        threads,
        architecture,
        weight_buffers: weight_buffers(&log),
    };
    let shared = Shared {
        config,
        threads,
        n_ctx,
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
fn serve(model: &LlamaModel, shared: &mut Shared, jobs: &mpsc::Receiver<Job>) -> Option<Job> {
    let mut engine = match Engine::new(model, shared) {
        Ok(e) => e,
        Err(e) => {
            // Without a context only adapter jobs can run; fail the others with the reason.
            let msg = e.to_string();
            loop {
                match jobs.recv().ok()? {
                    j @ (Job::LoadAdapter { .. } | Job::UnloadAdapter { .. }) => return Some(j),
                    j => fail(j, Error::Llama(msg.clone())),
                }
            }
        }
    };
    loop {
        match jobs.recv().ok()? {
            j @ (Job::LoadAdapter { .. } | Job::UnloadAdapter { .. }) => return Some(j),
            Job::Generate { messages, n, sampling, reply } => {
                let _ = reply.send(engine.generate(model, shared, &messages, n, &sampling));
            }
            Job::Score { messages, completion, reply } => {
                let _ = reply.send(engine.score(model, shared, &messages, &completion));
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
            Job::Prefill { n_tokens, reply } => {
                let _ = reply.send(engine.prefill(model, n_tokens));
            }
            Job::SetAdapter { adapter, reply } => {
                let _ = reply.send(engine.set_adapter(shared, adapter));
            }
        }
    }
}

fn fail(job: Job, e: Error) {
    match job {
        Job::Generate { reply, .. } => drop(reply.send(Err(e))),
        Job::Score { reply, .. } => drop(reply.send(Err(e))),
        Job::Tokenize { reply, .. } => drop(reply.send(Err(e))),
        Job::Embed { reply, .. } => drop(reply.send(Err(e))),
        Job::Prefill { reply, .. } => drop(reply.send(Err(e))),
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

/// One sequence of a group being decoded.
struct Seq {
    id: i32,
    rng: Rng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    text: Vec<u8>,
    /// Where `text` ends if a stop string was found.
    cut: Option<usize>,
    /// The next KV position.
    pos: i32,
    /// Tokens to feed in the next batch; logprobs of all but the first are still to fill.
    pending: Vec<u32>,
    /// Index in `logprobs` of `pending[0]`.
    pending_at: usize,
    next_continuation: usize,
    /// Set when a forced continuation reached `max_new_tokens`: decode once more to fill its
    /// log-probs, then finish.
    fill_then_stop: bool,
    done: Option<FinishReason>,
}

impl<'m> Engine<'m> {
    fn new(model: &'m LlamaModel, shared: &mut Shared) -> Result<Self> {
        let threads = i32::try_from(shared.threads).unwrap_or(i32::MAX);
        let n_batch = shared.config.n_batch.clamp(1, shared.n_ctx);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(shared.n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_seq_max(shared.config.max_group.max(1))
            .with_kv_unified(true)
            .with_flash_attention_policy(flash_attention(&shared.config))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let backend = backend()?;
        let (ctx, log) = ffi::capture(|| model.new_context(backend, params));
        let ctx = ctx.map_err(|e| Error::Llama(ffi::reason_from_log(&log, &e.to_string())))?;
        let batch_cap = n_batch as usize;
        let mut engine = Engine {
            ctx,
            batch: LlamaBatch::new(batch_cap, shared.config.max_group.max(1) as i32),
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
    fn eval(
        &mut self,
        tokens: &[LlamaToken],
        want_from: usize,
        mut on_logits: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let mut start = 0;
        while start < tokens.len() {
            let end = (start + self.batch_cap).min(tokens.len());
            self.batch.clear();
            for (i, &t) in tokens.iter().enumerate().take(end).skip(start) {
                self.batch
                    .add(t, i as i32, &[0], i >= want_from)
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

    fn generate(
        &mut self,
        model: &LlamaModel,
        shared: &Shared,
        messages: &[Message],
        n: usize,
        s: &Sampling,
    ) -> Result<Vec<Completion>> {
        let prompt = self.prompt_tokens(model, shared, messages)?;
        let max_group = shared.config.max_group.max(1) as usize;
        let seed = s.seed_or_clock();
        let mut out = Vec::with_capacity(n);
        let mut first = 0;
        while first < n {
            let k = (n - first).min(max_group);
            out.extend(self.generate_round(model, shared, &prompt, first, k, s, seed)?);
            first += k;
        }
        Ok(out)
    }

    /// Decodes sequences `first..first + k` of a group together, after one prompt evaluation.
    #[allow(clippy::too_many_arguments)]
    fn generate_round(
        &mut self,
        model: &LlamaModel,
        shared: &Shared,
        prompt: &[LlamaToken],
        first: usize,
        k: usize,
        s: &Sampling,
        seed: u64,
    ) -> Result<Vec<Completion>> {
        let needed = prompt.len() + k * s.max_new_tokens;
        if needed > shared.n_ctx as usize {
            return Err(Error::ContextOverflow { needed, n_ctx: shared.n_ctx });
        }
        let vocab = model.vocab();
        let continuations: Vec<Vec<u32>> = s
            .continuations
            .iter()
            .map(|c| vocab.tokenize(c.as_bytes(), false, false).iter().map(|t| t.0 as u32).collect())
            .collect();

        self.forget();
        let t_prompt = Instant::now();
        self.eval(prompt, prompt.len() - 1, |_, _| {})?;
        for j in 1..k {
            self.ctx
                .copy_kv_cache_seq(0, j as i32, None, None)
                .map_err(|e| Error::Llama(format!("sharing the prompt's KV cache: {e}")))?;
        }
        let prompt_ms = t_prompt.elapsed().as_secs_f64() * 1e3;
        let t_gen = Instant::now();

        let mut seqs: Vec<Seq> = (0..k)
            .map(|j| Seq {
                id: j as i32,
                rng: Rng::new(seed, (first + j) as u64),
                tokens: Vec::new(),
                logprobs: Vec::new(),
                text: Vec::new(),
                cut: None,
                pos: prompt.len() as i32,
                pending: Vec::new(),
                pending_at: 0,
                next_continuation: 0,
                fill_then_stop: false,
                done: None,
            })
            .collect();
        let last = self.batch_index_of_last(prompt.len());
        for seq in &mut seqs {
            let logits = self.ctx.get_logits_ith(last);
            step(seq, logits, s, shared, &continuations, &vocab, &mut self.scratch);
        }

        let mut index: Vec<(usize, usize, usize)> = Vec::with_capacity(k); // seq, first idx, count
        while seqs.iter().any(|q| q.done.is_none()) {
            self.batch.clear();
            index.clear();
            let mut at = 0usize;
            for (qi, q) in seqs.iter_mut().enumerate().filter(|(_, q)| q.done.is_none()) {
                for &t in &q.pending {
                    self.batch
                        .add(LlamaToken(t as i32), q.pos, &[q.id], true)
                        .map_err(|e| Error::Llama(format!("batch: {e}")))?;
                    q.pos += 1;
                }
                index.push((qi, at, q.pending.len()));
                at += q.pending.len();
            }
            self.ctx.decode(&mut self.batch).map_err(llama_err("decoding a group"))?;
            for &(qi, at, count) in &index {
                let q = &mut seqs[qi];
                // Fill the log-probs of forced continuation tokens, now that their logits exist.
                for j in 1..count {
                    let logits = self.ctx.get_logits_ith((at + j - 1) as i32);
                    let tok = q.pending[j] as usize;
                    q.logprobs[q.pending_at + j] = logits[tok] - sampler::log_z(logits);
                }
                if q.fill_then_stop {
                    q.done = Some(FinishReason::Length);
                    continue;
                }
                let logits = self.ctx.get_logits_ith((at + count - 1) as i32);
                step(q, logits, s, shared, &continuations, &vocab, &mut self.scratch);
            }
        }
        let generation_ms = t_gen.elapsed().as_secs_f64() * 1e3;
        self.forget();

        Ok(seqs
            .into_iter()
            .map(|q| {
                let end = q.cut.unwrap_or(q.text.len());
                Completion {
                    text: String::from_utf8_lossy(&q.text[..end]).into_owned(),
                    usage: Usage { prompt_tokens: prompt.len(), completion_tokens: q.tokens.len() },
                    tokens: q.tokens,
                    token_logprobs: q.logprobs,
                    finish_reason: q.done.unwrap_or(FinishReason::Length),
                    timings: Timings { prompt_ms, generation_ms },
                }
            })
            .collect())
    }

    /// The batch index of the prompt's last token in the last chunk `eval` decoded.
    fn batch_index_of_last(&self, n_prompt: usize) -> i32 {
        let in_last_chunk = (n_prompt - 1) % self.batch_cap;
        in_last_chunk as i32
    }
}

/// Chooses the next token(s) of `q` from `logits`, applying stop rules and budget forcing.
fn step(
    q: &mut Seq,
    logits: &[f32],
    s: &Sampling,
    shared: &Shared,
    continuations: &[Vec<u32>],
    vocab: &llama_cpp_2::vocab::LlamaVocab<'_>,
    scratch: &mut Scratch,
) {
    q.pending.clear();
    let forcing = q.tokens.len() < s.min_new_tokens;
    let ban_eog = forcing && continuations.is_empty();
    let banned: &[u32] = if ban_eog { &shared.eog } else { &[] };
    let c = sampler::choose(logits, s, &mut q.rng, banned, scratch);
    let is_eog = shared.eog.contains(&c.token);
    if is_eog && forcing {
        // Budget forcing: instead of stopping, append the next continuation ("Wait").
        let cont = &continuations[q.next_continuation % continuations.len()];
        q.next_continuation += 1;
        let room = s.max_new_tokens - q.tokens.len();
        let cont = &cont[..cont.len().min(room)];
        q.pending_at = q.tokens.len();
        for (j, &t) in cont.iter().enumerate() {
            q.tokens.push(t);
            // The first one's log-prob comes from these logits; the rest after decoding.
            q.logprobs.push(if j == 0 { logits[t as usize] - sampler::log_z(logits) } else { f32::NAN });
            q.text.extend(vocab.token_to_piece(LlamaToken(t as i32), false, None));
        }
        q.pending.extend_from_slice(cont);
        if q.tokens.len() >= s.max_new_tokens {
            if cont.len() > 1 {
                q.fill_then_stop = true;
            } else {
                q.done = Some(FinishReason::Length);
            }
        }
        return;
    } else {
        q.tokens.push(c.token);
        q.logprobs.push(c.logprob);
        q.pending_at = q.tokens.len() - 1;
        if is_eog {
            q.done = Some(FinishReason::Stop);
            return;
        }
        let before = q.text.len();
        q.text.extend(vocab.token_to_piece(LlamaToken(c.token as i32), false, None));
        q.pending.push(c.token);
        if q.tokens.len() >= s.min_new_tokens
            && let Some(at) = find_stop(&q.text, before, &s.stop)
        {
            q.cut = Some(at);
            q.done = Some(FinishReason::Stop);
            return;
        }
    }
    if q.tokens.len() >= s.max_new_tokens {
        q.done = Some(FinishReason::Length);
    }
}

/// The start of the first stop string that ends after byte `before` of `text`.
fn find_stop(text: &[u8], before: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            let stop = stop.as_bytes();
            let from = before.saturating_sub(stop.len() - 1);
            text[from..].windows(stop.len()).position(|w| w == stop).map(|p| from + p)
        })
        .min()
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
