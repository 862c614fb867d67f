//! A few GRPO steps on the tiny model raise the log-probability of the rewarded completion and
//! lower that of the unrewarded one; a few SFT steps raise the successful completion's.

mod common;

use autodidact_trainer::{AdamWConfig, LossConfig, LossType, TrainConfig, Trainer};
use candle_core::DType;

fn seq_logp(t: &Trainer, c: &[u32]) -> f64 {
    let p = [2u32, 7, 1];
    t.model.completion_logprobs(&[(&p, c)], Some(&t.adapter)).unwrap().to_vec1::<f32>().unwrap().iter().map(|x| *x as f64).sum()
}

#[test]
fn grpo_steps_move_probability_towards_the_reward() {
    let cfg = TrainConfig {
        loss: LossConfig { loss_type: LossType::Grpo, ..LossConfig::default() },
        optim: AdamWConfig { lr: 5e-3, ..AdamWConfig::default() },
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(common::tiny_model("grpo-learn", DType::F32), cfg).unwrap();
    let (good0, bad0) = (seq_logp(&t, &[8, 2, 8]), seq_logp(&t, &[11, 3, 5]));
    for _ in 0..5 {
        let r = t.step(&[common::rewarded_pair()]).unwrap();
        assert!(r.skipped.is_none(), "{r:?}");
    }
    let (good1, bad1) = (seq_logp(&t, &[8, 2, 8]), seq_logp(&t, &[11, 3, 5]));
    assert!(good1 > good0 + 0.05, "rewarded completion: {good0} -> {good1}");
    assert!(bad1 < bad0 - 0.05, "unrewarded completion: {bad0} -> {bad1}");
}

#[test]
fn sft_steps_raise_the_successful_completion() {
    let cfg = TrainConfig {
        loss: LossConfig { loss_type: LossType::Sft, ..LossConfig::default() },
        optim: AdamWConfig { lr: 5e-3, ..AdamWConfig::default() },
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(common::tiny_model("sft-learn", DType::F32), cfg).unwrap();
    let before = seq_logp(&t, &[8, 2, 8]);
    for _ in 0..5 {
        let r = t.step(&[common::rewarded_pair()]).unwrap();
        assert_eq!(r.tokens, 3, "only the successful completion is trained on");
    }
    assert!(seq_logp(&t, &[8, 2, 8]) > before + 0.05);
}
