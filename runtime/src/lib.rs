//! `autodidact-runtime`: everything that runs the agent, starting with its language models.
//!
//! The agent's loop (an RLM driving a Python REPL, LADDER variant trees, budget forcing) needs
//! one thing from a model: turn a conversation into replies. Training needs more: the ids
//! and log-probabilities of the sampled tokens, groups of rollouts that share a prompt, a way
//! to re-score text by teacher forcing, and LoRA adapters that can be swapped in while the
//! agent keeps running. [`model::LanguageModel`] is that contract, and the [`model`] module
//! holds its three backends:
//!
//! - **llamacpp**, a GGUF model in-process (the default, `smollm2`): the only backend that
//!   offers everything above. It runs on a dedicated thread, so it never blocks tokio, and
//!   decodes a group's sequences together in each batch after evaluating their prompt once.
//! - **openai**, any OpenAI-compatible server, for users who outgrow one machine.
//! - **scripted**, replies replayed from a file, for tests and hostile-input checks.
//!
//! Prompts are rendered with the model's own Jinja chat template (`tokenizer.chat_template`
//! in the GGUF), not llama.cpp's built-in approximations, so they match the model card.
//!
//! Errors are [`Error`]: one enum with the context needed to act on it (which file, what
//! llama.cpp logged, which URL after how many retries). A model's *mistakes* are not errors;
//! later slices of this crate record them as data.
//!
//! The [`rlm`] module is the agent loop: a root model drives a sandboxed Python REPL, makes
//! recursive sub-calls through the REPL's helpers, and answers through an `answer` dict; every
//! turn, cell and sub-call is logged to memory. [`tools`] holds the domain-tool trait.
//!
//! This crate does not train (that is `autodidact-trainer`) and does not speak SQL (that is
//! `autodidact-memory`).

#![deny(missing_docs)]

mod error;
pub mod model;
pub mod rlm;
pub mod pytools;
pub mod tools;

pub use error::{Error, Result};

use std::time::Duration;

use autodidact_policies::{GrantMode, Policy};
use autodidact_sandbox::{Grant, Limits};

/// The sandbox limits a policy's `[sandbox]` section asks for.
pub fn sandbox_limits(policy: &Policy) -> Limits {
    let s = &policy.sandbox;
    Limits {
        deadline: Duration::from_millis(s.deadline_ms),
        memory_bytes: s.memory_mb << 20,
        stdout_bytes: s.stdout_bytes,
        stderr_bytes: s.stderr_bytes,
        max_file_calls: s.max_file_calls,
        max_tool_calls: s.max_tool_calls,
        tool_payload_bytes: s.tool_payload_bytes,
        tool_timeout: Duration::from_millis(s.tool_timeout_ms),
        fuel: s.fuel,
        grants: s
            .grants
            .iter()
            .map(|g| Grant { host: g.host.clone(), guest: g.guest.clone(), writable: g.mode == GrantMode::Rw })
            .collect(),
    }
}
