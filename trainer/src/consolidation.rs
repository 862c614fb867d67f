//! Consolidation: keeping tonight's update from overwriting what earlier nights promoted.
//!
//! Each night trains a fresh LoRA delta on top of the *past* adapter, the merge of every
//! promoted update so far (frozen inside the model: [`crate::BaseModel::set_past`]). A penalty
//! against the past is added to the loss once per update:
//!
//! - **ELLA** (selective subspace de-correlation for lifelong LoRA, arXiv 2601.02232, as read in
//!   `DESIGN.md`): per adapted matrix `λ · ‖ΔW_t ⊙ W_past‖²_F`, element-wise, with
//!   `ΔW_t = (α/r)·B·A` and `W_past = s_p·B_p·A_p`. Its gradient is, with
//!   `G = 2λ · ΔW_t ⊙ W_past ⊙ W_past`, `∂/∂B = (α/r)·G·Aᵀ` and `∂/∂A = (α/r)·Bᵀ·G`. It is zero
//!   where the new update avoids the entries the past one uses, so it steers tonight's change
//!   off the past's high-energy weights instead of freezing a subspace.
//! - **O-LoRA** (Wang et al., "Orthogonal Subspace Learning for Language Model Continual
//!   Learning", arXiv 2310.14152): `λ · Σ_ij |(A_past A_tᵀ)_ij|`, pushing the new input
//!   subspace orthogonal to the past one; `∂/∂A = λ · sign(A_past Aᵀ)ᵀ · A_past`, nothing on `B`.
//!   The past's rank may differ from the new one: the product is `(r_p × r)`.
//!
//! Both are computed one matrix at a time from the low-rank factors, so at most one
//! `n_out × n_in` matrix (two for ELLA: `ΔW_t` and `W_past`) is alive at once, whatever the
//! model size. `W_past` is recomputed from its factors every update rather than cached: for
//! SmolLM2 the cache would hold ~106 M entries, and the recomputation costs `2·r_p` flops per
//! entry, small against a training step.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::lora::LoraAdapter;
use crate::ops::to_f64_vec;

/// Which penalty ties the new update to the past one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsolidationKind {
    /// No penalty (the past is still applied in the forward).
    None,
    /// ELLA: `λ ‖ΔW ⊙ W_past‖²_F` per matrix.
    Ella,
    /// O-LoRA: `λ Σ |A_past Aᵀ|` per matrix.
    OLora,
}

impl ConsolidationKind {
    /// Parses the policy spelling: `none`, `ella` or `olora`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => ConsolidationKind::None,
            "ella" => ConsolidationKind::Ella,
            "olora" => ConsolidationKind::OLora,
            _ => return Err(Error::InvalidInput(format!("unknown consolidation {s:?}; expected ella, olora or none"))),
        })
    }

    /// The policy spelling.
    pub fn name(self) -> &'static str {
        match self {
            ConsolidationKind::None => "none",
            ConsolidationKind::Ella => "ella",
            ConsolidationKind::OLora => "olora",
        }
    }
}

/// The penalty and its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consolidation {
    /// Which penalty.
    pub kind: ConsolidationKind,
    /// Its weight `λ`.
    pub lambda: f64,
}

impl Default for Consolidation {
    /// O-LoRA with `λ = 0.01`, chosen by `autodidact bench consolidation` on SmolLM2 (two
    /// synthetic families, night 2 conflicting with night 1; 6 steps per night). At learning
    /// rate 5e-4 (seed 2), against no penalty (gain on B 1.49 nats/token, A's night-1 gain kept
    /// 69%): O-LoRA 0.01 kept 80% of A for a gain of 1.16; ELLA needed `λ = 1e6` to cost as
    /// much gain (1.15) and kept only 78%; at `λ = 1e5` ELLA did nothing measurable. At learning
    /// rate 2e-3 (seed 1), O-LoRA cut forgetting by 17% for 5% of the gain, ELLA 1e5 by 14% for
    /// 9%. O-LoRA's penalty also costs ~0.03 s per step against 2–3.5 s for ELLA's (which
    /// forms two `n_out × n_in` matrices per adapted layer).
    fn default() -> Self {
        Consolidation { kind: ConsolidationKind::OLora, lambda: 1e-2 }
    }
}

/// A penalty's value and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Penalty {
    /// The penalty (already multiplied by `λ`).
    pub value: f64,
    /// `∂penalty/∂θ` for every tensor of [`LoraAdapter::named_vars`], in that order.
    pub grads: Vec<Vec<f64>>,
}

/// The penalty of `adapter` against `past` and its gradient. Zero (with zero gradients) when
/// there is no past (the first night), when the kind is `None` or when `λ = 0`. Pairs the past
/// does not adapt contribute nothing.
pub fn penalty(c: &Consolidation, adapter: &LoraAdapter, past: Option<&LoraAdapter>) -> Result<Penalty> {
    let mut grads: Vec<Vec<f64>> = adapter.named_vars().iter().map(|(_, v)| vec![0.0; v.elem_count()]).collect();
    let mut value = 0.0;
    let Some(past) = past else { return Ok(Penalty { value, grads }) };
    if c.kind == ConsolidationKind::None || c.lambda == 0.0 {
        return Ok(Penalty { value, grads });
    }
    let s = adapter.config.scale();
    let s_p = past.config.scale();
    for (i, p) in adapter.pairs.iter().enumerate() {
        let Some(pp) = past.get(p.layer, p.target) else { continue };
        let dt = p.a.dtype();
        let (a, b) = (p.a.as_tensor(), p.b.as_tensor());
        let a_p = pp.a.as_tensor().to_dtype(dt)?;
        match c.kind {
            ConsolidationKind::Ella => {
                let b_p = pp.b.as_tensor().to_dtype(dt)?;
                let dw = to_f64_vec(&(b.matmul(a)? * s)?)?;
                let wp = to_f64_vec(&(b_p.matmul(&a_p)? * s_p)?)?;
                if dw.len() != wp.len() {
                    return Err(Error::InvalidInput(format!("ella: {} differs in shape from the past adapter's", p.base_name())));
                }
                // value = λ Σ (ΔW ⊙ W_past)², G = 2λ ΔW ⊙ W_past².
                let lam = c.lambda;
                let (v, g): (f64, Vec<f64>) = {
                    let g: Vec<f64> = dw.par_iter().zip(&wp).map(|(d, w)| 2.0 * lam * d * w * w).collect();
                    let v = dw.par_iter().zip(&wp).map(|(d, w)| (d * w) * (d * w)).sum::<f64>() * lam;
                    (v, g)
                };
                value += v;
                let g = Tensor::from_vec(g, (b.dims2()?.0, a.dims2()?.1), a.device())?.to_dtype(dt)?;
                grads[2 * i] = to_f64_vec(&(b.t()?.matmul(&g)? * s)?)?;
                grads[2 * i + 1] = to_f64_vec(&(g.matmul(&a.t()?)? * s)?)?;
            }
            ConsolidationKind::OLora => {
                // C = A_p Aᵀ (r_p × r); value = λ Σ|C|; ∂/∂A = λ sign(C)ᵀ A_p.
                let cm = a_p.matmul(&a.t()?)?.to_dtype(DType::F64)?;
                value += c.lambda * cm.abs()?.sum_all()?.to_scalar::<f64>()?;
                let sign = (cm.sign()? * c.lambda)?.to_dtype(dt)?;
                grads[2 * i] = to_f64_vec(&sign.t()?.matmul(&a_p)?)?;
            }
            ConsolidationKind::None => unreachable!("handled above"),
        }
    }
    Ok(Penalty { value, grads })
}
