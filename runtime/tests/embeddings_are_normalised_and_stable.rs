//! Embeddings are unit vectors of the model's width, stable across calls and adapters.

mod common;

use autodidact_runtime::model::LanguageModel;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_normalised_and_stable() {
    let model = common::smollm2().await;
    let a = model.embed("The cat sat on the mat.").await.unwrap();
    assert_eq!(a.len(), 576);
    assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
    assert_eq!(model.embed("The cat sat on the mat.").await.unwrap(), a);
    let near = model.embed("A cat was sitting on the mat.").await.unwrap();
    let far = model.embed("Quarterly revenue grew by 4% in Europe.").await.unwrap();
    println!("cos(near) = {}, cos(far) = {}", dot(&a, &near), dot(&a, &far));
    assert!(dot(&a, &near) > dot(&a, &far));

    let dir = common::scratch_dir("embed-adapter");
    let path = dir.join("a.gguf");
    common::write_lora(&path, "llama", 4, &["attn_q", "ffn_up"], 0.05, 4);
    let id = model.load_adapter(&path).await.unwrap();
    model.set_adapter(Some((id, 1.0))).await.unwrap();
    assert_eq!(model.embed("The cat sat on the mat.").await.unwrap(), a, "embeddings ignore adapters");
    std::fs::remove_dir_all(dir).ok();
}
