//! The unbiased pass@k estimator (Chen et al., 2021): with `n` samples of which `c` passed,
//! `pass@k = 1 - C(n-c, k) / C(n, k)`, the chance that k samples drawn without replacement
//! include a pass.

/// pass@k for one item with `n` samples and `c` passes. `k` is clamped to `n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    assert!(c <= n, "more passes ({c}) than samples ({n})");
    let k = k.clamp(1, n.max(1));
    if n == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i), stable for large n.
    let fail: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - fail
}

/// The mean of [`pass_at_k`] over items given as `(n, c)` pairs.
pub fn mean_pass_at_k(items: &[(u64, u64)], k: u64) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    items.iter().map(|&(n, c)| pass_at_k(n, c, k)).sum::<f64>() / items.len() as f64
}
