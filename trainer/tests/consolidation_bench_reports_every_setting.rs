//! `bench::consolidation` runs both nights on the tiny model and reports one result per setting
//! (no penalty first, then each ELLA and O-LoRA λ), with finite numbers and an exact merge.

mod common;

use autodidact_trainer::bench::{consolidation, ConsolidationBenchConfig};
use candle_core::DType;

#[test]
fn consolidation_bench_reports_every_setting() {
    let model = common::tiny_model("bench-consolidation", DType::F32);
    let cfg = ConsolidationBenchConfig {
        steps: 2,
        lora_rank: 2,
        groups: 2,
        prompt_len: 3,
        completion_len: 3,
        ella_lambdas: vec![10.0],
        olora_lambdas: vec![0.1],
        merged_rank_cap: 4,
        ..ConsolidationBenchConfig::default()
    };
    // The tiny model's vocabulary is small: the bench must keep its tokens inside it.
    let r = consolidation(&model, &cfg).unwrap();
    let kinds: Vec<&str> = r.settings.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["none", "ella", "olora"]);
    assert!(r.a_past > r.a_base, "night 1 learns A: {} -> {}", r.a_base, r.a_past);
    for s in &r.settings {
        assert!(s.gain_b.is_finite() && s.retention_a.is_finite() && s.step_s_median > 0.0, "{s:?}");
        assert_eq!(s.merged_rank, 4);
        assert!(s.merge_max_abs_logp_diff < 1e-4, "{s:?}");
    }
    assert_eq!(r.settings[0].penalty_last, 0.0);
    assert!(r.settings[2].penalty_last > 0.0);
}
