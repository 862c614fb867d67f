//! A batch that contains an eval-split group is refused with an error naming the task, and no
//! state changes.

mod common;

use autodidact_trainer::{Completion, Error, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

#[test]
fn eval_split_is_refused() {
    let mut t = Trainer::new(common::tiny_model("eval", DType::F32), TrainConfig::default()).unwrap();
    let group = |task: &str, split| TrainGroup {
        task: task.into(),
        split,
        prompt_tokens: vec![1, 2],
        completions: vec![Completion { tokens: vec![3], reward: 1.0, truncated: false }, Completion { tokens: vec![4], reward: 0.0, truncated: false }],
    };
    let err = t.step(&[group("ok", Split::Train), group("held-out-17", Split::Eval)]).unwrap_err();
    assert!(matches!(&err, Error::EvalSplitRefused { task } if task == "held-out-17"), "{err}");
    assert!(err.to_string().contains("eval split"));
    assert_eq!(t.step, 0);
    assert_eq!(t.opt.t, 0);
}
