//! With `num_iterations = 2`, `logp_old` is computed once by the trainer: the first update sees a
//! ratio of exactly 1, the second a ratio moved by the first update.

mod common;

use autodidact_trainer::{AdamWConfig, Completion, LossConfig, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

#[test]
fn ratio_starts_at_one_and_moves_with_iterations() {
    let cfg = TrainConfig {
        loss: LossConfig { num_iterations: 2, ..LossConfig::default() },
        optim: AdamWConfig { lr: 1e-2, ..AdamWConfig::default() },
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(common::tiny_model("mu", DType::F32), cfg).unwrap();
    let g = TrainGroup {
        task: "mu".into(),
        split: Split::Train,
        prompt_tokens: vec![4, 4, 2],
        completions: vec![
            Completion { tokens: vec![9, 1], reward: 1.0, truncated: false },
            Completion { tokens: vec![3, 3, 3], reward: 0.0, truncated: false },
        ],
    };
    let reports = t.train_batch(&[g]).unwrap();
    assert_eq!(reports.len(), 2);
    assert!((reports[0].mean_ratio - 1.0).abs() < 1e-6, "{:?}", reports[0]);
    assert!((reports[1].mean_ratio - 1.0).abs() > 1e-4, "{:?}", reports[1]);
    assert_eq!((t.step, t.opt.t), (2, 2));
}
