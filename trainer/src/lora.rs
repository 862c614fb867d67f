//! LoRA adapters: their configuration, their trainable state, and the GGUF adapter format.
//!
//! LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685)
//! adds a low-rank update to a frozen weight: `y = W x + (α / r) · B (A x)`, with `A` of shape
//! `(r, n_in)` initialised like PEFT (uniform in `±1/√n_in`) and `B` of shape `(n_out, r)`
//! initialised to zero, so training starts from the base model exactly.
//!
//! The export follows llama.cpp's reader (`src/llama-adapter.cpp`, see `DESIGN.md`): metadata
//! `general.type = "adapter"`, `general.architecture`, `adapter.type = "lora"`,
//! `adapter.lora.alpha` (F32); tensors `<base tensor>.lora_a` `(r, n_in)` and `.lora_b`
//! `(n_out, r)` in numpy order, all F32. Because the base weights are read from the GGUF (whose Q
//! and K rows llama.cpp's converter permuted for interleaved RoPE), the trained `B` rows are
//! already in GGUF order and need no permutation.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};
use crate::linalg::{qr, svd, Mat};
use crate::rng::Rng;

/// A base linear layer LoRA can adapt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Attention query projection (`attn_q`).
    Q,
    /// Attention key projection (`attn_k`).
    K,
    /// Attention value projection (`attn_v`).
    V,
    /// Attention output projection (`attn_output`).
    O,
    /// MLP gate projection (`ffn_gate`).
    Gate,
    /// MLP up projection (`ffn_up`).
    Up,
    /// MLP down projection (`ffn_down`).
    Down,
}

impl Target {
    /// Every target, in the order used for files and parameters.
    pub const ALL: [Target; 7] = [Target::Q, Target::K, Target::V, Target::O, Target::Gate, Target::Up, Target::Down];

    /// The short name used in policies: `q`, `k`, `v`, `o`, `gate`, `up`, `down`.
    pub fn short(self) -> &'static str {
        match self {
            Target::Q => "q",
            Target::K => "k",
            Target::V => "v",
            Target::O => "o",
            Target::Gate => "gate",
            Target::Up => "up",
            Target::Down => "down",
        }
    }

    /// The tensor's name inside a GGUF block: `attn_q`, …, `ffn_down`.
    pub fn gguf(self) -> &'static str {
        match self {
            Target::Q => "attn_q",
            Target::K => "attn_k",
            Target::V => "attn_v",
            Target::O => "attn_output",
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.short() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown LoRA target {s:?}; expected one of q, k, v, o, gate, up, down")))
    }
}

/// Which layers get an adapter and how large it is.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// The rank `r`.
    pub rank: usize,
    /// `α`; the update is scaled by `α / r`.
    pub alpha: f32,
    /// The adapted linear layers.
    pub targets: Vec<Target>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, targets: Target::ALL.to_vec() }
    }
}

impl LoraConfig {
    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }
}

/// One adapted linear layer: `A (r, n_in)` and `B (n_out, r)`, both trainable.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// The transformer block.
    pub layer: usize,
    /// Which linear layer of the block.
    pub target: Target,
    /// `A`, shape `(r, n_in)`.
    pub a: Var,
    /// `B`, shape `(n_out, r)`.
    pub b: Var,
}

impl LoraPair {
    /// The base tensor's GGUF name, e.g. `blk.0.attn_q.weight`.
    pub fn base_name(&self) -> String {
        format!("blk.{}.{}.weight", self.layer, self.target.gguf())
    }
}

/// The whole trainable state of an adapter.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// Rank, alpha and targets.
    pub config: LoraConfig,
    /// One pair per (layer, target), layer-major in [`Target::ALL`] order.
    pub pairs: Vec<LoraPair>,
    index: HashMap<(usize, Target), usize>,
}

