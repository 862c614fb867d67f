//! Advantages, dynamic sampling, token weights and the clipped/KL loss against hand-computed
//! values.

use autodidact_trainer::loss::{advantages, keep_group, std_unbiased, token_weights, weighted_loss, TokenTerms, STD_EPS};
use autodidact_trainer::{LossConfig, LossType, ScaleRewards};
use candle_core::{Device, Tensor};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn group_advantages_divide_by_the_unbiased_group_std() {
    // r = [1, 0, 0, 1]: mean 0.5, unbiased std = sqrt(4·0.25 / 3) = 0.57735.
    let a = advantages(&[vec![1.0, 0.0, 0.0, 1.0]], ScaleRewards::Group);
    let s = (1.0f64 / 3.0).sqrt();
    assert!(close(std_unbiased(&[1.0, 0.0, 0.0, 1.0]), s, 1e-12));
    for (x, want) in a[0].iter().zip([0.5, -0.5, -0.5, 0.5]) {
        assert!(close(*x, want / (s + STD_EPS), 1e-12), "{x} vs {}", want / (s + STD_EPS));
    }
}

#[test]
fn batch_scaling_uses_the_whole_batch_std_and_none_only_centres() {
    let groups = vec![vec![1.0, 0.0], vec![3.0, 3.0]];
    // batch: [1, 0, 3, 3], mean 1.75, unbiased var = (0.5625+3.0625+1.5625+1.5625)/3 = 2.25, std 1.5.
    let a = advantages(&groups, ScaleRewards::Batch);
    assert!(close(a[0][0], 0.5 / (1.5 + STD_EPS), 1e-12));
    assert!(close(a[0][1], -0.5 / (1.5 + STD_EPS), 1e-12));
    assert_eq!(a[1], vec![0.0, 0.0]);
    let n = advantages(&groups, ScaleRewards::None);
    assert_eq!(n, vec![vec![0.5, -0.5], vec![0.0, 0.0]]);
}

#[test]
fn dynamic_sampling_drops_groups_with_equal_rewards() {
    assert!(!keep_group(&[1.0, 1.0, 1.0]));
    assert!(!keep_group(&[0.0, 0.0]));
    assert!(keep_group(&[0.0, 1.0, 0.0]));
}

#[test]
fn token_weights_implement_each_reduction() {
    let lens = [2, 4, 0];
    let micro = [0, 0, 1];
    // grpo: two live sequences, each token 1/(2·len).
    assert_eq!(token_weights(LossType::Grpo, &lens, &micro, 8), vec![0.25, 0.25, 0.125, 0.125, 0.125, 0.125]);
    // dapo: every token 1/6.
    assert!(token_weights(LossType::Dapo, &lens, &micro, 8).iter().all(|w| close(*w, 1.0 / 6.0, 1e-15)));
    // dr_grpo: 1/(3 sequences · max length 8).
    assert!(token_weights(LossType::DrGrpo, &lens, &micro, 8).iter().all(|w| close(*w, 1.0 / 24.0, 1e-15)));
    // bnpo: per micro-batch token mean (6 tokens in micro-batch 0) averaged over 2 micro-batches.
    assert!(token_weights(LossType::Bnpo, &lens, &micro, 8).iter().all(|w| close(*w, 1.0 / 12.0, 1e-15)));
}

#[test]
fn clipped_surrogate_and_k3_kl_match_hand_computation() {
    let cfg = LossConfig { loss_type: LossType::Grpo, beta: 0.1, epsilon: 0.2, epsilon_high: 0.28, ..LossConfig::default() };
    let logp = [-1.0f64, -2.0, -0.5];
    // ratios: e^0.5 = 1.6487 (clipped to 1.28 for A > 0), e^-0.5 = 0.6065 (A < 0: min picks the
    // clipped 0.8·A), e^0 = 1.
    let old = [-1.5, -1.5, -0.5];
    let adv = [2.0, -1.0, 0.5];
    let refl = [-1.2, -2.0, -0.4];
    let terms: Vec<TokenTerms> = (0..3).map(|i| TokenTerms { advantage: adv[i], old_logp: Some(old[i]), ref_logp: refl[i] }).collect();
    let w = [0.5, 0.25, 0.25];
    let t = Tensor::from_slice(&logp, 3, &Device::Cpu).unwrap();
    let (loss, stats) = weighted_loss(&cfg, &t, &w, &terms).unwrap();
    let k3 = |r: f64, l: f64| (r - l).exp() - (r - l) - 1.0;
    let per = [
        -(1.28f64 * 2.0).min(0.5f64.exp() * 2.0) + 0.1 * k3(refl[0], logp[0]),
        -((-0.5f64).exp() * -1.0).min(0.8 * -1.0) + 0.1 * k3(refl[1], logp[1]),
        -(0.5f64) + 0.1 * k3(refl[2], logp[2]),
    ];
    let want: f64 = per.iter().zip(w).map(|(p, w)| p * w).sum();
    let got = loss.to_scalar::<f64>().unwrap();
    assert!(close(got, want, 1e-12), "loss {got} vs hand-computed {want}");
    assert!(close(stats.clip_fraction, 2.0 / 3.0, 1e-12));
}

#[test]
fn first_iteration_ratio_is_one_with_a_live_gradient() {
    let cfg = LossConfig { loss_type: LossType::Dapo, ..LossConfig::default() };
    let v = candle_core::Var::from_slice(&[-1.0f64, -3.0], 2, &Device::Cpu).unwrap();
    let terms = [TokenTerms { advantage: 1.5, old_logp: None, ref_logp: 0.0 }, TokenTerms { advantage: -0.5, old_logp: None, ref_logp: 0.0 }];
    let (loss, stats) = weighted_loss(&cfg, v.as_tensor(), &[0.5, 0.5], &terms).unwrap();
    assert!(close(stats.mean_ratio, 1.0, 1e-15));
    // loss = −Σ w·A·ρ with ρ = 1, and ∂loss/∂logp = −w·A.
    assert!(close(loss.to_scalar::<f64>().unwrap(), -(0.75 - 0.25), 1e-15));
    let g = loss.backward().unwrap();
    assert_eq!(g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap(), vec![-0.75, 0.25]);
}

#[test]
fn sft_loss_is_the_weighted_negative_log_likelihood() {
    let cfg = LossConfig { loss_type: LossType::Sft, ..LossConfig::default() };
    let t = Tensor::from_slice(&[-1.0f64, -3.0], 2, &Device::Cpu).unwrap();
    let terms = [TokenTerms { advantage: 0.0, old_logp: None, ref_logp: 0.0 }; 2];
    let (loss, _) = weighted_loss(&cfg, &t, &[0.5, 0.5], &terms).unwrap();
    assert!(close(loss.to_scalar::<f64>().unwrap(), 2.0, 1e-15));
}

#[test]
fn loss_names_parse_like_trl() {
    for (s, l) in [("grpo", LossType::Grpo), ("dapo", LossType::Dapo), ("dr_grpo", LossType::DrGrpo), ("bnpo", LossType::Bnpo), ("sft", LossType::Sft)] {
        assert_eq!(LossType::parse(s).unwrap(), l);
    }
    assert!(LossType::parse("ppo").unwrap_err().to_string().contains("ppo"));
    assert_eq!(ScaleRewards::parse("none").unwrap(), ScaleRewards::None);
}
