//! `autodidact adapters rollback` goes back one generation, and the served model's logits are
//! then exactly the earlier generation's: two random LoRA adapters are registered as
//! generations 1 and 2, generation 2 is promoted, and after the rollback the promoted
//! adapter's per-token log-probs through llama.cpp equal generation 1's bit for bit.

use std::path::Path;
use std::process::Command;

use autodidact_memory::{AdapterStatus, NewAdapter, Store};
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message};
use autodidact_trainer::{BaseModel, DType, LoraAdapter, LoraConfig, Rng, Target};

fn random_adapter(base: &BaseModel, seed: u64, path: &Path) {
    let mut rng = Rng::new(seed);
    let c = base.config.clone();
    let config = LoraConfig { rank: 4, alpha: 8.0, targets: vec![Target::Q, Target::V, Target::Down] };
    let a = LoraAdapter::init(config, c.n_layer, |t| c.shape_of(t), DType::F32, &mut rng).unwrap();
    a.randomize_b(0.05, &mut rng).unwrap();
    a.export_gguf(path, &c.architecture).unwrap();
}

async fn logprobs(model: &LlamaCppModel, adapter: &Path) -> Vec<f32> {
    let h = model.load_adapter(adapter).await.unwrap();
    model.set_adapter(Some((h, 1.0))).await.unwrap();
    let lp = model.score(&[Message::user("What is 12 + 30?")], "```repl\nFINAL(12 + 30)\n```").await.unwrap();
    model.set_adapter(None).await.unwrap();
    model.unload_adapter(h).await.unwrap();
    lp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_earlier_generations_logits_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let base = BaseModel::load_gguf(&autodidact_trainer::default_model_path(), DType::F32).unwrap();
    let (p1, p2) = (dir.path().join("gen1.gguf"), dir.path().join("gen2.gguf"));
    random_adapter(&base, 1, &p1);
    random_adapter(&base, 2, &p2);
    drop(base);

    let store = Store::open(&url).await.unwrap();
    let w = store.writer();
    let reg = |parent: Option<String>, path: &Path, generation: u64| NewAdapter {
        parent_id: parent,
        path: path.display().to_string(),
        sha256: format!("{generation:064}"),
        metrics: serde_json::json!({"generation": generation}),
    };
    let g1 = w.register_adapter(reg(None, &p1, 1)).await.unwrap().committed().await.unwrap();
    w.set_adapter_status(&g1, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    let g2 = w.register_adapter(reg(Some(g1.clone()), &p2, 2)).await.unwrap().committed().await.unwrap();
    w.set_adapter_status(&g2, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    store.close().await.unwrap();

    let model = LlamaCppModel::load(LlamaCppConfig { threads: Some(1), ..LlamaCppConfig::default() }).await.unwrap();
    let gen1 = logprobs(&model, &p1).await;
    let gen2 = logprobs(&model, &p2).await;
    assert_ne!(gen1, gen2, "the two generations must differ for the test to mean anything");

    let promoted_path = |url: String| async move {
        let store = Store::open(&url).await.unwrap();
        let p = store.promoted_adapter().await.unwrap().map(|a| a.spec.path);
        store.close().await.unwrap();
        p
    };
    assert_eq!(promoted_path(url.clone()).await.as_deref(), Some(p2.to_str().unwrap()));
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["adapters", "rollback", "--db", &url]).output().unwrap();
    assert!(out.status.success(), "rollback failed: {}", String::from_utf8_lossy(&out.stderr));
    let served = promoted_path(url.clone()).await.expect("an adapter is promoted after the rollback");
    assert_eq!(served, p1.display().to_string());
    assert_eq!(logprobs(&model, Path::new(&served)).await, gen1, "rollback must restore generation 1's log-probs exactly");

    // One more rollback serves the base model; a third has nothing to roll back.
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["adapters", "rollback", "--db", &url]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(promoted_path(url.clone()).await, None);
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["adapters", "rollback", "--db", &url]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no adapter is promoted"));
    let list = Command::new(env!("CARGO_BIN_EXE_autodidact")).args(["adapters", "list", "--db", &url, "--json"]).output().unwrap();
    let lines = String::from_utf8_lossy(&list.stdout).lines().count();
    assert_eq!(lines, 2, "list shows both generations");
}