impl LoraAdapter {
    /// A fresh adapter: `A` uniform in `±1/√n_in` (PEFT's Kaiming-uniform bound), `B = 0`.
    ///
    /// `shape_of(layer, target)` gives the base weight's `(n_out, n_in)`.
    pub fn init(
        config: LoraConfig,
        n_layers: usize,
        shape_of: impl Fn(Target) -> (usize, usize),
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Self> {
        if config.rank == 0 {
            return Err(Error::InvalidInput("LoRA rank must be at least 1".into()));
        }
        let mut pairs = Vec::new();
        for layer in 0..n_layers {
            for target in Target::ALL.into_iter().filter(|t| config.targets.contains(t)) {
                let (n_out, n_in) = shape_of(target);
                let bound = 1.0 / (n_in as f64).sqrt();
                let a: Vec<f64> = (0..config.rank * n_in).map(|_| (2.0 * rng.next_f64() - 1.0) * bound).collect();
                let a = Tensor::from_vec(a, (config.rank, n_in), &Device::Cpu)?.to_dtype(dtype)?;
                let b = Tensor::zeros((n_out, config.rank), dtype, &Device::Cpu)?;
                pairs.push(LoraPair { layer, target, a: Var::from_tensor(&a)?, b: Var::from_tensor(&b)? });
            }
        }
        Ok(Self::from_pairs(config, pairs))
    }

    fn from_pairs(config: LoraConfig, pairs: Vec<LoraPair>) -> Self {
        let index = pairs.iter().enumerate().map(|(i, p)| ((p.layer, p.target), i)).collect();
        LoraAdapter { config, pairs, index }
    }

    /// The pair adapting `target` in `layer`, if any.
    pub fn get(&self, layer: usize, target: Target) -> Option<&LoraPair> {
        self.index.get(&(layer, target)).map(|&i| &self.pairs[i])
    }

    /// Every trainable tensor with its GGUF name, `A` before `B`, in a fixed order.
    pub fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::with_capacity(2 * self.pairs.len());
        for p in &self.pairs {
            out.push((format!("{}.lora_a", p.base_name()), &p.a));
            out.push((format!("{}.lora_b", p.base_name()), &p.b));
        }
        out
    }

    /// Fills every `B` with independent `N(0, std²)` draws. A fresh adapter (`B = 0`) changes
    /// nothing; this one changes every adapted layer at once, which is what checks comparing
    /// engines need (`autodidact trainer parity --random-adapter`).
    pub fn randomize_b(&self, std: f64, rng: &mut Rng) -> Result<()> {
        for p in &self.pairs {
            let v: Vec<f64> = (0..p.b.elem_count()).map(|_| rng.normal() * std).collect();
            p.b.set(&Tensor::from_vec(v, p.b.shape(), &Device::Cpu)?.to_dtype(p.b.dtype())?)?;
        }
        Ok(())
    }

