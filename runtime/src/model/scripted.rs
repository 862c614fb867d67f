//! The scripted backend: replays replies from a file, for tests and hostile-input checks.
//!
//! `--model scripted:PATH` reads PATH once. Replies are separated by lines holding only `---`;
//! each call to `chat` takes the next one (a group takes the next `n`). Once the replies run
//! out, every further reply is empty. Nothing is tokenised, so completions carry no tokens and
//! no log-probs. [`Sampling::stop_after_block`] cuts a reply as the engine would have stopped it.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use super::{
    Completion, FinishReason, LanguageModel, Message, Sampling, Timings, Usage, check_prompt,
    finished_block_stop,
};
use crate::{Error, Result};

/// Replies replayed in order.
#[derive(Debug)]
pub struct ScriptedModel {
    source: String,
    replies: Mutex<std::collections::VecDeque<String>>,
}

impl ScriptedModel {
    /// Reads the replies from `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Self::from_text(&text, &path.display().to_string()))
    }

    /// Splits `text` into replies; `source` names it in [`LanguageModel::describe`].
    pub fn from_text(text: &str, source: &str) -> Self {
        let mut replies = std::collections::VecDeque::new();
        let mut current: Vec<&str> = Vec::new();
        for line in text.lines() {
            if line.trim_end_matches('\r') == "---" {
                replies.push_back(current.join("\n"));
                current.clear();
            } else {
                current.push(line);
            }
        }
        if !current.is_empty() {
            replies.push_back(current.join("\n"));
        }
        ScriptedModel { source: source.to_string(), replies: Mutex::new(replies) }
    }

    /// How many replies are left.
    pub fn remaining(&self) -> usize {
        self.replies.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[async_trait]
impl LanguageModel for ScriptedModel {
    fn describe(&self) -> String {
        format!("scripted:{}", self.source)
    }

    fn backend_name(&self) -> &'static str {
        "scripted"
    }

    async fn chat_group(
        &self,
        messages: &[Message],
        n: usize,
        sampling: &Sampling,
    ) -> Result<Vec<Completion>> {
        check_prompt(messages)?;
        sampling.validate()?;
        let start = Instant::now();
        let mut replies = self.replies.lock().map_err(|_| Error::WorkerGone)?;
        // Token counts are estimated at one token per four characters, so that budgets can be
        // exercised deterministically; a reply over `max_new_tokens` is cut there.
        let prompt_chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
        Ok((0..n)
            .map(|_| {
                let mut text = replies.pop_front().unwrap_or_default();
                let mut finish_reason = FinishReason::Stop;
                // A reply ends after its answering block, as the engine would have stopped it.
                if let Some(end) = finished_block_stop(&text, &sampling.stop_after_block) {
                    text.truncate(end);
                }
                if let Some((cut, _)) = text.char_indices().nth(sampling.max_new_tokens * 4) {
                    text.truncate(cut);
                    finish_reason = FinishReason::Length;
                }
                let completion_tokens = text.chars().count().div_ceil(4);
                Completion {
                    text,
                    tokens: Vec::new(),
                    token_logprobs: Vec::new(),
                    finish_reason,
                    usage: Usage { prompt_tokens: prompt_chars.div_ceil(4), completion_tokens },
                    timings: Timings {
                        prompt_ms: 0.0,
                        generation_ms: start.elapsed().as_secs_f64() * 1e3,
                    },
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_replayed_then_empty() {
        let m = ScriptedModel::from_text("first\nline two\n---\nsecond\n---\n", "test");
        let s = Sampling::default();
        let msgs = [Message::user("go")];
        assert_eq!(m.chat(&msgs, &s).await.unwrap().text, "first\nline two");
        assert_eq!(m.chat(&msgs, &s).await.unwrap().text, "second");
        assert_eq!(m.chat(&msgs, &s).await.unwrap().text, "");
        assert_eq!(m.chat(&msgs, &s).await.unwrap().text, "");
    }
}
