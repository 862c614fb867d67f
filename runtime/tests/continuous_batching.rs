//! Continuous batching on the real model: requests with different prompts decode together,
//! each gives what it gives alone, one that ends (a stop string, an overflow, a caller gone)
//! ends alone, and a thousand finished sequences leave no cells behind.

mod common;

use std::sync::Arc;
use std::time::Duration;

use autodidact_runtime::Error;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message, Sampling, smollm2_path};

const SYSTEM: &str = "You are a careful assistant. Answer in one short sentence, then stop.";

fn ask(question: &str) -> Vec<Message> {
    vec![Message::system(SYSTEM), Message::user(question)]
}

const QUESTIONS: [&str; 6] = [
    "Name a colour.",
    "What is two plus two?",
    "Name a large animal.",
    "What is the capital of France?",
    "Name a fruit that is yellow.",
    "What do bees make?",
];

#[tokio::test]
async fn different_prompts_decode_together_as_they_would_alone() {
    let model = Arc::new(common::smollm2().await);
    let s = Sampling::greedy(16);
    let mut alone = Vec::new();
    for q in QUESTIONS {
        alone.push(model.chat(&ask(q), &s).await.unwrap());
    }
    let together = futures::future::join_all(QUESTIONS.iter().map(|q| {
        let (model, s) = (model.clone(), s.clone());
        async move { model.chat(&ask(q), &s).await.unwrap() }
    }))
    .await;
    for ((a, b), q) in alone.iter().zip(&together).zip(QUESTIONS) {
        assert_eq!(a.tokens, b.tokens, "{q}: greedy tokens alone and in a batch");
        for (x, y) in a.token_logprobs.iter().zip(&b.token_logprobs) {
            assert!((x - y).abs() < 1e-3, "{q}: log-probs alone {x} and in a batch {y}");
        }
    }
    let state = model.kv_state().await.unwrap();
    assert_eq!(state.live, 0);
    assert!(state.reused_tokens > 0, "the system prompt's cells were shared, not re-evaluated: {state:?}");
}

#[tokio::test]
async fn one_request_ends_alone_and_the_batch_goes_on() {
    let config = LlamaCppConfig { path: smollm2_path(), n_ctx: 512, threads: Some(1), ..LlamaCppConfig::default() };
    let model = Arc::new(LlamaCppModel::load(config).await.unwrap());
    let long = Sampling { min_new_tokens: 48, ..Sampling::seeded(1.0, 7, 48) };
    // A stop string that the reply hits at once, an overflow and a caller that gives up, all
    // while two ordinary requests are decoding.
    let stopped = Sampling { stop: vec![" ".into()], ..Sampling::seeded(1.0, 3, 48) };
    let overflow = Sampling::greedy(600);
    let (m1, m2, m3, m4, m5) = (model.clone(), model.clone(), model.clone(), model.clone(), model.clone());
    let (l1, l2) = (long.clone(), long.clone());
    let a = tokio::spawn(async move { m1.chat(&ask(QUESTIONS[0]), &l1).await });
    let b = tokio::spawn(async move { m2.chat(&ask(QUESTIONS[1]), &l2).await });
    let c = tokio::spawn(async move { m3.chat(&ask("Write a long sentence about rivers."), &stopped).await });
    let d = tokio::spawn(async move { m4.chat(&ask(QUESTIONS[2]), &overflow).await });
    let e = tokio::spawn(async move {
        let slow = Sampling { min_new_tokens: 400, ..Sampling::seeded(1.0, 9, 400) };
        tokio::time::timeout(Duration::from_millis(300), m5.chat(&ask(QUESTIONS[3]), &slow)).await
    });
    let c = c.await.unwrap().unwrap();
    assert!(!c.text.contains(' ') && c.tokens.len() < 48, "stopped at the first space: {:?}", c.text);
    match d.await.unwrap() {
        Err(Error::ContextOverflow { needed, n_ctx }) => assert!(needed > n_ctx as usize),
        other => panic!("an overflowing request is a ContextOverflow, got {other:?}"),
    }
    assert!(e.await.unwrap().is_err(), "the caller gave up after 300 ms");
    for r in [a.await.unwrap().unwrap(), b.await.unwrap().unwrap()] {
        assert_eq!(r.tokens.len(), 48, "the others decode to their budget");
    }
    let state = model.kv_state().await.unwrap();
    assert_eq!(state.live, 0, "{state:?}");
    assert_eq!(state.cells.len(), state.kept, "only kept sequences hold cells: {state:?}");
}

#[tokio::test]
async fn a_thousand_sequences_leave_only_kept_prefixes() {
    let model = Arc::new(common::smollm2().await);
    let s = Sampling { min_new_tokens: 2, ..Sampling::seeded(1.0, 11, 2) };
    // 125 requests of 8 different-prompt groups, 8 requests in flight at a time.
    let mut done = 0;
    for round in 0..16 {
        let batch = (0..8).map(|i| {
            let (model, s) = (model.clone(), s.clone());
            let n = round * 8 + i;
            async move { model.chat_group(&ask(&format!("Count to {n}.")), 8, &s).await.unwrap() }
        });
        for group in futures::future::join_all(batch).await {
            assert_eq!(group.len(), 8);
            done += group.len();
        }
        if done >= 1000 {
            break;
        }
    }
    assert!(done >= 1000);
    let state = model.kv_state().await.unwrap();
    assert_eq!(state.live, 0);
    // Every sequence id that holds cells is a kept one, holding exactly its own tokens.
    assert_eq!(state.cells.len(), state.kept, "{state:?}");
    let mut held: Vec<usize> = state.cells.iter().map(|&(_, lo, hi)| {
        assert_eq!(lo, 0);
        (hi + 1) as usize
    }).collect();
    let mut kept = state.kept_tokens.clone();
    held.sort_unstable();
    kept.sort_unstable();
    assert_eq!(held, kept, "cells match the kept sequences' tokens");
    assert!(state.kept <= 16, "at most max_group sequences are kept: {state:?}");
    assert!(state.reused_tokens > state.evaluated_tokens, "the shared prefix was evaluated once per request at most: {state:?}");
}
