//! An exported adapter has llama.cpp's metadata and tensor names and shapes, and reads back
//! equal.

mod common;

use autodidact_trainer::{LoraAdapter, LoraConfig, Rng, Target};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

#[test]
fn adapter_export_roundtrip() {
    let cfg = autodidact_trainer::LlamaConfig::tiny();
    let mut rng = Rng::new(5);
    let lora = LoraConfig { rank: 4, alpha: 8.0, targets: vec![Target::Q, Target::V, Target::Down] };
    let ad = LoraAdapter::init(lora.clone(), cfg.n_layer, |t| cfg.shape_of(t), DType::F32, &mut rng).unwrap();
    for p in &ad.pairs {
        let b: Vec<f32> = (0..p.b.elem_count()).map(|_| rng.normal() as f32).collect();
        p.b.set(&Tensor::from_vec(b, p.b.shape(), &Device::Cpu).unwrap()).unwrap();
    }
    let path = common::scratch("export").join("adapter.gguf");
    ad.export_gguf(&path, "llama").unwrap();

    let mut f = std::fs::File::open(&path).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    let s = |k: &str| match c.metadata.get(k) {
        Some(gguf_file::Value::String(s)) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(s("general.type"), "adapter");
    assert_eq!(s("general.architecture"), "llama");
    assert_eq!(s("adapter.type"), "lora");
    assert!(matches!(c.metadata.get("adapter.lora.alpha"), Some(gguf_file::Value::F32(a)) if *a == 8.0));
    assert_eq!(c.tensor_infos.len(), 2 * 3 * cfg.n_layer);
    // numpy order (r, n_in) / (n_out, r); GGUF stores ne reversed: lora_a ne = [n_in, r].
    let a = &c.tensor_infos["blk.1.ffn_down.weight.lora_a"];
    assert_eq!(a.shape.dims(), &[4, cfg.n_ff]);
    let b = &c.tensor_infos["blk.0.attn_v.weight.lora_b"];
    assert_eq!(b.shape.dims(), &[cfg.n_head_kv * cfg.head_dim(), 4]);
    assert_eq!(a.ggml_dtype, candle_core::quantized::GgmlDType::F32);

    let (back, arch) = LoraAdapter::load_gguf(&path, DType::F32).unwrap();
    assert_eq!(arch, "llama");
    assert_eq!(back.config, lora);
    for (p, q) in ad.pairs.iter().zip(&back.pairs) {
        assert_eq!((p.layer, p.target), (q.layer, q.target));
        for (x, y) in [(&p.a, &q.a), (&p.b, &q.b)] {
            let x = x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = y.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(x, y);
        }
    }
}
