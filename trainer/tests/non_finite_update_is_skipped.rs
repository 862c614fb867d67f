//! A NaN in the loss skips the update, leaves the adapter untouched, and is recorded.

mod common;

use autodidact_trainer::{Completion, LossConfig, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

#[test]
fn non_finite_update_is_skipped() {
    let cfg = TrainConfig { loss: LossConfig { dynamic_sampling: false, ..LossConfig::default() }, ..TrainConfig::default() };
    let mut t = Trainer::new(common::tiny_model("nan", DType::F32), cfg).unwrap();
    let before: Vec<Vec<f32>> = t.adapter.named_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    let g = TrainGroup {
        task: "nan".into(),
        split: Split::Train,
        prompt_tokens: vec![1, 2],
        completions: vec![Completion { tokens: vec![3, 4], reward: f64::NAN, truncated: false }, Completion { tokens: vec![5], reward: 1.0, truncated: false }],
    };
    let r = t.step(&[g]).unwrap();
    assert!(r.skipped.as_deref().is_some_and(|s| s.contains("non-finite")), "{r:?}");
    assert_eq!(t.skipped_steps, vec![1]);
    assert_eq!(t.step, 1);
    assert_eq!(t.opt.t, 0, "AdamW must not count a skipped update");
    let after: Vec<Vec<f32>> = t.adapter.named_vars().iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()).collect();
    assert_eq!(before, after);
}
