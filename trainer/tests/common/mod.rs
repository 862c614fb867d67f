//! Helpers shared by the trainer's tests: a tiny random base model on disk, scratch paths, and
//! the smallest useful group.

#![allow(dead_code)]

use std::path::PathBuf;

use autodidact_trainer::{write_random_llama_gguf, BaseModel, Completion, LlamaConfig, Split, TrainGroup};
use candle_core::DType;

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("autodidact-trainer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The tiny random llama written to a GGUF and loaded back in `dtype`.
pub fn tiny_model(name: &str, dtype: DType) -> BaseModel {
    let path = scratch(name).join("tiny.gguf");
    write_random_llama_gguf(&path, &LlamaConfig::tiny(), 7).unwrap();
    BaseModel::load_gguf(&path, dtype).unwrap()
}

/// One train-split group of two completions of a three-token prompt: the first rewarded, the
/// second not.
pub fn rewarded_pair() -> TrainGroup {
    TrainGroup {
        task: "t".into(),
        split: Split::Train,
        prompt_tokens: vec![2, 7, 1],
        completions: vec![
            Completion { tokens: vec![8, 2, 8], reward: 1.0, truncated: false },
            Completion { tokens: vec![11, 3, 5], reward: 0.0, truncated: false },
        ],
    }
}
