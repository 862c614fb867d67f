//! Reloading an adapter 100 times does not grow memory: unloaded adapters are freed.
//! (llama-cpp-2 alone leaks each one: 60 reloads of 19.5 MB grew a prototype to 1.2 GB.)

mod common;

use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message, Sampling, smollm2_path};

#[tokio::test]
async fn adapter_reload_memory_is_flat() {
    let dir = common::scratch_dir("adapter-memory");
    let path = dir.join("r16.gguf");
    // Rank 16 on all seven projections of 30 layers: about 19.5 MB, like the prototype's.
    let all = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
    common::write_lora(&path, "llama", 16, &all, 0.01, 2);
    let size_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;

    // One thread: no barrier between llama.cpp threads, so the test stays short even when
    // other processes compete for the cores.
    let config = LlamaCppConfig { path: smollm2_path(), threads: Some(1), n_ctx: 512, ..LlamaCppConfig::default() };
    let model = LlamaCppModel::load(config).await.unwrap();
    let msgs = [Message::user("Hi")];
    // Load, activate, unload; every tenth time also generate a token through the adapter.
    let cycle = |i: usize| {
        let (model, path, msgs) = (&model, &path, &msgs);
        async move {
            let id = model.load_adapter(path).await.unwrap();
            model.set_adapter(Some((id, 1.0))).await.unwrap();
            if i % 10 == 0 {
                let c = model.chat(msgs, &Sampling::greedy(1)).await.unwrap();
                assert_eq!(c.tokens.len(), 1);
            }
            model.unload_adapter(id).await.unwrap();
        }
    };
    for i in 0..5 {
        cycle(i).await;
    }
    // RSS after every reload. The allocator keeps or returns freed adapter buffers at its
    // own whim, so readings step up or down by an adapter or two; compare medians of the
    // first and last twenty readings instead. A leak would add 80 adapters between them.
    let mut rss = Vec::with_capacity(100);
    for i in 0..100 {
        cycle(i).await;
        rss.push(common::rss_mb());
    }
    let median = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (early, late) = (median(&rss[..20]), median(&rss[80..]));
    let peak = rss.iter().copied().fold(0.0, f64::max);
    println!("adapter {size_mb:.1} MB; median RSS {early:.1} MB -> {late:.1} MB over 100 reloads (peak {peak:.1} MB)");
    assert!(late - early < 3.0 * size_mb, "RSS grew {:.1} MB", late - early);
    assert!(peak - early < 6.0 * size_mb, "RSS peaked {:.1} MB above the early median", peak - early);
    std::fs::remove_dir_all(dir).ok();
}
