//! Custom candle ops with hand-written backward passes.
//!
//! candle's fast `rms_norm`, `softmax_last_dim`, `rope*` and quantized matmul have no backward:
//! they silently cut the gradient (see `DESIGN.md`, "candle training"). Composing the
//! differentiable "slow" forms out of elementwise ops works but keeps many large intermediates
//! alive in the graph and runs single-threaded. So the hot ops here are custom ops, each with a
//! forward on CPU storage and an explicit backward:
//!
//! | op | forward | backward |
//! |---|---|---|
//! | [`FrozenLinear`] | `x Wᵀ` through candle's gemm | `dx = g W`; **no** `dW` (candle's matmul backward would compute it) |
//! | [`RmsNorm`] | `x / rms(x) · w` (Zhang & Sennrich 2019) | `dx = r (g w − x̂ · mean(g w x̂))` |
//! | [`RopeI`] | interleaved RoPE (Su et al. 2021), pairs `(2i, 2i+1)` as llama.cpp's `ROPE_TYPE_NORM`, positions from an offset | rotation by `−θ` |
//! | [`CausalSoftmax`] | row softmax over keys `j ≤ i + S − T` (`T` queries, `S` keys: causal, or a visible prefix then causal) | `dx = y (g − Σ g y)` |
//! | [`LmHeadLogProb`] | `log softmax(h Eᵀ)[target]`, chunked so the `N × vocab` logits never live in the graph | `dh = g (onehot − p) E`, logits recomputed |
//!
//! Every op works in `f32` (training) and `f64` (the finite-difference gradient check); the
//! elementwise ops compute in `f64` internally and run rows in parallel with rayon. The
//! backward passes are checked against finite differences in
//! `tests/lora_gradients_match_finite_differences.rs`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;

fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => bail!("custom op expects a contiguous input"),
    }
}

/// A tensor's elements as `f64`, in row-major order.
pub(crate) fn to_f64_vec(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

/// A tensor of `dtype` and `shape` from `f64` values.
fn from_f64_vec(v: Vec<f64>, shape: &Shape, dtype: DType) -> candle_core::Result<Tensor> {
    Tensor::from_vec(v, shape.clone(), &Device::Cpu)?.to_dtype(dtype)
}

/// Runs `f` on the input converted to `f64` and converts the result back to the input's dtype.
fn map_f64(
    s: &CpuStorage,
    l: &Layout,
    f: impl Fn(&[f64]) -> Vec<f64>,
) -> candle_core::Result<CpuStorage> {
    Ok(match s {
        CpuStorage::F32(_) => {
            let x: Vec<f64> = contiguous::<f32>(s, l)?.iter().map(|&v| v as f64).collect();
            CpuStorage::F32(f(&x).into_iter().map(|v| v as f32).collect())
        }
        CpuStorage::F64(_) => CpuStorage::F64(f(contiguous::<f64>(s, l)?)),
        _ => bail!("custom op supports f32 and f64 only"),
    })
}

/// A linear layer `y = x Wᵀ` with a frozen weight `W` of shape `(n_out, n_in)`.
///
/// candle's own `matmul` backward always computes the gradient of both operands, which for a
/// frozen base weight is a wasted GEMM as large as the forward one; this op returns only `dx`.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    /// The weight, `(n_out, n_in)`, in the input's dtype.
    pub w: Tensor,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, _)) = l.contiguous_offsets() else { bail!("frozen-linear expects a contiguous input") };
        let dims = l.dims();
        let k = *dims.last().unwrap_or(&0);
        let (n, k_w) = self.w.dims2()?;
        if k != k_w {
            bail!("frozen-linear: input has {k} features, weight expects {k_w}");
        }
        let m = l.shape().elem_count() / k.max(1);
        let lhs_l = Layout::contiguous_with_offset((m, k), start);
        let wt = self.w.t()?;
        let (ws, wl) = wt.storage_and_layout();
        let Storage::Cpu(wc) = &*ws else { bail!("frozen-linear runs on the CPU only") };
        let out = s.matmul(wc, (1, m, n, k), &lhs_l, wl)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().unwrap() = n;
        Ok((out, Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, k) = self.w.dims2()?;
        let m = arg.elem_count() / k.max(1);
        let dx = grad.contiguous()?.reshape((m, n))?.matmul(&self.w)?;
        Ok(Some(dx.reshape(arg.shape())?))
    }
}

