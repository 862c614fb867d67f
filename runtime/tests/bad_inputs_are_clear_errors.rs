//! A missing, corrupt or bit-flipped GGUF, a wrong-architecture or wrong-shape adapter, and an empty prompt
//! each give an error that says what is wrong.

mod common;

use autodidact_runtime::Error;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, Message, ModelSpec, Sampling, smollm2_path};

async fn load(path: std::path::PathBuf) -> Result<LlamaCppModel, Error> {
    LlamaCppModel::load(LlamaCppConfig { path, ..LlamaCppConfig::default() }).await
}

#[tokio::test]
async fn bad_inputs_are_clear_errors() {
    let dir = common::scratch_dir("bad-inputs");

    let missing = dir.join("nope.gguf");
    let e = load(missing.clone()).await.unwrap_err();
    assert!(matches!(e, Error::ModelMissing { .. }), "{e}");
    assert!(e.to_string().contains("nope.gguf"), "{e}");

    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, common::noise(1, 4096).iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let e = load(garbage).await.unwrap_err().to_string();
    println!("garbage: {e}");
    assert!(e.contains("garbage.gguf") && e.to_lowercase().contains("magic"), "{e}");

    let truncated = dir.join("truncated.gguf");
    let real = std::fs::read(smollm2_path()).unwrap();
    std::fs::write(&truncated, &real[..real.len() / 3]).unwrap();
    let e = load(truncated).await.unwrap_err().to_string();
    println!("truncated: {e}");
    assert!(e.contains("truncated.gguf") && e.contains("cannot load model"), "{e}");

    // Bits flipped in the header (the tensor count; a metadata key's length) are refused by
    // the structural check before llama.cpp reads a length it would trust.
    for (name, at, xor) in [("count.gguf", 15usize, 0x7fu8), ("keylen.gguf", 29, 0x40)] {
        let mut b = real.clone();
        b[at] ^= xor;
        let flipped = dir.join(name);
        std::fs::write(&flipped, &b).unwrap();
        let e = load(flipped).await.unwrap_err().to_string();
        println!("{name}: {e}");
        assert!(e.contains(name) && e.contains("damaged GGUF"), "{e}");
    }

    let e = ModelSpec::parse("openai:localhost:8080").unwrap_err().to_string();
    assert!(e.contains("openai:URL#MODEL_NAME"), "{e}");
    let e = ModelSpec::parse("what").unwrap_err().to_string();
    assert!(e.contains("scripted:PATH"), "{e}");

    let model = common::smollm2().await;

    let wrong_arch = dir.join("gemma.gguf");
    common::write_lora(&wrong_arch, "gemma3", 2, &["attn_q"], 0.1, 3);
    let e = model.load_adapter(&wrong_arch).await.unwrap_err().to_string();
    println!("wrong architecture: {e}");
    assert!(e.contains("gemma.gguf") && e.contains("arch"), "{e}");

    let wrong_shape = dir.join("shape.gguf");
    common::write_gguf(
        &wrong_shape,
        &[
            ("general.architecture", common::Meta::Str("llama".into())),
            ("general.type", common::Meta::Str("adapter".into())),
            ("adapter.type", common::Meta::Str("lora".into())),
            ("adapter.lora.alpha", common::Meta::F32(2.0)),
        ],
        &[
            common::Tensor { name: "blk.0.attn_q.weight.lora_a".into(), dims: vec![100, 2], data: vec![0.0; 200] },
            common::Tensor { name: "blk.0.attn_q.weight.lora_b".into(), dims: vec![2, 576], data: vec![0.0; 1152] },
        ],
    );
    let e = model.load_adapter(&wrong_shape).await.unwrap_err().to_string();
    println!("wrong shape: {e}");
    assert!(e.contains("shape"), "{e}");

    let e = model.load_adapter(&dir.join("absent.gguf")).await.unwrap_err().to_string();
    assert!(e.contains("absent.gguf") && e.contains("no such file"), "{e}");

    for msgs in [vec![], vec![Message::user("   ")]] {
        let e = model.chat(&msgs, &Sampling::greedy(4)).await.unwrap_err();
        assert!(matches!(e, Error::EmptyPrompt), "{e}");
        assert!(e.to_string().contains("empty prompt"));
    }
    let e = model.chat_group(&[Message::user("hi")], 0, &Sampling::greedy(4)).await.unwrap_err();
    assert!(matches!(e, Error::InvalidSampling(_)), "{e}");
    let e = model.chat(&[Message::user("hi")], &Sampling { top_p: 0.0, ..Sampling::greedy(4) }).await.unwrap_err();
    assert!(e.to_string().contains("top_p"), "{e}");

    // The model still works after all that.
    assert!(!model.chat(&[Message::user("hi")], &Sampling::greedy(3)).await.unwrap().tokens.is_empty());
    std::fs::remove_dir_all(dir).ok();
}
