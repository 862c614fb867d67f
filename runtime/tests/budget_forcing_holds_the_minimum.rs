//! Budget forcing (s1): `min_new_tokens` holds back end-of-generation and stop strings, and
//! continuation strings such as "Wait" are appended when the model tries to stop early.

mod common;

use autodidact_runtime::model::{FinishReason, LanguageModel, Message, Sampling};

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
