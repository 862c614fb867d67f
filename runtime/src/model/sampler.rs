//! Picking the next token from raw logits, and the log-probabilities that training needs.
//!
//! Sampling is done here in Rust rather than by llama.cpp's sampler chain, so that one function
//! ([`log_z`]) computes the normaliser both while sampling and while scoring: the log-prob of
//! a token is `logit - log_z(logits)`, under the raw distribution (temperature 1, no filter).
//! That is the quantity GRPO's ratio needs, and computing it identically in both places is what
//! makes `score` reproduce the sampling log-probs exactly.
//!
//! The filters follow llama.cpp's order: top-k, top-p and min-p on the raw distribution, then
//! temperature on the survivors. Sorting 49k logits per token would cost more than the
//! forward pass of a small model, so top-p first drops tokens more than 30 nats below the best
//! (their total mass is below `V * e^-30`, about 5e-9 here) and sorts the rest.

use super::Sampling;

/// A small, seedable generator (SplitMix64); enough for sampling, and reproducible everywhere.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for sequence `index` of a group sampled with `seed`.
    pub(crate) fn new(seed: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `exp(x)` for `x <= 0`, branch-free so that loops over it vectorise. Relative error about
/// 2e-7 (a degree-6 polynomial after range reduction), far below what log-probs need.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest by adding and subtracting 1.5 * 2^23: `f32::round` is a libm call on
    // baseline x86-64, which kept these loops from vectorising (`roundf` showed in profiles).
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `log Σ exp(logits)`: the normaliser of the raw distribution.
pub(crate) fn log_z(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Eight partial sums keep the loop vectorisable and its order fixed.
    let mut acc = [0f32; 8];
    let chunks = logits.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += fast_exp(c[i] - max);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for &l in rest {
        sum += fast_exp(l - max);
    }
    max + sum.ln()
}

/// Reusable buffers, so that sampling allocates nothing per token.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    idx: Vec<u32>,
    weights: Vec<f32>,
}

/// The chosen token and its log-probability under the raw distribution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    pub token: u32,
    pub logprob: f32,
}

/// Picks a token from `logits`. Tokens in `banned` (end-of-generation tokens while budget
/// forcing holds the model back) are never picked, but the log-prob is still the raw one.
pub(crate) fn choose(
    logits: &[f32],
    s: &Sampling,
    rng: &mut Rng,
    banned: &[u32],
    scratch: &mut Scratch,
) -> Choice {
    let lz = log_z(logits);
    let token = if s.temperature == 0.0 {
        greedy(logits, banned)
    } else {
        sample(logits, s, rng, banned, scratch)
    };
    Choice { token: token as u32, logprob: logits[token] - lz }
}

fn sample(
    logits: &[f32],
    s: &Sampling,
    rng: &mut Rng,
    banned: &[u32],
    scratch: &mut Scratch,
) -> usize {
    let inv_t = 1.0 / s.temperature;
    let w = &mut scratch.weights;
    let idx = &mut scratch.idx;
    let filtered = s.top_k > 0 || s.top_p < 1.0 || s.min_p > 0.0;
    if !filtered {
        // The common case, kept to two vectorisable passes over the vocabulary.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        w.clear();
        w.extend(logits.iter().map(|&l| fast_exp((l - max) * inv_t)));
        for &b in banned {
            if let Some(x) = w.get_mut(b as usize) {
                *x = 0.0;
            }
        }
        return draw(w, rng).unwrap_or_else(|| greedy(logits, banned));
    }
    let allowed = |t: usize| !banned.contains(&(t as u32));
    let max = logits
        .iter()
        .enumerate()
        .filter(|&(t, _)| allowed(t))
        .map(|(_, &l)| l)
        .fold(f32::NEG_INFINITY, f32::max);
    // Candidates in descending order of logit.
    idx.clear();
    let floor = if s.top_k > 0 { f32::NEG_INFINITY } else { max - 30.0 };
    idx.extend((0..logits.len()).filter(|&t| logits[t] >= floor && allowed(t)).map(|t| t as u32));
    let by_logit =
        |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    if s.top_k > 0 && s.top_k < idx.len() {
        idx.select_nth_unstable_by(s.top_k - 1, by_logit);
        idx.truncate(s.top_k);
    }
    idx.sort_unstable_by(by_logit);
    if s.min_p > 0.0 {
        let cut = max + s.min_p.ln();
        idx.retain(|&t| logits[t as usize] >= cut);
    }
    if s.top_p < 1.0 {
        let z: f32 = idx.iter().map(|&t| fast_exp(logits[t as usize] - max)).sum();
        let mut cum = 0.0;
        let mut keep = idx.len();
        for (i, &t) in idx.iter().enumerate() {
            cum += fast_exp(logits[t as usize] - max) / z;
            if cum >= s.top_p {
                keep = i + 1;
                break;
            }
        }
        idx.truncate(keep.max(1));
    }
    w.clear();
    w.extend(idx.iter().map(|&t| fast_exp((logits[t as usize] - max) * inv_t)));
    match draw(w, rng) {
        Some(i) => idx[i] as usize,
        None => greedy(logits, banned),
    }
}

/// Draws an index with probability proportional to `w`; `None` if all weights are zero.
fn draw(w: &[f32], rng: &mut Rng) -> Option<usize> {
    let total: f64 = w.iter().map(|&x| x as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let mut u = rng.next_f64() * total;
    let mut last = None;
    for (i, &x) in w.iter().enumerate() {
        if x > 0.0 {
            last = Some(i);
            u -= x as f64;
            if u < 0.0 {
                return Some(i);
            }
        }
    }
    last
}

/// The most likely token that is not banned.
fn greedy(logits: &[f32], banned: &[u32]) -> usize {
    let mut best = 0;
    let mut best_l = f32::NEG_INFINITY;
    for (t, &l) in logits.iter().enumerate() {
        if l > best_l && !banned.contains(&(t as u32)) {
            best = t;
            best_l = l;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = -80.0f32;
        while x <= 0.0 {
            let rel = (fast_exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-6, "x={x} rel={rel}");
            x += 0.013;
        }
    }

    #[test]
    fn log_z_matches_the_definition() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32) * 0.1 - 3.0).collect();
        let exact = logits.iter().map(|&l| (l as f64).exp()).sum::<f64>().ln();
        assert!((log_z(&logits) as f64 - exact).abs() < 1e-4);
    }

    #[test]
    fn filters_keep_the_best_tokens() {
        let logits = vec![0.0, 5.0, 1.0, 4.9, -3.0];
        let mut rng = Rng::new(7, 0);
        let mut scratch = Scratch::default();
        let s = Sampling { temperature: 1.0, top_k: 2, ..Sampling::default() };
        for _ in 0..200 {
            let c = choose(&logits, &s, &mut rng, &[], &mut scratch);
            assert!(c.token == 1 || c.token == 3);
        }
        let s = Sampling { temperature: 1.0, min_p: 0.5, ..Sampling::default() };
        for _ in 0..200 {
            let c = choose(&logits, &s, &mut rng, &[1], &mut scratch);
            assert_eq!(c.token, 3, "banned token 1 leaves token 3 the only one above min_p");
        }
    }
}
