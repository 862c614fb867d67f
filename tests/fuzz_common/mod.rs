//! Shared by the property tests of every crate (`*/tests/fuzz_*.rs`, which include this file
//! with `#[path]`): runs one property with proptest, counts its cases and the inputs that
//! panicked, and prints one line per target for `scripts/fuzz.sh`:
//!
//! ```text
//! fuzz target=policy_arbitrary_text cases=1000 panics=0 failed=0 seconds=0.21 seed=1234
//! ```
//!
//! Without `PROPTEST_CASES` each target runs its own short default inside `make test`, from a
//! seed fixed per target, so that `make test` is repeatable; `make fuzz` sets `PROPTEST_CASES`
//! and each run draws a new seed. `PROPTEST_RNG_SEED=<seed>` replays a run. A failure is
//! shrunk by proptest to a small input, which the test's panic message shows; `panics` counts
//! every input whose run panicked, shrinking steps included, and the goal is 0.

#![allow(dead_code)]

use std::cell::Cell;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The number of cases to run: `PROPTEST_CASES`, or `default` when it is unset.
pub fn cases(default: u32) -> u32 {
    env_number("PROPTEST_CASES").unwrap_or(default)
}

/// The seed of a run: `PROPTEST_RNG_SEED`; else, in a long run, a new one; else one fixed by
/// the target's name.
fn seed(target: &str) -> u64 {
    if let Some(seed) = env_number("PROPTEST_RNG_SEED") {
        return seed;
    }
    if env_number::<u32>("PROPTEST_CASES").is_some() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    }
    // FNV-1a: stable across runs and platforms.
    target.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Checks `property` on `cases(default_cases)` inputs drawn from `strategy`. A panic inside
/// the property counts as a failure (and as a panic in the summary line).
pub fn check<S>(target: &str, default_cases: u32, strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let seed = seed(target);
    let config = Config { cases: cases(default_cases), failure_persistence: None, rng_seed: RngSeed::Fixed(seed), ..Config::default() };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let (ran, panics) = (Cell::new(0u64), Cell::new(0u64));
    let result = runner.run(&strategy, |value| {
        ran.set(ran.get() + 1);
        match catch_unwind(AssertUnwindSafe(|| property(value))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                panics.set(panics.get() + 1);
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a non-string panic".into());
                Err(TestCaseError::fail(format!("panicked: {message}")))
            }
        }
    });
    println!(
        "fuzz target={target} cases={} panics={} failed={} seconds={:.2} seed={seed}",
        ran.get(),
        panics.get(),
        u8::from(result.is_err()),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{target} (replay with PROPTEST_RNG_SEED={seed} PROPTEST_CASES={}): {e}", cases(default_cases));
    }
}
