//! Language models: one trait, [`LanguageModel`], and three backends.
//!
//! - [`llamacpp`]: a GGUF model in this process through llama.cpp, on a dedicated thread.
//!   It is the only backend that can return token ids, score text by teacher forcing and
//!   hot-swap LoRA adapters, which is what training needs.
//! - [`openai`]: any OpenAI-compatible HTTP server (vLLM, llama-server, hosted APIs).
//! - [`scripted`]: replays replies from a file, for tests and hostile-input checks.
//!
//! [`ModelSpec`] parses the `--model` names (`smollm2`, `path/to/file.gguf`,
//! `openai:URL#MODEL`, `scripted:PATH`) and [`open`] turns one into an
//! `Arc<dyn LanguageModel>`.

mod gguf_check;
pub mod llamacpp;
pub mod openai;
mod sampler;
pub mod scripted;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Error, Result};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user (or the runtime speaking for it, e.g. REPL output).
    User,
    /// The model itself.
    Assistant,
}

impl Role {
    /// The role's name in chat templates and the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message { role: Role::System, content: content.into() }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// Rejects a conversation with no message or a blank last message.
pub(crate) fn check_prompt(messages: &[Message]) -> Result<()> {
    match messages.last() {
        Some(m) if !m.content.trim().is_empty() => Ok(()),
        _ => Err(Error::EmptyPrompt),
    }
}

/// Checks what every backend's `chat_group` needs: a prompt, sane sampling and `n >= 1`.
pub(crate) fn check_request(messages: &[Message], n: usize, sampling: &Sampling) -> Result<()> {
    check_prompt(messages)?;
    sampling.validate()?;
    if n == 0 {
        return Err(Error::InvalidSampling("a group needs n >= 1".into()));
    }
    Ok(())
}

/// How to pick tokens, and when to stop.
///
/// The default is greedy decoding of at most 256 new tokens. `temperature == 0` means greedy;
/// `top_k == 0`, `top_p == 1` and `min_p == 0` switch those filters off.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: off).
    pub min_p: f32,
    /// Seed for the random choices; `None` draws one from the clock. Sequence `i` of a group
    /// uses a seed derived from this one and `i`.
    pub seed: Option<u64>,
    /// Stop when the text ends with one of these (the stop string is cut from `text`).
    pub stop: Vec<String>,
    /// Stop at the closing fence of the first ```` ``` ````-fenced block whose body contains
    /// one of these strings (the fence is kept, what follows it is cut). The agent loop passes
    /// its answer calls (`FINAL(`), so a reply ends once it has given its answer: the loop
    /// runs no block after the one that answers, and small models otherwise repeat the block
    /// until `max_new_tokens`. Held back by `min_new_tokens` like `stop`.
    pub stop_after_block: Vec<String>,
    /// The most tokens to generate.
    pub max_new_tokens: usize,
    /// Budget forcing (s1): end-of-generation and stop strings are suppressed until this many
    /// tokens have been generated.
    pub min_new_tokens: usize,
    /// Budget forcing (s1): when the model tries to stop before `min_new_tokens`, append the
    /// next of these strings (cycling), e.g. `"Wait"`. Empty: just forbid stopping.
    pub continuations: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: None,
            stop: Vec::new(),
            stop_after_block: Vec::new(),
            max_new_tokens: 256,
            min_new_tokens: 0,
            continuations: Vec::new(),
        }
    }
}

impl Sampling {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Sampling { max_new_tokens, ..Sampling::default() }
    }

    /// Random sampling at `temperature` with a fixed seed.
    pub fn seeded(temperature: f32, seed: u64, max_new_tokens: usize) -> Self {
        Sampling { temperature, seed: Some(seed), max_new_tokens, ..Sampling::default() }
    }

    /// Checks the settings, so that backends can rely on them.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidSampling(m.to_string()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1)");
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1");
        }
        if self.min_new_tokens > self.max_new_tokens {
            return bad("min_new_tokens must not exceed max_new_tokens");
        }
        if self.stop.iter().chain(&self.stop_after_block).any(String::is_empty) {
            return bad("stop strings must not be empty");
        }
        if self.continuations.iter().any(String::is_empty) {
            return bad("continuation strings must not be empty");
        }
        Ok(())
    }

    /// The seed to use when none is given.
    pub(crate) fn seed_or_clock(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64
        })
    }
}

