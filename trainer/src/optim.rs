//! AdamW with linear warm-up and global-norm gradient clipping, with explicit state.
//!
//! AdamW is Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (arXiv 1711.05101),
//! in PyTorch's form: `p ← p (1 − lr·λ)`, then `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `p ← p − lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂, v̂`. The moments are `f32` vectors in
//! [`AdamWState`], so a checkpoint stores them bit-exactly and a resume continues bit-identically.

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// `β₁`.
    pub beta1: f64,
    /// `β₂`.
    pub beta2: f64,
    /// `ε`.
    pub eps: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
    /// Steps of linear warm-up from `lr / warmup_steps` to `lr`; constant afterwards.
    pub warmup_steps: u64,
    /// Clip the global gradient norm to this (0 disables clipping).
    pub max_grad_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, warmup_steps: 0, max_grad_norm: 1.0 }
    }
}

impl AdamWConfig {
    /// The learning rate for the update made at optimiser step `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f64 {
        if self.warmup_steps == 0 {
            self.lr
        } else {
            self.lr * ((t + 1) as f64 / self.warmup_steps as f64).min(1.0)
        }
    }
}

/// The optimiser's state: the number of updates made and the two moments of every parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    /// Updates made so far.
    pub t: u64,
    /// First moments, one vector per parameter.
    pub m: Vec<Vec<f32>>,
    /// Second moments, one vector per parameter.
    pub v: Vec<Vec<f32>>,
}

impl AdamWState {
    /// Zero moments for parameters of the given sizes.
    pub fn new(sizes: &[usize]) -> Self {
        AdamWState { t: 0, m: sizes.iter().map(|&n| vec![0.0; n]).collect(), v: sizes.iter().map(|&n| vec![0.0; n]).collect() }
    }

    /// Applies one update to `params` (modified in place) with `grads`, at learning rate `lr`.
    pub fn update(&mut self, cfg: &AdamWConfig, lr: f64, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.t += 1;
        let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
        let bc1 = 1.0 - cfg.beta1.powi(self.t as i32);
        let bc2 = 1.0 - cfg.beta2.powi(self.t as i32);
        let step = (lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = (1.0 - lr * cfg.weight_decay) as f32;
        let eps = cfg.eps as f32;
        for (((p, g), m), v) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] = p[i] * decay - step * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
            }
        }
    }
}

/// The global L2 norm of `grads`, accumulated in `f64`.
pub fn global_norm(grads: &[Vec<f32>]) -> f64 {
    grads.iter().flatten().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt()
}

/// Scales `grads` so their global norm is at most `max_norm` (PyTorch's `clip_grad_norm_`);
/// returns the norm before clipping.
pub fn clip_global_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if max_norm > 0.0 && norm > max_norm {
        let s = (max_norm / (norm + 1e-6)) as f32;
        grads.iter_mut().flatten().for_each(|g| *g *= s);
    }
    norm
}
