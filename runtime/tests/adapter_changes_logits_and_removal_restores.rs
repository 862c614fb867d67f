//! A LoRA adapter changes the model's log-probs without reloading it; deactivating it restores
//! them exactly; unloading frees it.

mod common;

use autodidact_runtime::Error;
use autodidact_runtime::model::{AdapterId, LanguageModel, Message, Sampling};

#[tokio::test]
async fn adapter_changes_logits_and_removal_restores() {
    let dir = common::scratch_dir("adapter-swap");
    let path = dir.join("random.gguf");
    common::write_lora(&path, "llama", 4, &["attn_q", "attn_v", "ffn_up"], 0.05, 1);

    let model = common::smollm2().await;
    let msgs = [Message::user("Say something about rivers.")];
    let base = model.chat(&msgs, &Sampling::greedy(12)).await.unwrap();
    let base_scores = model.score(&msgs, &base.text).await.unwrap();

    let id = model.load_adapter(&path).await.unwrap();
    // Loaded but not active: nothing changes.
    assert_eq!(model.score(&msgs, &base.text).await.unwrap(), base_scores);

    model.set_adapter(Some((id, 1.0))).await.unwrap();
    let adapted = model.score(&msgs, &base.text).await.unwrap();
    let diff = adapted.iter().zip(&base_scores).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    println!("adapter moved the log-probs by up to {diff}");
    assert!(diff > 1e-2, "the adapter changed nothing (max diff {diff})");

    // Half the scale moves them less.
    model.set_adapter(Some((id, 0.5))).await.unwrap();
    let half = model.score(&msgs, &base.text).await.unwrap();
    let half_diff = half.iter().zip(&base_scores).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(half_diff > 0.0 && half_diff < diff, "half scale {half_diff} vs full {diff}");

    model.set_adapter(None).await.unwrap();
    assert_eq!(model.score(&msgs, &base.text).await.unwrap(), base_scores, "not restored exactly");
    let again = model.chat(&msgs, &Sampling::greedy(12)).await.unwrap();
    assert_eq!(again.tokens, base.tokens);

    // Unloading an active adapter deactivates it; its id is then unknown.
    model.set_adapter(Some((id, 1.0))).await.unwrap();
    model.unload_adapter(id).await.unwrap();
    assert_eq!(model.score(&msgs, &base.text).await.unwrap(), base_scores);
    assert!(matches!(model.set_adapter(Some((id, 1.0))).await, Err(Error::UnknownAdapter(_))));
    assert!(matches!(model.unload_adapter(AdapterId(999)).await, Err(Error::UnknownAdapter(999))));
    std::fs::remove_dir_all(dir).ok();
}