    /// The number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.pairs.iter().map(|p| p.a.elem_count() + p.b.elem_count()).sum()
    }

    /// An independent copy (new storage, in `dtype`): training the original no longer changes
    /// it. (`Clone` shares the `Var`s' storage.)
    pub fn detached_copy(&self, dtype: DType) -> Result<Self> {
        let own = |v: &Var| -> Result<Var> { Ok(Var::from_tensor(&v.as_tensor().to_dtype(dtype)?.copy()?)?) };
        let pairs = self
            .pairs
            .iter()
            .map(|p| Ok(LoraPair { layer: p.layer, target: p.target, a: own(&p.a)?, b: own(&p.b)? }))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_pairs(self.config.clone(), pairs))
    }

    /// `‖ΔW‖²_F` of every pair, `ΔW = (α/r)·B·A`, computed from the factors as
    /// `(α/r)² · tr((BᵀB)(AAᵀ))`, layer-major in the adapter's order.
    pub fn delta_energies(&self) -> Result<Vec<((usize, Target), f64)>> {
        let s2 = self.config.scale() * self.config.scale();
        self.pairs
            .iter()
            .map(|p| {
                let (a, b) = (p.a.as_tensor().to_dtype(DType::F64)?, p.b.as_tensor().to_dtype(DType::F64)?);
                let btb = b.t()?.matmul(&b)?;
                let aat = a.matmul(&a.t()?)?;
                let tr = (btb * aat)?.sum_all()?.to_scalar::<f64>()?;
                Ok(((p.layer, p.target), s2 * tr))
            })
            .collect()
    }

    /// `Σ ‖ΔW‖²_F` over the pairs: the size of the whole update (0 for a fresh adapter).
    pub fn delta_energy(&self) -> Result<f64> {
        Ok(self.delta_energies()?.iter().map(|(_, e)| e).sum())
    }

    /// One adapter whose update is `past`'s plus `delta`'s, of rank at most `rank_cap`.
    ///
    /// Per adapted matrix the two updates are concatenated exactly,
    /// `A = [A_p; A_d]`, `B = [s_p·B_p, s_d·B_d]` (`s = α/r` of each side); the merged
    /// adapter's `α` equals its rank, so its scale is 1 and `B·A = ΔW_p + ΔW_d`. A pair present
    /// on one side only is carried over. Every pair gets the same rank
    /// `R = min(r_p + r_d, rank_cap)` (llama.cpp reads one `α` for all tensors and each
    /// tensor's rank from its shape, so the scale is uniform only if the ranks are); shorter
    /// pairs are padded with zero rows of `A` and zero columns of `B`, which changes nothing.
    ///
    /// When a pair's concatenated rank exceeds `R`, it is replaced by the best rank-`R`
    /// approximation of `B·A` in Frobenius norm (Eckart–Young), computed from the factors
    /// ([`crate::linalg`]): thin QRs `B = Q_b R_b`, `Aᵀ = Q_a R_a`, the SVD
    /// `R_b R_aᵀ = U Σ Vᵀ` of the small core, then `B' = Q_b U_R Σ_R^½` and
    /// `A' = Σ_R^½ V_Rᵀ Q_aᵀ` (the singular values split evenly between the factors). The
    /// error is then `√(Σ_{i>R} σ_i²)`.
    ///
    /// The result has `delta`'s dtype and exports with [`LoraAdapter::export_gguf`] like any
    /// adapter.
    pub fn merge(past: &LoraAdapter, delta: &LoraAdapter, rank_cap: usize) -> Result<LoraAdapter> {
        if rank_cap == 0 {
            return Err(Error::InvalidInput("merge: rank_cap must be at least 1".into()));
        }
        let dtype = delta.pairs.first().or(past.pairs.first()).map(|p| p.a.dtype()).unwrap_or(DType::F32);
        let rank = (past.config.rank + delta.config.rank).min(rank_cap);
        let mut keys: Vec<(usize, Target)> = past.pairs.iter().chain(&delta.pairs).map(|p| (p.layer, p.target)).collect();
        keys.sort();
        keys.dedup();
        let mut pairs = Vec::with_capacity(keys.len());
        for (layer, target) in keys {
            // (scaled B, A) of each side present, as f64 matrices.
            let mut bs: Vec<Mat> = Vec::new();
            let mut as_: Vec<Mat> = Vec::new();
            for side in [past, delta] {
                if let Some(p) = side.get(layer, target) {
                    let a = to_mat(p.a.as_tensor())?;
                    let mut b = to_mat(p.b.as_tensor())?;
                    if b.cols != a.rows {
                        return Err(Error::InvalidInput(format!("merge: {}: A is {}×{} but B is {}×{}", p.base_name(), a.rows, a.cols, b.rows, b.cols)));
                    }
                    let s = side.config.scale();
                    b.data.iter_mut().for_each(|x| *x *= s);
                    bs.push(b);
                    as_.push(a);
                }
            }
            let (n_out, n_in) = (bs[0].rows, as_[0].cols);
            if bs.iter().any(|b| b.rows != n_out) || as_.iter().any(|a| a.cols != n_in) {
                return Err(Error::InvalidInput(format!("merge: blk.{layer}.{} has different shapes in the two adapters", target.gguf())));
            }
            let r_cat: usize = as_.iter().map(|a| a.rows).sum();
            // Concatenate: B_cat (n_out, r_cat), A_cat (r_cat, n_in).
            let mut b_cat = Mat::zeros(n_out, r_cat);
            let mut a_cat = Mat::zeros(r_cat, n_in);
            let mut off = 0;
            for (b, a) in bs.iter().zip(&as_) {
                for i in 0..n_out {
                    b_cat.data[i * r_cat + off..i * r_cat + off + b.cols].copy_from_slice(&b.data[i * b.cols..(i + 1) * b.cols]);
                }
                a_cat.data[off * n_in..(off + a.rows) * n_in].copy_from_slice(&a.data);
                off += a.rows;
            }
            let (b_new, a_new) = if r_cat <= rank { (b_cat, a_cat) } else { truncated_factors(&b_cat, &a_cat, rank) };
            // Pad to the uniform rank.
            let k = a_new.rows;
            let mut a_pad = Mat::zeros(rank, n_in);
            a_pad.data[..k * n_in].copy_from_slice(&a_new.data);
            let mut b_pad = Mat::zeros(n_out, rank);
            for i in 0..n_out {
                b_pad.data[i * rank..i * rank + k].copy_from_slice(&b_new.data[i * k..(i + 1) * k]);
            }
            let var = |m: Mat| -> Result<Var> {
                Ok(Var::from_tensor(&Tensor::from_vec(m.data, (m.rows, m.cols), &Device::Cpu)?.to_dtype(dtype)?)?)
            };
            pairs.push(LoraPair { layer, target, a: var(a_pad)?, b: var(b_pad)? });
        }
        let mut targets: Vec<Target> = past.config.targets.iter().chain(&delta.config.targets).copied().collect();
        targets.sort();
        targets.dedup();
        Ok(Self::from_pairs(LoraConfig { rank, alpha: rank as f32, targets }, pairs))
    }

    /// GGUF metadata of an adapter for a base of `architecture`.
    pub(crate) fn metadata(&self, architecture: &str) -> Vec<(String, gguf_file::Value)> {
        vec![
            ("general.type".into(), gguf_file::Value::String("adapter".into())),
            ("general.architecture".into(), gguf_file::Value::String(architecture.into())),
            ("adapter.type".into(), gguf_file::Value::String("lora".into())),
            ("adapter.lora.alpha".into(), gguf_file::Value::F32(self.config.alpha)),
        ]
    }

    /// Writes the adapter as a GGUF LoRA file llama.cpp can load, atomically (temporary file,
    /// then rename).
    pub fn export_gguf(&self, path: &Path, architecture: &str) -> Result<()> {
        let tensors = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| Ok((n, QTensor::quantize(&v.as_tensor().to_dtype(DType::F32)?, GgmlDType::F32)?)))
            .collect::<Result<Vec<_>>>()?;
        write_gguf_atomically(path, &self.metadata(architecture), &tensors)
    }

    /// Reads an adapter written by [`LoraAdapter::export_gguf`] (or any GGUF LoRA with F32
    /// tensors named `blk.N.<target>.weight.lora_{a,b}`), returning it and its architecture.
    /// Every error names the file.
    pub fn load_gguf(path: &Path, dtype: DType) -> Result<(Self, String)> {
        Self::read_gguf(path, dtype).map_err(located(path))
    }

    fn read_gguf(path: &Path, dtype: DType) -> Result<(Self, String)> {
        let (content, mut file) = open_gguf(path)?;
        let s = |k: &str| -> Result<String> {
            match content.metadata.get(k) {
                Some(gguf_file::Value::String(s)) => Ok(s.clone()),
                _ => Err(Error::bad_gguf(path, format!("missing string metadata `{k}`"))),
            }
        };
        if s("general.type")? != "adapter" || s("adapter.type")? != "lora" {
            return Err(Error::bad_gguf(path, "not a LoRA adapter (general.type / adapter.type)"));
        }
        let arch = s("general.architecture")?;
        let alpha = match content.metadata.get("adapter.lora.alpha") {
            Some(gguf_file::Value::F32(a)) => *a,
            _ => return Err(Error::bad_gguf(path, "`adapter.lora.alpha` missing or not F32")),
        };
        let mut found: Vec<(usize, Target)> = Vec::new();
        for name in content.tensor_infos.keys() {
            let Some(rest) = name.strip_prefix("blk.").and_then(|r| r.strip_suffix(".weight.lora_a")) else { continue };
            let (layer, t) = rest.split_once('.').ok_or_else(|| Error::bad_gguf(path, format!("bad tensor name {name}")))?;
            let layer: usize = layer.parse().map_err(|_| Error::bad_gguf(path, format!("bad layer in {name}")))?;
            let target = Target::ALL
                .into_iter()
                .find(|x| x.gguf() == t)
                .ok_or_else(|| Error::bad_gguf(path, format!("unknown target in {name}")))?;
            found.push((layer, target));
        }
        found.sort();
        let mut rank = 0;
        let mut pairs = Vec::new();
        for (layer, target) in &found {
            let base = format!("blk.{layer}.{}.weight", target.gguf());
            let mut read = |suffix: &str| -> Result<Tensor> {
                let name = format!("{base}.{suffix}");
                let q = content.tensor(&mut file, &name, &Device::Cpu).map_err(|e| Error::CandleAt { path: path.into(), source: e })?;
                Ok(q.dequantize(&Device::Cpu)?.to_dtype(dtype)?)
            };
            let a = read("lora_a")?;
            let b = read("lora_b")?;
            let r = a.dims2()?.0;
            if b.dims2()?.1 != r {
                return Err(Error::bad_gguf(path, format!("{base}: lora_a rank {r} but lora_b is {:?}", b.dims())));
            }
            if !pairs.is_empty() && r != rank {
                return Err(Error::bad_gguf(path, format!("{base}: rank {r}, but the other pairs have rank {rank}")));
            }
            rank = r;
            pairs.push(LoraPair { layer: *layer, target: *target, a: Var::from_tensor(&a)?, b: Var::from_tensor(&b)? });
        }
        let mut targets: Vec<Target> = found.iter().map(|f| f.1).collect();
        targets.sort();
        targets.dedup();
        let config = LoraConfig { rank, alpha, targets };
        Ok((Self::from_pairs(config, pairs), arch))
    }
}

