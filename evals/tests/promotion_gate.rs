//! The promotion gate on fixed per-item results: it promotes a candidate that improves the
//! target suite with confidence and regresses nothing, and rejects one that regresses another
//! suite, gains too little, gains without confidence, or was not evaluated on the target.

use autodidact_evals::gate::{SuiteComparison, decide};
use autodidact_policies::PromotionPolicy;

/// `n` items of which the first `passed` pass.
fn items(n: usize, passed: usize) -> Vec<(String, f64)> {
    (0..n).map(|i| (format!("item-{i}"), if i < passed { 1.0 } else { 0.0 })).collect()
}

fn suite(name: &str, n: usize, before: usize, after: usize) -> SuiteComparison {
    SuiteComparison { suite: name.into(), promoted: items(n, before), candidate: items(n, after) }
}

fn policy() -> PromotionPolicy {
    PromotionPolicy { target_suite: "arith".into(), min_gain: 0.05, max_regression: 0.01, confidence: 0.9, bootstrap_samples: 2000 }
}

#[test]
fn a_confident_gain_without_regressions_is_promoted() {
    let d = decide(&[suite("gsm8k", 50, 10, 10), suite("arith", 50, 10, 25)], &policy(), 1);
    assert!(d.promote, "{}", d.reason);
    assert_eq!(d.evidence[0].suite, "arith", "the target comes first");
    let t = &d.evidence[0];
    assert_eq!(t.n, 50);
    assert!((t.promoted_pass_at_1 - 0.2).abs() < 1e-12 && (t.candidate_pass_at_1 - 0.5).abs() < 1e-12);
    assert!((t.delta - 0.3).abs() < 1e-12);
    assert!(t.delta_low > 0.15 && t.delta_low < t.delta && t.delta_high > t.delta, "{t:?}");
}

#[test]
fn a_regression_elsewhere_is_rejected() {
    let d = decide(&[suite("arith", 50, 10, 25), suite("gsm8k", 50, 10, 8)], &policy(), 1);
    assert!(!d.promote);
    assert!(d.reason.contains("`gsm8k` regressed by 0.040"), "{}", d.reason);
}

#[test]
fn too_small_or_unconfident_gains_are_rejected() {
    let d = decide(&[suite("arith", 50, 10, 11)], &policy(), 1);
    assert!(!d.promote && d.reason.contains("less than promotion.min_gain"), "{}", d.reason);
    // +10 points on 10 items: one item flipped, the bootstrap interval reaches zero.
    let d = decide(&[suite("arith", 10, 2, 3)], &policy(), 1);
    assert!(!d.promote && d.reason.contains("not confident"), "{}", d.reason);
    let d = decide(&[suite("gsm8k", 50, 10, 30)], &policy(), 1);
    assert!(!d.promote && d.reason.contains("not evaluated"), "{}", d.reason);
}

#[test]
fn items_are_paired_by_id_and_decisions_are_reproducible() {
    // The candidate saw only half the items: only those are compared.
    let mut s = suite("arith", 40, 0, 40);
    s.candidate.truncate(20);
    let d = decide(&[s.clone()], &policy(), 7);
    assert_eq!(d.evidence[0].n, 20);
    assert_eq!(d, decide(&[s], &policy(), 7));
}
