//! The promotion gate: a candidate adapter replaces the promoted one only when the target
//! suite improves by at least `promotion.min_gain`, with a paired bootstrap over items whose
//! one-sided interval must stay above zero, and no suite regresses by more than
//! `promotion.max_regression`. The decision carries its evidence (scores, intervals, n). A
//! night that trains several families sets the target to [`ANY`].

use autodidact_policies::PromotionPolicy;
use serde::Serialize;

use crate::builtin::Rng;
use crate::harness::Report;

/// `promotion.target_suite = "any"`: promote on the suite that gained most confidently.
pub const ANY: &str = "any";

/// One suite's per-item scores under the promoted adapter (or base) and the candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteComparison {
    /// The suite.
    pub suite: String,
    /// (item id, pass rate) under the promoted adapter.
    pub promoted: Vec<(String, f64)>,
    /// (item id, pass rate) under the candidate.
    pub candidate: Vec<(String, f64)>,
}

impl SuiteComparison {
    /// Per-item pass rates from two harness reports of the same suite.
    pub fn from_reports(promoted: &Report, candidate: &Report) -> SuiteComparison {
        let rates = |r: &Report| r.items.iter().map(|i| {
            let (n, c) = i.counts();
            (i.id.clone(), if n == 0 { 0.0 } else { c as f64 / n as f64 })
        }).collect();
        SuiteComparison { suite: candidate.suite.clone(), promoted: rates(promoted), candidate: rates(candidate) }
    }
}

/// What the gate saw on one suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteEvidence {
    /// The suite.
    pub suite: String,
    /// Items scored under both.
    pub n: usize,
    /// Mean pass@1 under the promoted adapter.
    pub promoted_pass_at_1: f64,
    /// Mean pass@1 under the candidate.
    pub candidate_pass_at_1: f64,
    /// candidate - promoted.
    pub delta: f64,
    /// The paired bootstrap's lower bound on `delta` at the policy's confidence.
    pub delta_low: f64,
    /// Its upper bound.
    pub delta_high: f64,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Promote the candidate?
    pub promote: bool,
    /// Why, in words.
    pub reason: String,
    /// Every suite's evidence, the target first.
    pub evidence: Vec<SuiteEvidence>,
}

/// Applies the gate. Items are paired by id; items scored under only one side are ignored.
///
/// With `target_suite = "any"`, the target is the suite whose gain is most confidently
/// positive, and every interval is widened for the number of suites that could have been
/// chosen (Bonferroni: confidence `1 - (1 - c) / m` over `m` scored suites), so trying many
/// suites does not make a lucky one more likely to pass.
pub fn decide(suites: &[SuiteComparison], policy: &PromotionPolicy, seed: u64) -> Decision {
    let any = policy.target_suite == ANY;
    let mut policy = policy.clone();
    if any {
        let m = suites.iter().filter(|s| !s.candidate.is_empty() && !s.promoted.is_empty()).count().max(1);
        policy.confidence = 1.0 - (1.0 - policy.confidence) / m as f64;
    }
    let policy = &policy;
    let mut evidence: Vec<SuiteEvidence> = suites.iter().map(|s| compare(s, policy, seed)).collect();
    let target_name = if any {
        evidence.iter().filter(|e| e.n > 0).max_by(|a, b| a.delta_low.total_cmp(&b.delta_low).then(b.suite.cmp(&a.suite))).map_or_else(String::new, |e| e.suite.clone())
    } else {
        policy.target_suite.clone()
    };
    evidence.sort_by_key(|e| e.suite != target_name);
    let reject = |reason: String, evidence: Vec<SuiteEvidence>| Decision { promote: false, reason, evidence };
    let Some(target) = evidence.iter().find(|e| e.suite == target_name && e.n > 0) else {
        let reason = if any { "no suite was evaluated under both adapters".to_owned() } else { format!("the target suite `{}` was not evaluated under both adapters", policy.target_suite) };
        return reject(reason, evidence);
    };
    if target.delta < policy.min_gain {
        return reject(format!("`{}` gained {:+.3}, less than promotion.min_gain = {}", target.suite, target.delta, policy.min_gain), evidence);
    }
    if target.delta_low <= 0.0 {
        return reject(
            format!("`{}` gained {:+.3}, but its {:.0}% paired-bootstrap interval reaches {:+.3}: not confident", target.suite, target.delta, policy.confidence * 100.0, target.delta_low),
            evidence,
        );
    }
    if let Some(worst) = evidence.iter().filter(|e| e.n > 0 && e.delta < -policy.max_regression).min_by(|a, b| a.delta.total_cmp(&b.delta)) {
        return reject(format!("`{}` regressed by {:.3}, more than promotion.max_regression = {}", worst.suite, -worst.delta, policy.max_regression), evidence);
    }
    let reason = format!("`{}` gained {:+.3} (interval {:+.3}..{:+.3}) and no suite regressed by more than {}", target.suite, target.delta, target.delta_low, target.delta_high, policy.max_regression);
    Decision { promote: true, reason, evidence }
}

fn compare(s: &SuiteComparison, policy: &PromotionPolicy, seed: u64) -> SuiteEvidence {
    let promoted: std::collections::HashMap<&str, f64> = s.promoted.iter().map(|(id, v)| (id.as_str(), *v)).collect();
    let pairs: Vec<(f64, f64)> = s.candidate.iter().filter_map(|(id, c)| Some((*promoted.get(id.as_str())?, *c))).collect();
    let n = pairs.len();
    if n == 0 {
        return SuiteEvidence { suite: s.suite.clone(), n, promoted_pass_at_1: 0.0, candidate_pass_at_1: 0.0, delta: 0.0, delta_low: 0.0, delta_high: 0.0 };
    }
    let mean = |f: &dyn Fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / n as f64;
    let (p, c) = (mean(&|x| x.0), mean(&|x| x.1));
    let diffs: Vec<f64> = pairs.iter().map(|(p, c)| c - p).collect();
    let mut rng = Rng::new(seed ^ 0x6761_7465);
    let mut means: Vec<f64> = (0..policy.bootstrap_samples.max(1))
        .map(|_| (0..n).map(|_| diffs[rng.below(n as u64) as usize]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    SuiteEvidence { suite: s.suite.clone(), n, promoted_pass_at_1: p, candidate_pass_at_1: c, delta: c - p, delta_low: at(1.0 - policy.confidence), delta_high: at(policy.confidence) }
}
