//! A GRPO group of 8 at temperature 1 evaluates the prompt once and gives diverse replies.

mod common;

use std::collections::HashSet;

use autodidact_runtime::model::{LanguageModel, Message, Sampling};

#[tokio::test]
async fn group_of_eight_is_diverse() {
    let model = common::smollm2().await;
    let msgs = [Message::user("Tell me a fact about cats.")];
    let group = model.chat_group(&msgs, 8, &Sampling::seeded(1.0, 3, 16)).await.unwrap();
    assert_eq!(group.len(), 8);
    let distinct: HashSet<_> = group.iter().map(|c| c.tokens.clone()).collect();
    assert!(distinct.len() >= 6, "only {} distinct replies of 8", distinct.len());
    // One prompt evaluation, shared: every member reports the same prompt timing and size.
    for c in &group {
        assert_eq!(c.timings.prompt_ms, group[0].timings.prompt_ms);
        assert_eq!(c.usage.prompt_tokens, group[0].usage.prompt_tokens);
        assert_eq!(c.tokens.len(), c.token_logprobs.len());
        assert!(c.usage.completion_tokens >= 1 && c.usage.completion_tokens <= 16);
    }
}
