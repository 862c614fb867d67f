//! A trainer resumed from the checkpoint written after step 1 takes a step 2 that is
//! bit-identical to the uninterrupted trainer's: adapter, AdamW moments, step and RNG state all
//! round-trip, and the checkpoint is written atomically (no temporary file left behind).

mod common;

use autodidact_trainer::{AdamWConfig, Completion, LossConfig, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

fn groups(seed: u32) -> Vec<TrainGroup> {
    (0..2)
        .map(|g| TrainGroup {
            task: format!("t{g}"),
            split: Split::Train,
            prompt_tokens: vec![1 + g, 5, 9 + seed],
            completions: (0..3)
                .map(|i| Completion { tokens: vec![4 + i, 2 + g, 30 - i, 7][..2 + i as usize].to_vec(), reward: (i % 2) as f64, truncated: false })
                .collect(),
        })
        .collect()
}

fn bits(t: &Trainer) -> Vec<u32> {
    let mut out = Vec::new();
    for (_, v) in t.adapter.named_vars() {
        out.extend(v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()));
    }
    for m in t.opt.m.iter().chain(&t.opt.v) {
        out.extend(m.iter().map(|x| x.to_bits()));
    }
    out
}

#[test]
fn resume_is_bit_identical() {
    let dir = common::scratch("resume");
    let ckpt = dir.join("state.ckpt.gguf");
    let config = TrainConfig {
        optim: AdamWConfig { lr: 1e-2, warmup_steps: 3, ..AdamWConfig::default() },
        loss: LossConfig::default(),
        micro_batch: 2,
        seed: 11,
        checkpoint: Some(ckpt.clone()),
        ..TrainConfig::default()
    };
    let mut a = Trainer::new(common::tiny_model("resume-a", DType::F32), config.clone()).unwrap();
    let r1 = a.step(&groups(0)).unwrap();
    assert!(r1.skipped.is_none(), "{r1:?}");
    let saved = std::fs::read(&ckpt).unwrap();
    let r2 = a.step(&groups(1)).unwrap();

    // "kill -9" after step 1: a new process would find only the step-1 checkpoint.
    std::fs::write(&ckpt, &saved).unwrap();
    let mut b = Trainer::resume(common::tiny_model("resume-b", DType::F32), config, &ckpt).unwrap();
    assert_eq!(b.step, 1);
    let r2b = b.step(&groups(1)).unwrap();
    assert_eq!(r2.loss.to_bits(), r2b.loss.to_bits());
    assert_eq!(r2.grad_norm.to_bits(), r2b.grad_norm.to_bits());
    assert_eq!(a.rng, b.rng);
    assert_eq!(a.opt.t, b.opt.t);
    assert_eq!(bits(&a), bits(&b), "parameters or moments differ after the resumed step");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().contains(".tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
