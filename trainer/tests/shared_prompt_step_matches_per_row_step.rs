//! A training step with `share_prompts` (each prompt run once per micro-batch through
//! `BaseModel::group_logprobs`, micro-batches within a prompt's group) makes the same update as
//! the per-row forward with micro-batches across prompts: same loss, KL, ratios and gradient
//! norm, and the same adapter afterwards, for several loss types, with the `β > 0` reference
//! pass, `num_iterations = 2` (the no-grad `logp_old` pass), with and without a masked
//! truncated completion.

mod common;

use autodidact_trainer::{AdamWConfig, Completion, LossConfig, LossType, Split, TrainConfig, TrainGroup, Trainer};
use candle_core::DType;

fn groups(truncate_one: bool) -> Vec<TrainGroup> {
    let prompts: [&[u32]; 3] = [&[3, 1, 4, 1, 5], &[9, 2, 6], &[5, 3, 5, 8, 9, 7, 9]];
    prompts
        .iter()
        .enumerate()
        .map(|(g, p)| TrainGroup {
            task: format!("t{g}"),
            split: Split::Train,
            prompt_tokens: p.to_vec(),
            completions: (0..4u32)
                .map(|i| Completion {
                    tokens: (0..1 + (i + 2 * g as u32) % 5).map(|j| (7 * i + 3 * j + g as u32) % 37).collect(),
                    reward: ((i + g as u32) % 3) as f64,
                    truncated: truncate_one && g == 1 && i == 2,
                })
                .collect(),
        })
        .collect()
}

fn params(t: &Trainer) -> Vec<f64> {
    t.adapter.named_vars().iter().flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap()).collect()
}

#[test]
fn shared_prompt_step_matches_per_row_step() {
    for (loss_type, mask) in [(LossType::Dapo, false), (LossType::Grpo, false), (LossType::Sft, false), (LossType::Dapo, true), (LossType::Grpo, true)] {
        let run = |share_prompts: bool| {
            let cfg = TrainConfig {
                micro_batch: 3,
                loss: LossConfig {
                    loss_type,
                    beta: 0.05,
                    num_iterations: 2,
                    mask_truncated_completions: mask,
                    sft_min_reward: 1.0,
                    ..LossConfig::default()
                },
                // Adam divides by `√v + eps`: at a near-zero gradient element it amplifies the f32
                // rounding of the accumulated gradient by `lr / eps`. A larger `eps` keeps this
                // comparison about the gradients.
                optim: AdamWConfig { lr: 1e-2, eps: 1e-4, ..AdamWConfig::default() },
                seed: 3,
                share_prompts,
                ..TrainConfig::default()
            };
            let mut t = Trainer::new(common::tiny_model(&format!("share-{loss_type:?}/mask={mask}-{mask}-{share_prompts}"), DType::F64), cfg).unwrap();
            let before = params(&t);
            let reports = t.train_batch(&groups(mask)).unwrap();
            let delta: Vec<f64> = params(&t).iter().zip(&before).map(|(a, b)| a - b).collect();
            (reports, delta)
        };
        let (rows, d_rows) = run(false);
        let (shared, d_shared) = run(true);
        for (a, b) in rows.iter().zip(&shared) {
            println!("{loss_type:?}/mask={mask}: per-row {a:?}\n{loss_type:?}/mask={mask}: shared  {b:?}");
            assert!(a.skipped.is_none() && b.skipped.is_none());
            assert_eq!((a.tokens, a.groups_used), (b.tokens, b.groups_used));
            // Gradients are accumulated in f32 buffers, so the second iteration starts from adapters
            // that differ by f32 rounding.
            for (x, y, what, tol) in [
                (a.loss, b.loss, "loss", 1e-6),
                (a.grad_norm, b.grad_norm, "grad_norm", 1e-6),
                (a.mean_kl, b.mean_kl, "mean_kl", 1e-6),
                (a.mean_ratio, b.mean_ratio, "mean_ratio", 1e-6),
            ] {
                // The diagnostics average a micro-batch's tokens, masked ones included, weighted
                // by its live tokens, so they depend on the partition when a sequence is masked.
                if mask && what.starts_with("mean") {
                    continue;
                }
                assert!((x - y).abs() <= tol * x.abs().max(1e-3), "{loss_type:?}/mask={mask} {what}: {x} vs {y}");
            }
        }
        let scale = d_rows.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let diff = d_rows.iter().zip(&d_shared).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("{loss_type:?}/mask={mask}: max |Δθ| {scale:.3e}, max difference of the updates {diff:.3e}");
        assert!(scale > 0.0 && diff <= 1e-4 * scale, "{loss_type:?}/mask={mask}: updates differ by {diff} (scale {scale})");
    }
}
