//! Budget forcing (s1): `min_new_tokens` holds back end-of-generation and stop strings, and
//! continuation strings such as "Wait" are appended when the model tries to stop early. The
//! other stop rule, `stop_after_block`, ends a reply at the fence of the block that holds a
//! marker, and the minimum holds it back too.

mod common;

use autodidact_runtime::model::{FinishReason, LanguageModel, Message, Sampling, block_stop};

#[tokio::test]
async fn budget_forcing_holds_the_minimum() {
    let model = common::smollm2().await;
    let msgs = [Message::user("Answer with one word: is water wet?")];

    let free = model.chat(&msgs, &Sampling::greedy(40)).await.unwrap();
    assert_eq!(free.finish_reason, FinishReason::Stop, "the model stops by itself: {:?}", free.text);
    let natural = free.tokens.len();
    assert!(natural < 30, "the unforced reply is short ({natural} tokens)");

    let min = natural + 10;
    let held = Sampling { min_new_tokens: min, ..Sampling::greedy(min + 8) };
    let c = model.chat(&msgs, &held).await.unwrap();
    assert!(c.tokens.len() >= min, "{} tokens < minimum {min}", c.tokens.len());
    assert_eq!(c.tokens.len(), c.token_logprobs.len());

    let wait = Sampling { continuations: vec![" Wait".into()], ..held.clone() };
    let c = model.chat(&msgs, &wait).await.unwrap();
    assert!(c.tokens.len() >= min);
    assert!(c.text.contains("Wait"), "no continuation appended: {:?}", c.text);
    assert!(c.token_logprobs.iter().all(|lp| lp.is_finite()), "{:?}", c.token_logprobs);
    // Forced tokens are scored like any other: teacher forcing agrees with them.
    let scored = model.score(&msgs, &c.text).await.unwrap();
    let d = scored.iter().zip(&c.token_logprobs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(d <= 1e-3, "forced-token log-probs differ from scoring by {d}");
}

#[tokio::test]
async fn a_reply_ends_at_the_fence_of_the_block_holding_a_marker() {
    let model = common::smollm2().await;
    let msgs = [Message::user("Write a Python code block that prints the sum of 2 and 3, then explain it.")];
    let free = model.chat(&msgs, &Sampling::greedy(160)).await.unwrap();
    let marker = vec!["print(".to_owned()];
    let end = block_stop(format!("{}\n", free.text).as_bytes(), 0, &marker);
    let end = end.unwrap_or_else(|| panic!("the greedy reply has no closed block with print(: {:?}", free.text));
    assert!(end + 20 < free.text.len(), "the reply goes on after the block: {:?}", free.text);

    let ruled = Sampling { stop_after_block: marker.clone(), ..Sampling::greedy(160) };
    let c = model.chat(&msgs, &ruled).await.unwrap();
    assert_eq!(c.text, free.text[..end], "greedy, so the same reply up to the fence and nothing after");
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert!(c.tokens.len() < free.tokens.len(), "{} tokens, unruled {}", c.tokens.len(), free.tokens.len());
    assert_eq!(c.tokens.len(), c.token_logprobs.len());
    assert_eq!(c.tokens[..], free.tokens[..c.tokens.len()]);

    // Held back by the minimum, like a stop string; the block it passed does not cut it later.
    let held = Sampling { min_new_tokens: free.tokens.len() - 5, ..ruled };
    let c = model.chat(&msgs, &held).await.unwrap();
    assert!(c.tokens.len() >= free.tokens.len() - 5, "{} tokens", c.tokens.len());
    assert!(c.text.len() > end + 20, "{:?}", c.text);
}