/// RMSNorm over the last dimension with a frozen gain (Zhang & Sennrich 2019, as in llama).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// The gain, one value per feature.
    pub w: Arc<Vec<f64>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = self.w.len();
        if l.dims().last() != Some(&h) {
            bail!("rms-norm: last dim {:?} is not {h}", l.dims().last());
        }
        let out = map_f64(s, l, |x| {
            let mut y = vec![0.0; x.len()];
            y.par_chunks_mut(h).zip(x.par_chunks(h)).for_each(|(y, x)| {
                let r = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / h as f64 + self.eps).sqrt();
                for i in 0..h {
                    y[i] = x[i] * r * self.w[i];
                }
            });
            y
        })?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let h = self.w.len();
        let x = to_f64_vec(arg)?;
        let g = to_f64_vec(grad)?;
        let mut dx = vec![0.0; x.len()];
        dx.par_chunks_mut(h).zip(x.par_chunks(h).zip(g.par_chunks(h))).for_each(|(dx, (x, g))| {
            let r = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / h as f64 + self.eps).sqrt();
            let mut dot = 0.0;
            for i in 0..h {
                dot += g[i] * self.w[i] * x[i] * r;
            }
            dot /= h as f64;
            for i in 0..h {
                dx[i] = r * (g[i] * self.w[i] - x[i] * r * dot);
            }
        });
        Ok(Some(from_f64_vec(dx, arg.shape(), arg.dtype())?))
    }
}

/// Interleaved rotary position embedding on `(batch, heads, time, head_dim)`.
///
/// RoPE (Su et al., "RoFormer", 2021) rotates the pairs `(x[2i], x[2i+1])` by `t·θ_i`,
/// `θ_i = base^(−2i/d)`. llama.cpp's converter permuted the Q and K rows of the HF checkpoint so
/// that this interleaved form (llama.cpp's `ROPE_TYPE_NORM`, candle's `rope_i`) is the right one
/// for weights read from the GGUF; a LoRA trained here is therefore already in GGUF row order.
#[derive(Debug, Clone)]
pub struct RopeI {
    cos: Arc<Vec<f64>>,
    sin: Arc<Vec<f64>>,
    half: usize,
    t: usize,
}

impl RopeI {
    /// Tables for positions `0..t` and head dimension `head_dim`.
    pub fn new(t: usize, head_dim: usize, base: f64) -> Self {
        Self::with_offset(0, t, head_dim, base)
    }

    /// Tables for positions `offset..offset + t`: the rows of a sequence that continues after
    /// `offset` tokens held elsewhere (a shared prompt, see [`crate::BaseModel::group_logprobs`]).
    pub fn with_offset(offset: usize, t: usize, head_dim: usize, base: f64) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in offset..offset + t {
            for i in 0..half {
                let theta = base.powf(-2.0 * i as f64 / head_dim as f64);
                let a = p as f64 * theta;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        RopeI { cos: Arc::new(cos), sin: Arc::new(sin), half, t }
    }

    fn rotate(&self, x: &[f64], sign: f64) -> Vec<f64> {
        let d = 2 * self.half;
        let mut y = vec![0.0; x.len()];
        y.par_chunks_mut(d).zip(x.par_chunks(d)).enumerate().for_each(|(row, (y, x))| {
            let p = row % self.t;
            for i in 0..self.half {
                let (c, s) = (self.cos[p * self.half + i], sign * self.sin[p * self.half + i]);
                let (x0, x1) = (x[2 * i], x[2 * i + 1]);
                y[2 * i] = x0 * c - x1 * s;
                y[2 * i + 1] = x0 * s + x1 * c;
            }
        });
        y
    }
}

impl CustomOp1 for RopeI {
    fn name(&self) -> &'static str {
        "rope-i"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        if dims.len() != 4 || dims[2] != self.t || dims[3] != 2 * self.half {
            bail!("rope-i: expected (b, h, {}, {}), got {dims:?}", self.t, 2 * self.half);
        }
        Ok((map_f64(s, l, |x| self.rotate(x, 1.0))?, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = self.rotate(&to_f64_vec(grad)?, -1.0);
        Ok(Some(from_f64_vec(dx, arg.shape(), arg.dtype())?))
    }
}

/// Softmax over the last dimension of `(…, T, S)` attention scores (`S ≥ T` keys, `T` queries)
/// with a causal mask aligned on the last key: query `i` sees keys `j ≤ i + S − T`; the masked
/// probabilities are exactly zero. With `S = T` this is the plain causal mask; with
/// `S = P + T` the first `P` keys (a shared prompt's) are visible to every query and the last
/// `T` causally.
#[derive(Debug, Clone, Copy)]
pub struct CausalSoftmax;

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let t = *dims.last().unwrap_or(&0);
        if dims.len() < 2 || dims[dims.len() - 2] > t || dims[dims.len() - 2] == 0 {
            bail!("causal-softmax: expected (…, T, S) with 0 < T ≤ S, got {dims:?}");
        }
        let tq = dims[dims.len() - 2];
        let offset = t - tq;
        let out = map_f64(s, l, |x| {
            let mut y = vec![0.0; x.len()];
            y.par_chunks_mut(t).zip(x.par_chunks(t)).enumerate().for_each(|(row, (y, x))| {
                let i = row % tq + offset;
                let m = x[..=i].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut z = 0.0;
                for j in 0..=i {
                    y[j] = (x[j] - m).exp();
                    z += y[j];
                }
                for v in &mut y[..=i] {
                    *v /= z;
                }
            });
            y
        })?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let t = arg.dims()[arg.rank() - 1];
        let y = to_f64_vec(res)?;
        let g = to_f64_vec(grad)?;
        let mut dx = vec![0.0; y.len()];
        dx.par_chunks_mut(t).zip(y.par_chunks(t).zip(g.par_chunks(t))).for_each(|(dx, (y, g))| {
            let dot: f64 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for j in 0..t {
                dx[j] = y[j] * (g[j] - dot);
            }
        });
        Ok(Some(from_f64_vec(dx, arg.shape(), arg.dtype())?))
    }
}

