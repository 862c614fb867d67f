//! `score` (teacher forcing) reproduces the log-probs recorded while sampling, to 1e-3.

mod common;

use autodidact_runtime::model::{Completion, LanguageModel, Message, Sampling};

async fn max_diff(model: &dyn LanguageModel, msgs: &[Message], c: &Completion) -> f32 {
    let scored = model.score(msgs, &c.text).await.unwrap();
    assert!(!scored.is_empty());
    // The scored tokens are the text's tokens: the sampled ones minus a final end token.
    assert!(scored.len() <= c.token_logprobs.len());
    scored
        .iter()
        .zip(&c.token_logprobs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[tokio::test]
async fn score_matches_sampling_logprobs() {
    let model = common::smollm2().await;
    let msgs = [Message::system("You are terse."), Message::user("What is 2 + 2? Explain.")];

    let greedy = model.chat(&msgs, &Sampling::greedy(24)).await.unwrap();
    let d = max_diff(&model, &msgs, &greedy).await;
    println!("greedy: max |score - sampling logprob| = {d:e}");
    assert!(d <= 1e-3, "greedy diff {d}");

    let sampled = model.chat(&msgs, &Sampling::seeded(1.0, 5, 24)).await.unwrap();
    let d = max_diff(&model, &msgs, &sampled).await;
    println!("temperature 1: max diff = {d:e}");
    assert!(d <= 1e-3, "sampled diff {d}");

    let group = model.chat_group(&msgs, 4, &Sampling::seeded(1.0, 9, 24)).await.unwrap();
    let mut worst = 0f32;
    for c in &group {
        worst = worst.max(max_diff(&model, &msgs, c).await);
    }
    println!("group of 4: max diff = {worst:e}");
    assert!(worst <= 1e-3, "group diff {worst}");
}
