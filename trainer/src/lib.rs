//! `autodidact-trainer`: GRPO/DAPO/SFT LoRA training on CPU, on the same GGUF weights that
//! inference serves.
//!
//! The runtime samples groups of completions with llama.cpp from a quantized GGUF; verifiers
//! reward them; this crate turns the groups into a LoRA update and exports it as a GGUF adapter
//! that llama.cpp loads back. It is built around four pieces of explicit state:
//!
//! - [`BaseModel`] (`model.rs`): a llama-architecture decoder in candle, dequantized from the
//!   GGUF to `f32`, config read from the GGUF metadata. Its weights are frozen tensors, never
//!   variables. It computes per-token log-probs of completion tokens given prompt tokens
//!   ([`BaseModel::completion_logprobs`]), right-padded, with the LM head applied only where a
//!   completion token is predicted. [`BaseModel::group_logprobs`] returns the same values for a
//!   GRPO group (`G` completions of one prompt) with the prompt run once: the completions attend
//!   to its keys and values, which stay in the graph, so the gradient is exact. [`Trainer`] uses
//!   it for every pass when [`TrainConfig::share_prompts`] is on (the default), with
//!   micro-batches inside a group.
//! - [`LoraAdapter`] (`lora.rs`): `A`/`B` pairs on the chosen targets (`q,k,v,o,gate,up,down`),
//!   exported in llama.cpp's adapter format ([`LoraAdapter::export_gguf`]).
//! - [`AdamWState`] (`optim.rs`): the optimiser's moments and step count.
//! - [`Trainer`] (`trainer.rs`): the above plus the step counter and the RNG state, saved and
//!   restored atomically so that a resume takes a bit-identical next step.
//!
//! Nights compose (`consolidation.rs`, `lora.rs`): every promoted update is kept as **one**
//! merged adapter ([`LoraAdapter::merge`]: exact concatenation, or a truncated SVD computed from
//! the factors, `linalg.rs`, above a rank cap), because llama.cpp applies one active adapter.
//! The next night trains a fresh delta with that *past* adapter frozen inside the model
//! ([`BaseModel::set_past`], [`Trainer::with_past`]): it is applied in every forward, the KL
//! reference's included, but receives no gradient and is not checkpointed. A consolidation
//! penalty against it ([`Consolidation`]: ELLA's `λ‖ΔW ⊙ W_past‖²_F` or O-LoRA's
//! `λ Σ|A_past Aᵀ|`) is added to the loss once per update and reported in
//! [`StepReport::penalty`]. `bench::consolidation` measures the penalties against each other.
//!
//! Why custom ops (`ops.rs`): candle's fast `rms_norm`, softmax, `rope` and quantized matmul have
//! no backward and silently cut the gradient, while the differentiable compositions keep large
//! intermediates in the graph. The hot ops are therefore custom ops with hand-written backward
//! passes, and a finite-difference test in `f64` checks them.
//!
//! The losses (`loss.rs`) use TRL's names (`loss_type`, `beta`, `epsilon`, `epsilon_high`,
//! `scale_rewards`, `num_iterations`, `mask_truncated_completions`), and each formula cites its
//! paper next to the code.
//!
//! **Architecture Invariant:** this crate never imports `autodidact-runtime` or
//! `autodidact-sandbox`. Token ids and rewards come in as plain data ([`TrainGroup`]); groups
//! from the eval split are refused with [`Error::EvalSplitRefused`].

#![deny(missing_docs)]

mod error;
pub mod bench;
mod bench_consolidation;
pub mod consolidation;
pub mod linalg;
pub mod lora;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod trainer;

pub use candle_core::DType;
pub use consolidation::{Consolidation, ConsolidationKind, Penalty};
pub use error::{Error, Result};
pub use lora::{LoraAdapter, LoraConfig, LoraPair, Target};
pub use loss::{LossConfig, LossType, ScaleRewards};
pub use model::{write_random_llama_gguf, BaseModel, LlamaConfig};
pub use optim::{AdamWConfig, AdamWState};
pub use rng::Rng;
pub use trainer::{Completion, Split, StepReport, TrainConfig, TrainGroup, Trainer};

use std::path::PathBuf;

/// Where the bootstrap puts SmolLM2: `$AUTODIDACT_HOME/smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf`
/// (`AUTODIDACT_HOME` defaults to `~/.cache/autodidact`). The file may not exist; loading it
/// then fails with an error naming `scripts/bootstrap.sh`.
pub fn default_model_path() -> PathBuf {
    let home = std::env::var_os("AUTODIDACT_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache").join("autodidact")
    });
    home.join("smollm2-0.1.2").join("SmolLM2-135M-Instruct.Q4_1.gguf")
}
