//! A curriculum that follows the model: which families and levels a night trains on.
//!
//! GRPO learns only from groups with mixed outcomes (a group that all fails or all passes has
//! zero advantage), so a night spends its rollouts where the pass rate is neither 0 nor 1:
//!
//! - For each family, the *frontier* is its lowest level whose recent pass rate is below
//!   [`STEP_UP`] (or unknown). Once a level is passed that often, the family steps up; a family
//!   whose top level is passed that often is *mastered* and gets nothing.
//! - Rates count only unhinted attempts, and a level with fewer than [`MIN_ATTEMPTS`] attempts
//!   is unknown.
//! - The night's train items are shared among the families in proportion to `p (1 - p)` at
//!   their frontier (the variance of a group's reward, which is what GRPO's advantage feeds
//!   on), with an unknown rate counted as `p = 1/2` (worth exploring) and at least
//!   [`FLOOR`] for a rate of 0, because hints and LADDER variants can still make signal there.
//!   Every family that is not mastered gets at least [`MIN_ITEMS`] items when the budget allows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::families::Family;

/// A level passed at least this often is learned: the family steps up.
pub const STEP_UP: f64 = 0.75;

/// Attempts below which a level's rate is unknown.
pub const MIN_ATTEMPTS: u32 = 4;

/// The weight of a family whose frontier rate is 0 (or 1).
pub const FLOOR: f64 = 0.05;

/// The fewest items a family that is not mastered gets, when the budget allows.
pub const MIN_ITEMS: usize = 2;

/// Unhinted attempts and successes of one family at one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Attempts.
    pub attempts: u32,
    /// Verified successes among them.
    pub successes: u32,
}

impl Tally {
    /// The pass rate, if there are enough attempts to say.
    pub fn rate(&self) -> Option<f64> {
        (self.attempts >= MIN_ATTEMPTS).then(|| f64::from(self.successes) / f64::from(self.attempts))
    }

    /// The unhinted attempts of a night's rollout group record (`{"runs": [[run_id, reward,
    /// hinted, ...], ...]}`): hinted and teacher runs are not the student's own.
    pub fn of_group(group: &serde_json::Value) -> Tally {
        let mut t = Tally::default();
        for run in group["runs"].as_array().into_iter().flatten().filter(|r| r[2] != serde_json::Value::Bool(true)) {
            t.attempts += 1;
            t.successes += u32::from(run[1].as_f64().unwrap_or(0.0) >= 1.0);
        }
        t
    }

    /// Adds `other`'s attempts and successes.
    pub fn add(&mut self, other: Tally) {
        self.attempts += other.attempts;
        self.successes += other.successes;
    }
}

/// Tallies per (family, level).
pub type Tallies = BTreeMap<(String, u32), Tally>;

/// What the curriculum chose for one family.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    /// The family.
    pub family: String,
    /// The level its items are drawn from (its frontier).
    pub level: u32,
    /// Train items tonight (0 when mastered or out of budget).
    pub items: usize,
    /// The frontier's recent pass rate, if known.
    pub pass_rate: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

/// Shares `budget` train items among `families` from their tallies.
pub fn plan(families: &[&Family], tallies: &Tallies, budget: usize) -> Vec<Pick> {
    let mut picks = Vec::new();
    let mut weights = Vec::new();
    for f in families {
        let tally = |l: u32| tallies.get(&(f.name.to_owned(), l)).copied().unwrap_or_default();
        let mut level = 1;
        while level < f.levels && tally(level).rate().is_some_and(|p| p >= STEP_UP) {
            level += 1;
        }
        let rate = tally(level).rate();
        let (weight, reason) = match rate {
            Some(p) if p >= STEP_UP => (0.0, format!("mastered: top level {level} passed {:.0}%", p * 100.0)),
            Some(p) => ((p * (1.0 - p)).max(FLOOR), format!("level {level} passed {:.0}% of {} attempts", p * 100.0, tally(level).attempts)),
            None => (0.25, format!("level {level} has {} attempts: exploring", tally(level).attempts)),
        };
        picks.push(Pick { family: f.name.to_owned(), level, items: 0, pass_rate: rate, reason });
        weights.push(weight);
    }
    share(&mut picks, &weights, budget);
    picks
}

