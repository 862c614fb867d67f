//! Gradient accumulation over micro-batches gives the same update as one batch (for the
//! token-level `dapo` reduction), with right-padded sequences of different lengths.

mod common;

use autodidact_trainer::{AdamWConfig, Completion, LossConfig, LossType, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

fn groups() -> Vec<TrainGroup> {
    vec![TrainGroup {
        task: "a".into(),
        split: Split::Train,
        prompt_tokens: vec![3, 1, 4],
        completions: vec![
            Completion { tokens: vec![1, 5, 9, 2, 6], reward: 1.0, truncated: false },
            Completion { tokens: vec![5, 3], reward: 0.0, truncated: false },
            Completion { tokens: vec![5, 8, 9], reward: 0.5, truncated: false },
            Completion { tokens: vec![7], reward: 0.0, truncated: false },
        ],
    }]
}

#[test]
fn micro_batches_match_one_batch() {
    let run = |mb: usize| {
        let cfg = TrainConfig {
            micro_batch: mb,
            loss: LossConfig { loss_type: LossType::Dapo, beta: 0.02, ..LossConfig::default() },
            optim: AdamWConfig { lr: 1e-2, max_grad_norm: 0.0, ..AdamWConfig::default() },
            seed: 1,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(common::tiny_model(&format!("mb{mb}"), DType::F64), cfg).unwrap();
        let r = t.step(&groups()).unwrap();
        (r, t)
    };
    let (r1, _) = run(1);
    let (r4, _) = run(4);
    assert!((r1.loss - r4.loss).abs() < 1e-12, "{} vs {}", r1.loss, r4.loss);
    // Gradients are accumulated in f32 buffers, hence the looser tolerance.
    assert!((r1.grad_norm - r4.grad_norm).abs() < 1e-6 * r4.grad_norm.max(1.0), "{} vs {}", r1.grad_norm, r4.grad_norm);
    assert!(r4.grad_norm > 0.0);
    assert_eq!(r1.tokens, 11);
}