/// Where [`Sampling::stop_after_block`] ends `text`: the byte just past the closing fence of
/// the first fenced block whose body contains one of `markers`, counting only fence lines
/// completed (by a newline) at byte `from` or later. A line whose trimmed start is
/// ```` ``` ```` opens a block, or closes the open one.
pub fn block_stop(text: &[u8], from: usize, markers: &[String]) -> Option<usize> {
    if markers.is_empty() {
        return None;
    }
    let mut open: Option<usize> = None;
    let mut start = 0;
    while let Some(nl) = text[start..].iter().position(|&b| b == b'\n') {
        let line = &text[start..start + nl];
        let trimmed = line.trim_ascii();
        if trimmed.starts_with(b"```") {
            match open {
                None => open = Some(start + nl + 1),
                Some(body) if start + nl >= from => {
                    let inner = &text[body..start];
                    if markers.iter().any(|m| !m.is_empty() && inner.windows(m.len()).any(|w| w == m.as_bytes())) {
                        return Some(start + line.trim_ascii_end().len());
                    }
                    open = None;
                }
                Some(_) => open = None,
            }
        }
        start += nl + 1;
    }
    None
}

/// [`block_stop`] on a finished reply, whose last line is complete though no newline ends it:
/// where the backends that cannot stop mid-generation (HTTP, scripted) cut the reply.
pub(crate) fn finished_block_stop(reply: &str, markers: &[String]) -> Option<usize> {
    if markers.is_empty() {
        return None;
    }
    block_stop(format!("{reply}\n").as_bytes(), 0, markers)
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

impl FinishReason {
    /// `"stop"` or `"length"`, as in the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the rendered prompt (counted once for a group).
    pub prompt_tokens: usize,
    /// Tokens generated (summed over a group).
    pub completion_tokens: usize,
}

/// Wall-clock timings of one call, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Evaluating the prompt (for a group: once, shared).
    pub prompt_ms: f64,
    /// Generating (for a group: the whole batched decode, shared by its members).
    pub generation_ms: f64,
}

/// One generated reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The reply, without the end-of-generation token and without a matched stop string.
    pub text: String,
    /// Token ids of everything sampled, including forced continuations and a final
    /// end-of-generation token. Empty when the backend does not expose ids (HTTP servers).
    pub tokens: Vec<u32>,
    /// Log-probability of each sampled token under the model's raw distribution (before
    /// temperature and filters), aligned with `tokens` (or, over HTTP, with the server's
    /// tokens). Empty when the backend does not offer them.
    pub token_logprobs: Vec<f32>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Timings.
    pub timings: Timings,
}

/// A loaded LoRA adapter, as returned by [`LanguageModel::load_adapter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdapterId(pub u64);