/// Largest-remainder shares of `budget` by `weights`, each positive weight getting
/// [`MIN_ITEMS`] first (the heaviest first) while the budget lasts.
fn share(picks: &mut [Pick], weights: &[f64], budget: usize) {
    let mut order: Vec<usize> = (0..picks.len()).filter(|&i| weights[i] > 0.0).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut left = budget;
    for &i in &order {
        let n = MIN_ITEMS.min(left);
        picks[i].items = n;
        left -= n;
    }
    let total: f64 = order.iter().map(|&i| weights[i]).sum();
    if left == 0 || total <= 0.0 {
        return;
    }
    let exact: Vec<(usize, f64)> = order.iter().map(|&i| (i, weights[i] / total * left as f64)).collect();
    let mut given = 0;
    for &(i, x) in &exact {
        picks[i].items += x.floor() as usize;
        given += x.floor() as usize;
    }
    let mut rest: Vec<(usize, f64)> = exact.iter().map(|&(i, x)| (i, x - x.floor())).collect();
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for &(i, _) in rest.iter().take(left - given) {
        picks[i].items += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::family;

    fn tallies(xs: &[(&str, u32, u32, u32)]) -> Tallies {
        xs.iter().map(|&(f, l, a, s)| ((f.to_owned(), l), Tally { attempts: a, successes: s })).collect()
    }

    #[test]
    fn a_group_tally_counts_only_the_students_unhinted_attempts() {
        let g = serde_json::json!({"runs": [["a", 1.0, false], ["b", 0.0, false], ["c", 1.0, true], ["d", 1.0, true, "teacher"], ["e", 0.1, false]]});
        assert_eq!(Tally::of_group(&g), Tally { attempts: 3, successes: 1 });
        assert_eq!(Tally::of_group(&serde_json::json!({})), Tally::default());
    }

    #[test]
    fn a_fresh_store_explores_every_family_at_level_one() {
        let fams: Vec<&Family> = ["arith", "integrals", "niah"].iter().map(|n| family(n).unwrap()).collect();
        let picks = plan(&fams, &Tallies::new(), 12);
        assert!(picks.iter().all(|p| p.level == 1 && p.items == 4 && p.pass_rate.is_none()), "{picks:?}");
    }

    #[test]
    fn a_learned_level_steps_up_and_a_mastered_family_gets_nothing() {
        let fams: Vec<&Family> = ["toy", "arith", "game24"].iter().map(|n| family(n).unwrap()).collect();
        let t = tallies(&[("toy", 1, 16, 16), ("arith", 1, 12, 11), ("arith", 2, 8, 4), ("game24", 1, 20, 0)]);
        let picks = plan(&fams, &t, 10);
        assert_eq!((picks[0].level, picks[0].items), (1, 0), "{:?}", picks[0]);
        assert!(picks[0].reason.starts_with("mastered"));
        // arith: level 1 learned, level 2 at 50% (weight 0.25); game24 at 0% (the floor).
        assert_eq!(picks[1].level, 2);
        assert_eq!(picks[2].level, 1);
        assert_eq!(picks[1].items + picks[2].items, 10);
        assert!(picks[1].items > picks[2].items && picks[2].items >= MIN_ITEMS, "{picks:?}");
    }

    #[test]
    fn too_few_attempts_are_unknown_and_the_budget_is_never_exceeded() {
        let fams: Vec<&Family> = crate::families::FAMILIES.iter().collect();
        let t = tallies(&[("arith", 1, 3, 3)]);
        for budget in [0, 1, 5, 13, 40] {
            let picks = plan(&fams, &t, budget);
            assert_eq!(picks.iter().map(|p| p.items).sum::<usize>(), budget, "budget {budget}: {picks:?}");
            assert_eq!(picks[1].level, 1, "3 attempts do not step arith up");
        }
    }
}
