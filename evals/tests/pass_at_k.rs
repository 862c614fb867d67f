//! The unbiased pass@k estimator against hand-computed values.

use autodidact_evals::passk::{mean_pass_at_k, pass_at_k};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn pass_at_k_matches_hand_computed_values() {
    close(pass_at_k(5, 2, 1), 0.4); // c / n
    close(pass_at_k(5, 2, 2), 1.0 - 3.0 / 10.0); // 1 - C(3,2)/C(5,2)
    close(pass_at_k(5, 2, 3), 1.0 - 1.0 / 10.0); // 1 - C(3,3)/C(5,3)
    close(pass_at_k(5, 2, 4), 1.0); // n - c < k
    close(pass_at_k(10, 0, 5), 0.0);
    close(pass_at_k(10, 10, 1), 1.0);
    close(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0); // 1 - C(7,5)/C(10,5)
    close(pass_at_k(200, 1, 100), 0.5);
    close(pass_at_k(4, 1, 9), 1.0); // k is clamped to n
    close(mean_pass_at_k(&[(5, 2), (5, 0)], 1), 0.2);
    close(mean_pass_at_k(&[], 1), 0.0);
}
