//! A frozen past adapter changes every forward (the KL reference's too) but gets no gradient,
//! is not an optimiser parameter, is left untouched by training steps and is not written to a
//! checkpoint.

mod common;

use autodidact_trainer::{AdamWConfig, Consolidation, ConsolidationKind, LossConfig, LossType, LoraAdapter, LoraConfig, Rng, Target, TrainConfig, Trainer};
use candle_core::quantized::gguf_file;
use candle_core::DType;

fn values(ad: &LoraAdapter) -> Vec<f32> {
    ad.named_vars().iter().flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

#[test]
fn frozen_past_changes_the_forward_but_is_not_trained() {
    let base = common::tiny_model("frozen-past", DType::F32);
    let c = base.config.clone();
    let mut rng = Rng::new(21);
    let past = LoraAdapter::init(LoraConfig { rank: 4, alpha: 8.0, targets: Target::ALL.to_vec() }, c.n_layer, |t| c.shape_of(t), DType::F32, &mut rng)
        .unwrap();
    past.randomize_b(0.3, &mut rng).unwrap();
    let before = values(&past);

    let seq: (&[u32], &[u32]) = (&[2, 7, 1], &[8, 2, 8]);
    let plain = base.completion_logprobs(&[seq], None).unwrap().to_vec1::<f32>().unwrap();
    let mut with_past = base.clone();
    with_past.set_past(Some(&past)).unwrap();
    let lp = with_past.completion_logprobs(&[seq], None).unwrap();
    let shifted = lp.to_vec1::<f32>().unwrap();
    assert!(plain.iter().zip(&shifted).any(|(a, b)| (a - b).abs() > 1e-3), "{plain:?} vs {shifted:?}");
    // No gradient reaches the past's factors (they are not even in the graph as variables).
    let grads = lp.sum_all().unwrap().backward().unwrap();
    let frozen = with_past.past().unwrap();
    for (name, v) in frozen.named_vars() {
        assert!(grads.get(v.as_tensor()).is_none(), "{name} got a gradient");
    }

    // β > 0: the reference pass includes the past, so a fresh delta starts at KL 0.
    let cfg = TrainConfig {
        consolidation: Consolidation { kind: ConsolidationKind::Ella, lambda: 1e3 },
        loss: LossConfig { loss_type: LossType::Grpo, beta: 0.1, ..LossConfig::default() },
        optim: AdamWConfig { lr: 5e-3, ..AdamWConfig::default() },
        checkpoint: Some(common::scratch("frozen-past").join("ckpt.gguf")),
        ..TrainConfig::default()
    };
    let mut t = Trainer::with_past(base.clone(), cfg.clone(), &past).unwrap();
    let fresh = Trainer::new(base, cfg.clone()).unwrap();
    assert_eq!(t.adapter.num_params(), fresh.adapter.num_params(), "only the new delta is trained");
    assert_eq!(t.opt.m.len(), t.adapter.named_vars().len());
    let group = common::rewarded_pair();
    let r1 = t.step(std::slice::from_ref(&group)).unwrap();
    assert!(r1.mean_kl.abs() < 1e-6, "the reference includes the past: {r1:?}");
    assert_eq!(r1.penalty, 0.0, "B = 0: the fresh delta does not overlap the past yet");
    let r2 = t.step(std::slice::from_ref(&group)).unwrap();
    assert!(r2.penalty > 0.0 && r2.mean_kl > 0.0, "{r2:?}");
    assert_eq!(values(t.model.past().unwrap()), before, "steps leave the past untouched");
    assert_eq!(values(&past), before, "and the caller's copy too");

    let mut f = std::fs::File::open(cfg.checkpoint.as_ref().unwrap()).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    assert_eq!(content.tensor_infos.len(), 3 * t.adapter.named_vars().len(), "adapter, adam_m and adam_v only");
}