/// A language model, whatever runs it.
///
/// Implementations are cheap to share as `Arc<dyn LanguageModel>`; calls may come from many
/// tasks at once and are served in order by backends that cannot run them in parallel.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// A short description, e.g. `llamacpp:/path/model.gguf`.
    fn describe(&self) -> String;

    /// One reply to `messages`. A trailing assistant message is a prefill: the reply continues
    /// it (its text excludes the prefill). The `llamacpp` backend honours this; an
    /// OpenAI-compatible server receives the message as is, and servers differ on it.
    async fn chat(&self, messages: &[Message], sampling: &Sampling) -> Result<Completion> {
        let mut group = self.chat_group(messages, 1, sampling).await?;
        group.pop().ok_or_else(|| Error::Llama("a group of one came back empty".into()))
    }

    /// `n` replies to the same `messages`: the rollouts of one GRPO group. Backends that can
    /// evaluate the prompt once and decode the `n` sequences together do so.
    async fn chat_group(
        &self,
        messages: &[Message],
        n: usize,
        sampling: &Sampling,
    ) -> Result<Vec<Completion>>;

    /// Log-probabilities of the tokens of `completion` as the reply to `messages`, by teacher
    /// forcing. For the same tokens they equal the `token_logprobs` returned when sampling.
    async fn score(&self, messages: &[Message], completion: &str) -> Result<Vec<f32>> {
        let _ = (messages, completion);
        Err(Error::Unsupported { backend: self.backend_name(), operation: "score" })
    }

    /// An embedding of `text` (mean-pooled, L2-normalised), independent of any adapter.
    async fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let _ = text;
        Err(Error::Unsupported { backend: self.backend_name(), operation: "embed" })
    }

    /// Loads a GGUF LoRA adapter without reloading the base model. It is inactive until
    /// [`LanguageModel::set_adapter`] activates it.
    async fn load_adapter(&self, path: &Path) -> Result<AdapterId> {
        let _ = path;
        Err(Error::Unsupported { backend: self.backend_name(), operation: "LoRA adapters" })
    }

    /// Activates one loaded adapter at `scale`, or none. Later calls see the change; calls
    /// already running finish with the adapter they started with.
    async fn set_adapter(&self, adapter: Option<(AdapterId, f32)>) -> Result<()> {
        let _ = adapter;
        Err(Error::Unsupported { backend: self.backend_name(), operation: "LoRA adapters" })
    }

    /// Frees a loaded adapter (deactivating it first if it is active).
    async fn unload_adapter(&self, adapter: AdapterId) -> Result<()> {
        let _ = adapter;
        Err(Error::Unsupported { backend: self.backend_name(), operation: "LoRA adapters" })
    }

    /// The backend's name, for error messages: `llamacpp`, `openai` or `scripted`.
    fn backend_name(&self) -> &'static str;
}

/// What a `--model` argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A GGUF file run in-process (`smollm2` resolves to the bootstrapped one).
    Gguf(PathBuf),
    /// An OpenAI-compatible server: base URL (up to, not including, `/v1`) and model name.
    OpenAi {
        /// Base URL, e.g. `http://127.0.0.1:8080`.
        url: String,
        /// The `model` field of requests.
        model: String,
    },
    /// Replies replayed from a file.
    Scripted(PathBuf),
}

