//! The trainable task families and their difficulty levels: what the nightly curriculum
//! draws train items from.
//!
//! A family has levels from 1 (the easiest) up; item `i` of level `l` is generated from a seed
//! hashed from `(family, l, i)` on the train split, so it never shares a seed with an eval
//! item, and a train prompt equal to one of the first [`builtin::EVAL_GUARD`] eval prompts of
//! the family's eval suites (GSM8K's test questions included) is skipped. The eval suites are
//! the built-in ones ([`builtin::generate`]) and do not change when levels are added, so
//! scores stay comparable across nights.

use std::collections::HashSet;

use autodidact_memory::Split;

use crate::builtin::{self, Rng};
use crate::suite::Item;
use crate::{Error, Result};

/// One trainable family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Its name (the `family` of its items).
    pub name: &'static str,
    /// Its difficulty levels: `1..=levels`.
    pub levels: u32,
    /// The built-in eval suites that measure it.
    pub eval_suites: &'static [&'static str],
    /// What a level means, for reports and `--help`.
    pub about: &'static str,
}

/// Every trainable family. GSM8K is an eval suite of `wordproblems`, never trained on.
pub const FAMILIES: &[Family] = &[
    Family { name: "toy", levels: 1, eval_suites: &["toy"], about: "small sums and products" },
    Family { name: "arith", levels: 3, eval_suites: &["arith"], about: "integer arithmetic with // and %: one, two, then four or five operations" },
    Family { name: "wordproblems", levels: 4, eval_suites: &["wordproblems", "gsm8k"], about: "GSM8K-style word problems of one to four or five steps" },
    Family { name: "integrals", levels: 4, eval_suites: &["integrals"], about: "antiderivatives: one term, sums, substitution, products" },
    Family { name: "niah", levels: 5, eval_suites: &["niah"], about: "a keyed number in a haystack of 8 KB, 32 KB, 128 KB, 512 KB, 1 MB" },
    Family { name: "countdown", levels: 3, eval_suites: &["countdown"], about: "reach a target with two, three, then three or four of four numbers" },
    Family { name: "game24", levels: 2, eval_suites: &["game24"], about: "make 24 from three, then four cards" },
];

/// The family called `name`.
pub fn family(name: &str) -> Result<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        Error::UnknownSuite(format!("{name} (the trainable families are {})", known.join(", ")))
    })
}

/// The family an eval suite measures (`gsm8k` is measured by `wordproblems`).
pub fn measured_by(suite: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.eval_suites.contains(&suite))
}

/// `n` train items of `family` at `level`, from generator index `skip` on (a night passes a
/// different `skip` each time, so it sees new items). Ids are `family-Llevel-train-index`.
pub fn train_items(name: &str, level: u32, skip: usize, n: usize) -> Result<Vec<Item>> {
    let f = family(name)?;
    let level = level.clamp(1, f.levels);
    let held_out = held_out_prompts(f)?;
    let key = format!("{name}@{level}");
    let mut items = Vec::with_capacity(n);
    let mut i = skip;
    while items.len() < n && i < skip + n * 50 + 1000 {
        let mut item = make(name, &mut Rng::for_item(&key, Split::Train, i), level);
        if !held_out.contains(&item.prompt) {
            item.id = format!("{name}-L{level}-train-{i:05}");
            item.split = Split::Train;
            item.level = level;
            items.push(item);
        }
        i += 1;
    }
    Ok(items)
}

/// The prompts a train item of `f` must not repeat: its eval suites' first items.
fn held_out_prompts(f: &Family) -> Result<HashSet<String>> {
    let mut held = HashSet::new();
    for suite in f.eval_suites {
        match *suite {
            // Haystacks differ even when the question is the same.
            "niah" => {}
            "gsm8k" => {
                // GSM8K is missing only before the bootstrap; generated problems cannot be
                // its questions then.
                if let Ok(s) = builtin::generate("gsm8k", Split::Eval, usize::MAX) {
                    held.extend(s.items.into_iter().map(|i| i.prompt));
                }
            }
            name => held.extend(builtin::generate(name, Split::Eval, builtin::EVAL_GUARD)?.items.into_iter().map(|i| i.prompt)),
        }
    }
    Ok(held)
}

fn make(name: &str, r: &mut Rng, level: u32) -> Item {
    match name {
        "arith" => arith(r, level),
        "wordproblems" => builtin::wordproblem_item(r, level),
        "integrals" => {
            let (integrand, antiderivative) = crate::calculus::pair(r, level);
            builtin::integrals_item(&integrand, &antiderivative)
        }
        "niah" => builtin::niah_varied(r, level),
        "countdown" => builtin::countdown_using(r, (level < 3).then_some(level as usize + 1)),
        "game24" => builtin::game24(r, level as usize + 2),
        _ => builtin::toy(r, 0),
    }
}

/// Arithmetic by level: one operation, two, then the eval split's four or five.
fn arith(r: &mut Rng, level: u32) -> Item {
    if level >= 3 {
        return builtin::arith(r, 0);
    }
    let (a, b, c, d) = (r.range(100, 999), r.range(11, 99), r.range(100, 9999), r.range(3, 19));
    let (expr, v) = match (level, r.below(3)) {
        (1, 0) => (format!("{a} * {b}"), a * b),
        (1, 1) => (format!("{c} // {d}"), c.div_euclid(d)),
        (1, _) => (format!("{c} % {d}"), c.rem_euclid(d)),
        (_, 0) => (format!("{a} * {b} - {c}"), a * b - c),
        (_, 1) => (format!("({a} + {c}) // {d}"), (a + c).div_euclid(d)),
        (_, _) => (format!("{a} * {b} % {d}"), (a * b).rem_euclid(d)),
    };
    builtin::arith_item(&expr, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_makes_every_level_and_names_it() {
        for f in FAMILIES {
            for level in 1..=f.levels {
                let items = train_items(f.name, level, 0, 3).unwrap();
                assert_eq!(items.len(), 3, "{} L{level}", f.name);
                for it in &items {
                    assert_eq!(it.family, f.name);
                    assert_eq!(it.level, level);
                    assert_eq!(it.split, Split::Train);
                    assert!(it.id.starts_with(&format!("{}-L{level}-train-", f.name)), "{}", it.id);
                }
                assert_eq!(items, train_items(f.name, level, 0, 3).unwrap(), "{} L{level} is not deterministic", f.name);
            }
        }
        assert!(family("gsm8k").unwrap_err().to_string().contains("trainable families"));
    }
}