/// The LM head fused with log-softmax and the gather of each row's target token:
/// `h (N, H) → log softmax(h Eᵀ)[target] (N)`.
///
/// The `N × vocab` logits are computed in chunks of rows and dropped; the backward recomputes
/// them. This keeps the graph's memory at `N × H` instead of `N × vocab` (vocab is 49152 for
/// SmolLM2), at the price of one extra LM-head GEMM.
#[derive(Debug, Clone)]
pub struct LmHeadLogProb {
    /// The output embedding, `(vocab, H)`, in the input's dtype (tied to `token_embd` in SmolLM2).
    pub w: Tensor,
    /// One target token per row.
    pub targets: Arc<Vec<u32>>,
    /// Rows per chunk.
    pub chunk: usize,
}

impl LmHeadLogProb {
    /// Log-softmax probabilities of each row's logits, as `(probabilities, log-prob of target)`.
    fn chunk_probs(&self, h: &Tensor, targets: &[u32], want_probs: bool) -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
        let logits = to_f64_vec(&h.matmul(&self.w.t()?)?)?;
        let v = self.w.dims2()?.0;
        let mut probs = if want_probs { vec![0.0; logits.len()] } else { Vec::new() };
        let mut lp = vec![0.0; targets.len()];
        let rows: Vec<(usize, f64, f64)> = logits
            .par_chunks(v)
            .enumerate()
            .map(|(r, row)| {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
                (r, m, z)
            })
            .collect();
        for (r, m, z) in rows {
            let row = &logits[r * v..(r + 1) * v];
            lp[r] = row[targets[r] as usize] - m - z.ln();
            if want_probs {
                for (p, x) in probs[r * v..(r + 1) * v].iter_mut().zip(row) {
                    *p = (x - m).exp() / z;
                }
            }
        }
        Ok((probs, lp))
    }
}

impl CustomOp1 for LmHeadLogProb {
    fn name(&self) -> &'static str {
        "lm-head-log-prob"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h) = l.shape().dims2()?;
        if n != self.targets.len() {
            bail!("lm-head-log-prob: {n} rows but {} targets", self.targets.len());
        }
        let v = self.w.dims2()?.0;
        if let Some(bad) = self.targets.iter().find(|&&t| t as usize >= v) {
            bail!("lm-head-log-prob: target token {bad} is outside the vocabulary ({v})");
        }
        let mut out = Vec::with_capacity(n);
        for c0 in (0..n).step_by(self.chunk.max(1)) {
            let c1 = (c0 + self.chunk.max(1)).min(n);
            let hc = match s {
                CpuStorage::F32(_) => Tensor::from_slice(&contiguous::<f32>(s, l)?[c0 * h..c1 * h], (c1 - c0, h), &Device::Cpu)?,
                CpuStorage::F64(_) => Tensor::from_slice(&contiguous::<f64>(s, l)?[c0 * h..c1 * h], (c1 - c0, h), &Device::Cpu)?,
                _ => bail!("lm-head-log-prob supports f32 and f64 only"),
            };
            out.extend(self.chunk_probs(&hc, &self.targets[c0..c1], false)?.1);
        }
        let st = match s {
            CpuStorage::F32(_) => CpuStorage::F32(out.into_iter().map(|v| v as f32).collect()),
            _ => CpuStorage::F64(out),
        };
        Ok((st, Shape::from(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, _) = arg.dims2()?;
        let v = self.w.dims2()?.0;
        let g = to_f64_vec(grad)?;
        let mut parts = Vec::new();
        for c0 in (0..n).step_by(self.chunk.max(1)) {
            let c1 = (c0 + self.chunk.max(1)).min(n);
            let hc = arg.narrow(0, c0, c1 - c0)?.detach();
            let targets = &self.targets[c0..c1];
            let (mut p, _) = self.chunk_probs(&hc, targets, true)?;
            // d log p_y / d logit_j = [j = y] − p_j, times the incoming gradient of the row.
            p.par_chunks_mut(v).enumerate().for_each(|(r, row)| {
                let gr = g[c0 + r];
                for x in row.iter_mut() {
                    *x *= -gr;
                }
                row[targets[r] as usize] += gr;
            });
            let dlogits = from_f64_vec(p, &Shape::from((c1 - c0, v)), arg.dtype())?;
            parts.push(dlogits.matmul(&self.w)?);
        }
        Ok(Some(Tensor::cat(&parts, 0)?))
    }
}