/// A 2-D tensor as an `f64` matrix.
fn to_mat(t: &Tensor) -> Result<Mat> {
    let (r, c) = t.dims2()?;
    Ok(Mat::from_vec(r, c, crate::ops::to_f64_vec(t)?))
}

/// The best rank-`k` factors `(B', A')` of `b · a`, from the factors (see [`LoraAdapter::merge`]).
pub(crate) fn truncated_factors(b: &Mat, a: &Mat, k: usize) -> (Mat, Mat) {
    let (qb, rb) = qr(b); // (n_out, kb), (kb, r)
    let (qa, ra) = qr(&a.t()); // (n_in, ka), (ka, r)
    let core = rb.matmul(&ra.t()); // (kb, ka)
    let (u, s, v) = svd(&core);
    let k = k.min(s.len());
    let mut us = u.first_cols(k);
    let mut vs = v.first_cols(k);
    for (j, sigma) in s.iter().take(k).enumerate() {
        let h = sigma.sqrt();
        for i in 0..us.rows {
            us.data[i * k + j] *= h;
        }
        for i in 0..vs.rows {
            vs.data[i * k + j] *= h;
        }
    }
    (qb.matmul(&us), qa.matmul(&vs).t())
}

/// Opens and parses a GGUF file, and checks what candle's reader takes on trust: every tensor
/// must have elements, a size that fits in `u64` and data inside the file. Otherwise a
/// malformed file panics inside candle (its element count overflows, and an empty tensor
/// aborts the process on a misaligned slice) instead of being an error.
pub(crate) fn open_gguf(path: &Path) -> Result<(gguf_file::Content, File)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    // candle 0.11 divides by `general.alignment` unchecked, so an alignment of 0 panics inside
    // the reader; a panic there is a malformed file, reported as one.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gguf_file::Content::read(&mut file)));
    let content = match read {
        Ok(content) => content.map_err(|e| Error::CandleAt { path: path.into(), source: e })?,
        Err(panic) => {
            let why = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
            return Err(Error::bad_gguf(path, format!("malformed GGUF header (the reader failed: {why})")));
        }
    };
    for (name, info) in &content.tensor_infos {
        let bytes = tensor_bytes(info)
            .ok_or_else(|| Error::bad_gguf(path, format!("tensor {name}: shape {:?} of {:?} holds no data or is too large", info.shape.dims(), info.ggml_dtype)))?;
        let end = content.tensor_data_offset.checked_add(info.offset).and_then(|start| start.checked_add(bytes));
        if end.is_none_or(|end| end > size) {
            return Err(Error::bad_gguf(path, format!("tensor {name}: its {bytes} bytes at offset {} end past the end of the file ({size} bytes)", info.offset)));
        }
    }
    Ok((content, file))
}

/// The size of a tensor's data: `None` when it has no element, is not a whole number of
/// blocks, or its size overflows `u64`.
fn tensor_bytes(info: &gguf_file::TensorInfo) -> Option<u64> {
    let elems = info.shape.dims().iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
    let block = info.ggml_dtype.block_size() as u64;
    if elems == 0 || !elems.is_multiple_of(block) {
        return None;
    }
    (elems / block).checked_mul(info.ggml_dtype.type_size() as u64)
}

/// Adds `path` to a candle error raised without it (by an operation on the file's tensors).
pub(crate) fn located(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Candle(source) => Error::CandleAt { path: path.into(), source },
        other => other,
    }
}

/// Writes a GGUF file through a temporary file in the same directory, fsyncs it and renames it
/// over `path`, so a crash leaves either the old file or the new one, never a torn one.
pub(crate) fn write_gguf_atomically(
    path: &Path,
    metadata: &[(String, gguf_file::Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let md: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut w = std::io::BufWriter::new(&mut f);
        gguf_file::write(&mut w, &md, &ts).map_err(|e| Error::CandleAt { path: tmp.clone(), source: e })?;
        use std::io::Write;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
        drop(w);
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
