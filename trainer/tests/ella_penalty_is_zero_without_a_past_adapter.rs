//! The first night has no past adapter: the ELLA (and O-LoRA) penalty is exactly zero, with a
//! zero gradient, and a training step reports no penalty.

mod common;

use autodidact_trainer::consolidation::penalty;
use autodidact_trainer::{AdamWConfig, Consolidation, ConsolidationKind, LoraAdapter, LoraConfig, Rng, Target, TrainConfig, Trainer};
use candle_core::DType;

#[test]
fn ella_penalty_is_zero_without_a_past_adapter() {
    let c = autodidact_trainer::LlamaConfig::tiny();
    let mut rng = Rng::new(2);
    let ad = LoraAdapter::init(LoraConfig { rank: 3, alpha: 6.0, targets: Target::ALL.to_vec() }, c.n_layer, |t| c.shape_of(t), DType::F64, &mut rng)
        .unwrap();
    ad.randomize_b(0.5, &mut rng).unwrap();
    for kind in [ConsolidationKind::Ella, ConsolidationKind::OLora] {
        let p = penalty(&Consolidation { kind, lambda: 1e3 }, &ad, None).unwrap();
        assert_eq!(p.value, 0.0);
        assert!(p.grads.iter().flatten().all(|g| *g == 0.0));
        assert_eq!(p.grads.len(), ad.named_vars().len());
    }

    let cfg = TrainConfig {
        consolidation: Consolidation { kind: ConsolidationKind::Ella, lambda: 1e3 },
        optim: AdamWConfig { lr: 5e-3, ..AdamWConfig::default() },
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(common::tiny_model("ella-zero", DType::F32), cfg).unwrap();
    let group = common::rewarded_pair();
    for _ in 0..3 {
        let r = t.step(std::slice::from_ref(&group)).unwrap();
        assert_eq!((r.penalty, r.penalty_grad_norm), (0.0, 0.0), "{r:?}");
    }
}
