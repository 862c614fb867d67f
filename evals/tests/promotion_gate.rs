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

#[test]
fn any_target_judges_the_most_confident_gain_with_a_wider_interval() {
    let any = PromotionPolicy { target_suite: autodidact_evals::gate::ANY.into(), ..policy() };
    let suites = [suite("toy", 50, 10, 10), suite("integrals", 50, 5, 20), suite("gsm8k", 50, 10, 10)];
    let d = decide(&suites, &any, 1);
    assert!(d.promote, "{}", d.reason);
    assert_eq!(d.evidence[0].suite, "integrals", "the judged suite comes first");
    // Three suites could have been chosen: the interval is that of 1 - 0.1/3 confidence, wider
    // than the named target's.
    let named = decide(&suites, &PromotionPolicy { target_suite: "integrals".into(), ..policy() }, 1);
    assert!(d.evidence[0].delta_low < named.evidence[0].delta_low, "{:?} vs {:?}", d.evidence[0], named.evidence[0]);
    // A small gain on one of many suites is not enough, and a regression still rejects.
    let small = [suite("toy", 30, 10, 10), suite("arith", 30, 10, 13), suite("niah", 30, 0, 0), suite("game24", 30, 0, 0)];
    assert!(!decide(&small, &any, 1).promote);
    let regress = [suite("integrals", 50, 5, 20), suite("arith", 50, 10, 8)];
    let d = decide(&regress, &any, 1);
    assert!(!d.promote && d.reason.contains("`arith` regressed"), "{}", d.reason);
    assert!(!decide(&[], &any, 1).promote);
}
