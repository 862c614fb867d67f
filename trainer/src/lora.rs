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
    pub fn load_gguf(path: &Path, dtype: DType) -> Result<(Self, String)> {
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
            rank = a.dims2()?.0;
            if b.dims2()?.1 != rank {
                return Err(Error::bad_gguf(path, format!("{base}: lora_a rank {rank} but lora_b is {:?}", b.dims())));
            }
            pairs.push(LoraPair { layer: *layer, target: *target, a: Var::from_tensor(&a)?, b: Var::from_tensor(&b)? });
        }
        let mut targets: Vec<Target> = found.iter().map(|f| f.1).collect();
        targets.sort();
        targets.dedup();
        let config = LoraConfig { rank, alpha, targets };
        Ok((Self::from_pairs(config, pairs), arch))
    }
}

/// Opens and parses a GGUF file.
pub(crate) fn open_gguf(path: &Path) -> Result<(gguf_file::Content, File)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| Error::CandleAt { path: path.into(), source: e })?;
    Ok((content, file))
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
