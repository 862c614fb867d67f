//! A policy's `[training]` section becomes the trainer's config, key for key; the default
//! preset gives the crate's defaults.

use autodidact_policies::Policy;
use autodidact_trainer::{ConsolidationKind, LossType, ScaleRewards, Target, TrainConfig};

#[test]
fn policy_training_section_sets_the_config() {
    assert_eq!(TrainConfig::from_policy(&Policy::preset_default().training), TrainConfig::default());
    let p = Policy::parse(
        "[training]\nloss_type = \"grpo\"\nbeta = 0.04\nepsilon_high = 0.2\nscale_rewards = \"batch\"\n\
         num_iterations = 2\nmask_truncated_completions = true\nlearning_rate = 3e-5\nwarmup_steps = 5\n\
         micro_batch = 4\nlora_rank = 16\nlora_alpha = 32.0\nlora_targets = [\"q\", \"v\"]\n\
         consolidation = \"olora\"\nconsolidation_lambda = 0.25\nmerged_rank_cap = 48\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    let c = TrainConfig::from_policy(&p.training);
    assert_eq!(c.loss.loss_type, LossType::Grpo);
    assert_eq!((c.loss.beta, c.loss.epsilon_high, c.loss.num_iterations), (0.04, 0.2, 2));
    assert_eq!(c.loss.scale_rewards, ScaleRewards::Batch);
    assert!(c.loss.mask_truncated_completions);
    assert_eq!((c.optim.lr, c.optim.warmup_steps, c.micro_batch), (3e-5, 5, 4));
    assert_eq!((c.lora.rank, c.lora.alpha, c.lora.targets.clone()), (16, 32.0, vec![Target::Q, Target::V]));
    assert_eq!((c.consolidation.kind, c.consolidation.lambda, c.merged_rank_cap), (ConsolidationKind::OLora, 0.25, 48));
}
