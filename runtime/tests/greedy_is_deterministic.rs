//! Greedy decoding gives the same tokens, text and log-probs every time, alone or in a group.

mod common;

use autodidact_runtime::model::{LanguageModel, Message, Sampling};

#[tokio::test]
async fn greedy_is_deterministic() {
    let model = common::smollm2().await;
    let msgs = [Message::user("Name three colours.")];
    let s = Sampling::greedy(12);
    let a = model.chat(&msgs, &s).await.unwrap();
    let b = model.chat(&msgs, &s).await.unwrap();
    assert!(!a.text.is_empty());
    assert_eq!(a.tokens.len(), a.token_logprobs.len());
    assert_eq!(a.text, b.text);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.token_logprobs, b.token_logprobs);
    assert!(a.token_logprobs.iter().all(|lp| lp.is_finite() && *lp <= 0.0));

    let group = model.chat_group(&msgs, 3, &s).await.unwrap();
    assert_eq!(group.len(), 3);
    for c in &group {
        assert_eq!(c.tokens, group[0].tokens, "greedy members of a group agree");
    }
}
