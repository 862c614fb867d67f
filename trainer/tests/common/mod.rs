//! Helpers shared by the trainer's tests: a tiny random base model on disk, scratch paths.

#![allow(dead_code)]

use std::path::PathBuf;

use autodidact_trainer::{write_random_llama_gguf, BaseModel, LlamaConfig};
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