/// The file name of the bootstrapped default model, under `$AUTODIDACT_HOME`.
pub const SMOLLM2_RELATIVE_PATH: &str = "smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its SHA-256, as pinned in `scripts/bootstrap.sh`: checked before every load (memoised by
/// size and modification time), so a damaged copy is refused rather than run.
pub const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Checks a file against the SHA-256 it was registered or pinned with (memoised beside it by
/// size and modification time). The error gives both digests.
pub fn check_digest(path: &std::path::Path, sha256: &str) -> std::result::Result<(), String> {
    gguf_check::check_digest(path, sha256)
}

pub use gguf_check::sha256_file;

/// Checks a GGUF before llama.cpp loads it: its header's lengths and offsets (every file), and
/// its SHA-256 when it is the pinned default model. The error says what is wrong.
pub fn check_gguf(path: &std::path::Path) -> std::result::Result<(), String> {
    gguf_check::check(path)?;
    if path == smollm2_path() {
        gguf_check::check_digest(path, SMOLLM2_SHA256).map_err(|e| format!("{e}; run scripts/bootstrap.sh to fetch it again"))?;
    }
    Ok(())
}

/// `$AUTODIDACT_HOME`, or `~/.cache/autodidact`.
pub fn autodidact_home() -> PathBuf {
    if let Some(home) = std::env::var_os("AUTODIDACT_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("autodidact")
}

/// The bootstrapped SmolLM2 file (it may not exist).
pub fn smollm2_path() -> PathBuf {
    autodidact_home().join(SMOLLM2_RELATIVE_PATH)
}

impl ModelSpec {
    /// Parses a `--model` argument: `smollm2`, `path/to/file.gguf`, `openai:URL#MODEL_NAME`
    /// or `scripted:PATH`.
    pub fn parse(name: &str) -> Result<ModelSpec> {
        let bad = |reason: &str| Error::ModelName { name: name.to_string(), reason: reason.into() };
        if name == "smollm2" {
            return Ok(ModelSpec::Gguf(smollm2_path()));
        }
        if let Some(rest) = name.strip_prefix("openai:") {
            let (url, model) = rest.split_once('#').ok_or_else(|| {
                bad("expected openai:URL#MODEL_NAME, e.g. openai:http://127.0.0.1:8080#smollm2")
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad("the URL must start with http:// or https://"));
            }
            if model.is_empty() {
                return Err(bad("the model name after '#' is empty"));
            }
            let url = url.trim_end_matches('/');
            let url = url.strip_suffix("/v1").unwrap_or(url);
            return Ok(ModelSpec::OpenAi { url: url.to_string(), model: model.to_string() });
        }
        if let Some(path) = name.strip_prefix("scripted:") {
            if path.is_empty() {
                return Err(bad("expected scripted:PATH"));
            }
            return Ok(ModelSpec::Scripted(PathBuf::from(path)));
        }
        if name.ends_with(".gguf") {
            return Ok(ModelSpec::Gguf(PathBuf::from(name)));
        }
        Err(bad("expected smollm2, a path ending in .gguf, openai:URL#MODEL_NAME or scripted:PATH"))
    }
}

/// Settings for opening a model; each backend reads the part that concerns it.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// For GGUF models.
    pub llamacpp: llamacpp::LlamaCppConfig,
    /// For OpenAI-compatible servers.
    pub openai: openai::OpenAiConfig,
}

/// Opens the model a spec names.
pub async fn open(spec: &ModelSpec, options: &OpenOptions) -> Result<Arc<dyn LanguageModel>> {
    Ok(match spec {
        ModelSpec::Gguf(path) => {
            let config = llamacpp::LlamaCppConfig { path: path.clone(), ..options.llamacpp.clone() };
            Arc::new(llamacpp::LlamaCppModel::load(config).await?)
        }
        ModelSpec::OpenAi { url, model } => {
            Arc::new(openai::OpenAiModel::new(url, model, options.openai.clone())?)
        }
        ModelSpec::Scripted(path) => Arc::new(scripted::ScriptedModel::from_file(path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop_at(text: &str) -> Option<&str> {
        block_stop(text.as_bytes(), 0, &["FINAL(".to_owned()]).map(|end| &text[..end])
    }

    #[test]
    fn a_reply_ends_at_the_fence_of_the_block_that_answers() {
        let once = "```repl\nFINAL(26)\n```\n";
        assert_eq!(stop_at(&once.repeat(3)), Some("```repl\nFINAL(26)\n```"));
        let later = "Let me look.\n```repl\nx = 2\nprint(x)\n```\nNow:\n  ```python\nFINAL(x)\n  ```  \nmore";
        assert_eq!(stop_at(later), Some("Let me look.\n```repl\nx = 2\nprint(x)\n```\nNow:\n  ```python\nFINAL(x)\n  ```"));
    }

    #[test]
    fn no_stop_before_the_fence_line_is_complete_or_without_an_answer() {
        assert_eq!(stop_at("```repl\nFINAL(26)\n```"), None, "the fence line may still grow");
        assert_eq!(stop_at("```repl\nFINAL(26)\n"), None);
        assert_eq!(stop_at("FINAL(26)\n```repl\nprint(1)\n```\n"), None, "FINAL outside a block");
        let fin = ["FINAL(".to_owned()];
        assert_eq!(block_stop(b"```repl\nFINAL(1)\n```\n", 0, &[]), None);
        assert_eq!(block_stop(b"```repl\nFINAL(1)\n```\n", 0, &[String::new()]), None);
        // Only fences completed at `from` or later count: the engine passes where the newest
        // token began, so a block that closed while `min_new_tokens` held it back is passed.
        let two = b"```repl\nFINAL(1)\n```\n```repl\nFINAL(2)\n```\n";
        assert_eq!(block_stop(two, 20, &fin), Some(20));
        assert_eq!(block_stop(two, 21, &fin), Some(two.len() - 1));
        assert_eq!(block_stop(two, two.len(), &fin), None);
    }
}
