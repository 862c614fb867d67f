//! A llama-architecture decoder in candle, loaded from a GGUF, with LoRA on its linear layers.
//!
//! The architecture is Touvron et al., "LLaMA" (arXiv 2302.13971): pre-norm RMSNorm blocks,
//! grouped-query attention with rotary embeddings, a SwiGLU MLP; the reference implementation
//! this follows is llama.cpp's `llm_build_llama` (the weights' own engine) and candle's
//! `candle-transformers/src/models/llama.rs`. SmolLM2-135M is the target: 30 layers, hidden 576,
//! 9 heads, 3 KV heads, MLP 1536, vocab 49152, tied embeddings, RoPE base 100000.
//!
//! The GGUF is dequantized to `f32` (or `f64` for gradient checks) once at load; the base
//! weights are plain tensors, never `Var`s, and every base matmul goes through
//! [`FrozenLinear`] so no weight gradient is computed. RoPE is the *interleaved* form
//! ([`RopeI`]) because llama.cpp's converter permuted the Q and K rows.
//!
//! Sequences are right-padded: pads come after the real tokens, so the causal mask already keeps
//! every real token from seeing them and no attention mask beyond causality is needed. The LM
//! head runs only at the positions that predict completion tokens ([`LmHeadLogProb`]).

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::lora::{located, open_gguf, write_gguf_atomically, LoraAdapter, Target};
use crate::ops::{to_f64_vec, CausalSoftmax, FrozenLinear, LmHeadLogProb, RmsNorm, RopeI};
use crate::rng::Rng;

/// The model's shape, read from the GGUF metadata (`<arch>.block_count`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `general.architecture` (e.g. `llama`); an exported adapter must name the same.
    pub architecture: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// MLP inner size.
    pub n_ff: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_head_kv: usize,
    /// Vocabulary size (rows of `token_embd`).
    pub vocab: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_base: f64,
}

impl LlamaConfig {
    /// Per-head dimension.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// `(n_out, n_in)` of a LoRA target's base weight.
    pub fn shape_of(&self, t: Target) -> (usize, usize) {
        let kv = self.n_head_kv * self.head_dim();
        match t {
            Target::Q | Target::O => (self.n_embd, self.n_embd),
            Target::K | Target::V => (kv, self.n_embd),
            Target::Gate | Target::Up => (self.n_ff, self.n_embd),
            Target::Down => (self.n_embd, self.n_ff),
        }
    }

    /// A config with SmolLM2's proportions but tiny, for tests.
    pub fn tiny() -> Self {
        LlamaConfig {
            architecture: "llama".into(),
            n_layer: 2,
            n_embd: 16,
            n_ff: 24,
            n_head: 4,
            n_head_kv: 2,
            vocab: 37,
            rms_eps: 1e-5,
            rope_base: 10000.0,
        }
    }
}

#[derive(Clone)]
struct Layer {
    attn_norm: Arc<Vec<f64>>,
    ffn_norm: Arc<Vec<f64>>,
    w: Vec<(Target, Tensor)>,
}

impl Layer {
    fn weight(&self, t: Target) -> &Tensor {
        &self.w.iter().find(|(x, _)| *x == t).expect("every target is loaded").1
    }
}

/// The frozen base model, and optionally a frozen *past* adapter applied in every forward.
///
/// Cloning is cheap: the weights' storage is shared.
#[derive(Clone)]
pub struct BaseModel {
    /// Its shape.
    pub config: LlamaConfig,
    dtype: DType,
    tok_embd: Tensor,
    output: Tensor,
    output_norm: Arc<Vec<f64>>,
    layers: Vec<Layer>,
    past: Option<LoraAdapter>,
}

impl std::fmt::Debug for BaseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseModel")
            .field("config", &self.config)
            .field("dtype", &self.dtype)
            .field("past", &self.past.as_ref().map(|p| (p.config.rank, p.pairs.len())))
            .finish()
    }
}

fn meta_usize(c: &gguf_file::Content, path: &Path, key: &str) -> Result<usize> {
    use gguf_file::Value as V;
    match c.metadata.get(key) {
        Some(V::U8(v)) => Ok(*v as usize),
        Some(V::U16(v)) => Ok(*v as usize),
        Some(V::U32(v)) => Ok(*v as usize),
        Some(V::U64(v)) => Ok(*v as usize),
        Some(V::I32(v)) if *v >= 0 => Ok(*v as usize),
        Some(V::I64(v)) if *v >= 0 => Ok(*v as usize),
        Some(v) => Err(Error::bad_gguf(path, format!("metadata `{key}` is {v:?}, expected an unsigned integer"))),
        None => Err(Error::bad_gguf(path, format!("metadata `{key}` is missing"))),
    }
}

fn meta_f64(c: &gguf_file::Content, key: &str) -> Option<f64> {
    match c.metadata.get(key) {
        Some(gguf_file::Value::F32(v)) => Some(*v as f64),
        Some(gguf_file::Value::F64(v)) => Some(*v),
        _ => None,
    }
}

impl BaseModel {
    /// Loads a llama-architecture GGUF, dequantizing every weight to `dtype` (`F32` to train,
    /// `F64` for gradient checks). A missing file is an error naming `scripts/bootstrap.sh`;
    /// every error names the file.
    pub fn load_gguf(path: &Path, dtype: DType) -> Result<Self> {
        Self::read_gguf(path, dtype).map_err(located(path))
    }

    fn read_gguf(path: &Path, dtype: DType) -> Result<Self> {
        if !path.exists() {
            return Err(Error::MissingModel { path: path.into() });
        }
        let (content, mut file) = open_gguf(path)?;
        let architecture = match content.metadata.get("general.architecture") {
            Some(gguf_file::Value::String(s)) => s.clone(),
            _ => return Err(Error::bad_gguf(path, "metadata `general.architecture` is missing")),
        };
        let a = &architecture;
        let mut read = |name: &str| -> Result<Tensor> {
            let q = content.tensor(&mut file, name, &Device::Cpu).map_err(|e| Error::CandleAt { path: path.into(), source: e })?;
            Ok(q.dequantize(&Device::Cpu)?.to_dtype(dtype)?)
        };
        let tok_embd = read("token_embd.weight")?;
        let vocab = tok_embd.dims2()?.0;
        let config = LlamaConfig {
            architecture: architecture.clone(),
            n_layer: meta_usize(&content, path, &format!("{a}.block_count"))?,
            n_embd: meta_usize(&content, path, &format!("{a}.embedding_length"))?,
            n_ff: meta_usize(&content, path, &format!("{a}.feed_forward_length"))?,
            n_head: meta_usize(&content, path, &format!("{a}.attention.head_count"))?,
            n_head_kv: meta_usize(&content, path, &format!("{a}.attention.head_count_kv"))?,
            vocab,
            rms_eps: meta_f64(&content, &format!("{a}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_base: meta_f64(&content, &format!("{a}.rope.freq_base")).unwrap_or(10000.0),
        };
        // The shape arithmetic below (head_dim, shape_of, one Layer per block) trusts these.
        let c = &config;
        if c.n_embd != tok_embd.dims2()?.1 || c.n_head == 0 || c.n_head_kv == 0 || !c.n_embd.is_multiple_of(c.n_head) || !c.n_head.is_multiple_of(c.n_head_kv) {
            return Err(Error::bad_gguf(
                path,
                format!("{a}.embedding_length {} with {} heads and {} key/value heads does not fit token_embd {:?}", c.n_embd, c.n_head, c.n_head_kv, tok_embd.dims()),
            ));
        }
        if c.n_layer > content.tensor_infos.len() {
            return Err(Error::bad_gguf(path, format!("{a}.block_count is {}, but the file holds {} tensors", c.n_layer, content.tensor_infos.len())));
        }
        let output = if content.tensor_infos.contains_key("output.weight") { read("output.weight")? } else { tok_embd.clone() };
        let vec = |t: Tensor| -> Result<Arc<Vec<f64>>> { Ok(Arc::new(to_f64_vec(&t)?)) };
        let output_norm = vec(read("output_norm.weight")?)?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let attn_norm = vec(read(&format!("blk.{i}.attn_norm.weight"))?)?;
            let ffn_norm = vec(read(&format!("blk.{i}.ffn_norm.weight"))?)?;
            let mut w = Vec::with_capacity(7);
            for t in Target::ALL {
                let tensor = read(&format!("blk.{i}.{}.weight", t.gguf()))?;
                if tensor.dims2()? != config.shape_of(t) {
                    return Err(Error::bad_gguf(path, format!("blk.{i}.{} has shape {:?}, expected {:?}", t.gguf(), tensor.dims(), config.shape_of(t))));
                }
                w.push((t, tensor));
            }
            layers.push(Layer { attn_norm, ffn_norm, w });
        }
        Ok(BaseModel { config, dtype, tok_embd, output, output_norm, layers, past: None })
    }

    /// The dtype the weights were loaded in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The number of base parameters (embedding counted once when tied).
    pub fn num_params(&self) -> usize {
        let tied = self.output.id() == self.tok_embd.id();
        let mut n = self.tok_embd.elem_count() + self.output_norm.len();
        if !tied {
            n += self.output.elem_count();
        }
        for l in &self.layers {
            n += l.attn_norm.len() + l.ffn_norm.len() + l.w.iter().map(|(_, t)| t.elem_count()).sum::<usize>();
        }
        n
    }

    /// Makes `past` (the merge of every promoted update) part of the frozen model: every
    /// forward computes `W x + s_p·B_p(A_p x)` before any trained adapter's term, the KL
    /// reference (`adapter = None`) included. The past is copied into fresh storage in the
    /// model's dtype and goes through [`FrozenLinear`], so it never receives a gradient, is never
    /// an optimiser parameter and is not part of a trainer checkpoint. `None` removes it.
    pub fn set_past(&mut self, past: Option<&LoraAdapter>) -> Result<()> {
        let Some(past) = past else {
            self.past = None;
            return Ok(());
        };
        for p in &past.pairs {
            let (n_out, n_in) = self.config.shape_of(p.target);
            let (ra, ia) = p.a.as_tensor().dims2()?;
            let (ob, rb) = p.b.as_tensor().dims2()?;
            if p.layer >= self.config.n_layer || ia != n_in || ob != n_out || ra != rb {
                return Err(Error::InvalidInput(format!(
                    "past adapter: {} has A {ra}×{ia} and B {ob}×{rb}, expected A r×{n_in} and B {n_out}×r in a model of {} layers",
                    p.base_name(),
                    self.config.n_layer
                )));
            }
        }
        self.past = Some(past.detached_copy(self.dtype)?);
        Ok(())
    }

    /// The frozen past adapter, if any.
    pub fn past(&self) -> Option<&LoraAdapter> {
        self.past.as_ref()
    }

    fn linear(&self, x: &Tensor, layer: usize, t: Target, adapter: Option<&LoraAdapter>) -> Result<Tensor> {
        let mut y = x.apply_op1(FrozenLinear { w: self.layers[layer].weight(t).clone() })?;
        if let Some((s_p, p)) = self.past.as_ref().and_then(|a| a.get(layer, t).map(|p| (a.config.scale(), p))) {
            // The frozen past: s_p B_p (A_p x), through FrozenLinear so only dx flows back.
            let h = x.apply_op1(FrozenLinear { w: p.a.as_tensor().clone() })?.apply_op1(FrozenLinear { w: p.b.as_tensor().clone() })?;
            y = (y + (h * s_p)?)?;
        }
        match adapter.and_then(|a| a.get(layer, t).map(|p| (a.config.scale(), p))) {
            // LoRA (Hu et al. 2021): W x + (α/r) B (A x).
            Some((scale, p)) => Ok((y + (x.matmul(&p.a.t()?)?.matmul(&p.b.t()?)? * scale)?)?),
            None => Ok(y),
        }
    }

    /// Runs the decoder on right-padded `ids` (`batch` rows of equal length `t`) and returns the
    /// final-normed hidden states, `(batch · t, n_embd)`. `adapter = None` is the base model,
    /// which is also the KL reference.
    pub fn hidden(&self, ids: &[Vec<u32>], adapter: Option<&LoraAdapter>) -> Result<Tensor> {
        let c = &self.config;
        let b = ids.len();
        let t = ids.first().map(|r| r.len()).unwrap_or(0);
        if b == 0 || t == 0 || ids.iter().any(|r| r.len() != t) {
            return Err(Error::InvalidInput("hidden: ids must be a non-empty rectangle".into()));
        }
        if let Some(bad) = ids.iter().flatten().find(|&&x| x as usize >= c.vocab) {
            return Err(Error::InvalidInput(format!("token id {bad} is outside the vocabulary ({})", c.vocab)));
        }
        let (nh, nkv, hd) = (c.n_head, c.n_head_kv, c.head_dim());
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let idx = Tensor::from_vec(flat, b * t, &Device::Cpu)?;
        let mut x = self.tok_embd.index_select(&idx, 0)?;
        let rope = RopeI::new(t, hd, c.rope_base);
        let scale = 1.0 / (hd as f64).sqrt();
        for (i, l) in self.layers.iter().enumerate() {
            let h = x.apply_op1(RmsNorm { w: l.attn_norm.clone(), eps: c.rms_eps })?;
            let heads = |y: Tensor, n: usize| -> Result<Tensor> { Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?) };
            let q = heads(self.linear(&h, i, Target::Q, adapter)?, nh)?.apply_op1(rope.clone())?;
            let k = heads(self.linear(&h, i, Target::K, adapter)?, nkv)?.apply_op1(rope.clone())?;
            let v = heads(self.linear(&h, i, Target::V, adapter)?, nkv)?;
            let (k, v) = if nkv == nh {
                (k, v)
            } else {
                let rep = |y: Tensor| -> Result<Tensor> {
                    Ok(y.unsqueeze(2)?.broadcast_as((b, nkv, nh / nkv, t, hd))?.reshape((b, nh, t, hd))?)
                };
                (rep(k)?, rep(v)?)
            };
            let att = (q.matmul(&k.t()?)? * scale)?.contiguous()?.apply_op1(CausalSoftmax)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b * t, nh * hd))?;
            x = (x + self.linear(&o, i, Target::O, adapter)?)?;
            let h = x.apply_op1(RmsNorm { w: l.ffn_norm.clone(), eps: c.rms_eps })?;
            // SwiGLU (Shazeer 2020): down(silu(gate h) ⊙ up h).
            let g = self.linear(&h, i, Target::Gate, adapter)?.silu()?;
            let u = self.linear(&h, i, Target::Up, adapter)?;
            x = (x + self.linear(&(g * u)?, i, Target::Down, adapter)?)?;
        }
        Ok(x.apply_op1(RmsNorm { w: self.output_norm.clone(), eps: c.rms_eps })?)
    }

    /// Per-token log-probabilities of each completion given its prompt, concatenated over the
    /// sequences in order: `(Σ |completion_i|,)`. Token ids come from the caller (the llama.cpp
    /// backend's tokenizer). The LM head runs only at the positions that predict a completion
    /// token.
    pub fn completion_logprobs(&self, seqs: &[(&[u32], &[u32])], adapter: Option<&LoraAdapter>) -> Result<Tensor> {
        let t = seqs.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(0);
        if seqs.is_empty() || seqs.iter().any(|(p, c)| p.is_empty() || c.is_empty()) {
            return Err(Error::InvalidInput("every sequence needs a non-empty prompt and completion".into()));
        }
        let mut ids = Vec::with_capacity(seqs.len());
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (s, (p, c)) in seqs.iter().enumerate() {
            let mut row: Vec<u32> = p.iter().chain(c.iter()).copied().collect();
            row.resize(t, 0); // right padding; causality hides it from real tokens
            ids.push(row);
            for (j, &tok) in c.iter().enumerate() {
                rows.push((s * t + p.len() + j - 1) as u32);
                targets.push(tok);
            }
        }
        let h = self.hidden(&ids, adapter)?;
        let n = rows.len();
        let sel = h.index_select(&Tensor::from_vec(rows, n, &Device::Cpu)?, 0)?;
        Ok(sel.apply_op1(LmHeadLogProb { w: self.output.clone(), targets: Arc::new(targets), chunk: 128 })?)
    }

    /// The same values as [`BaseModel::completion_logprobs`] on `(prompt, completions[i])` for
    /// every `i`, in the same order, with the shared prompt run once.
    ///
    /// The prompt is a batch of one (positions `0..P`, plain causal attention); the completions a
    /// right-padded batch of `G` rows at positions `P..P + T`, whose queries see every prompt key
    /// and their own causal prefix ([`CausalSoftmax`] on `(T, P + T)` scores). The prompt's keys
    /// and values stay in the graph, so the adapter's gradient is the per-row forward's, summed
    /// over the group. The first completion token is predicted from the prompt's last hidden
    /// state. A GRPO group costs `P + G·T` token-passes instead of `G·(P + T)`.
    pub fn group_logprobs(&self, prompt: &[u32], completions: &[&[u32]], adapter: Option<&LoraAdapter>) -> Result<Tensor> {
        let c = &self.config;
        if prompt.is_empty() || completions.is_empty() || completions.iter().any(|x| x.is_empty()) {
            return Err(Error::InvalidInput("group_logprobs needs a non-empty prompt and non-empty completions".into()));
        }
        if let Some(bad) = prompt.iter().chain(completions.iter().copied().flatten()).find(|&&x| x as usize >= c.vocab) {
            return Err(Error::InvalidInput(format!("token id {bad} is outside the vocabulary ({})", c.vocab)));
        }
        let (p, g) = (prompt.len(), completions.len());
        let t = completions.iter().map(|x| x.len()).max().unwrap_or(0);
        let (nh, nkv, hd) = (c.n_head, c.n_head_kv, c.head_dim());
        let embed = |ids: Vec<u32>| -> Result<Tensor> {
            let n = ids.len();
            Ok(self.tok_embd.index_select(&Tensor::from_vec(ids, n, &Device::Cpu)?, 0)?)
        };
        let mut padded = Vec::with_capacity(g * t);
        for x in completions {
            padded.extend_from_slice(x);
            padded.resize(padded.len() + t - x.len(), 0); // right padding, hidden by causality
        }
        let mut xp = embed(prompt.to_vec())?;
        let mut xc = embed(padded)?;
        let rope_p = RopeI::new(p, hd, c.rope_base);
        let rope_c = RopeI::with_offset(p, t, hd, c.rope_base);
        let scale = 1.0 / (hd as f64).sqrt();
        // (b·len, n·hd) → (b, n, len, hd); and GQA's key/value heads repeated to the query heads.
        let heads = |y: Tensor, b: usize, len: usize, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, len, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let rep = |y: Tensor, b: usize, len: usize| -> Result<Tensor> {
            if nkv == nh {
                return Ok(y);
            }
            Ok(y.unsqueeze(2)?.broadcast_as((b, nkv, nh / nkv, len, hd))?.reshape((b, nh, len, hd))?)
        };
        let attend = |q: Tensor, k: Tensor, v: Tensor, b: usize, len: usize| -> Result<Tensor> {
            let att = (q.matmul(&k.t()?)? * scale)?.contiguous()?.apply_op1(CausalSoftmax)?;
            Ok(att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b * len, nh * hd))?)
        };
        for (i, l) in self.layers.iter().enumerate() {
            let norm = RmsNorm { w: l.attn_norm.clone(), eps: c.rms_eps };
            let (hp, hc) = (xp.apply_op1(norm.clone())?, xc.apply_op1(norm)?);
            let qp = heads(self.linear(&hp, i, Target::Q, adapter)?, 1, p, nh)?.apply_op1(rope_p.clone())?;
            let kp = heads(self.linear(&hp, i, Target::K, adapter)?, 1, p, nkv)?.apply_op1(rope_p.clone())?;
            let vp = heads(self.linear(&hp, i, Target::V, adapter)?, 1, p, nkv)?;
            let qc = heads(self.linear(&hc, i, Target::Q, adapter)?, g, t, nh)?.apply_op1(rope_c.clone())?;
            let kc = heads(self.linear(&hc, i, Target::K, adapter)?, g, t, nkv)?.apply_op1(rope_c.clone())?;
            let vc = heads(self.linear(&hc, i, Target::V, adapter)?, g, t, nkv)?;
            // Every completion row attends to the prompt's keys/values (in the graph) then its own.
            let shared = |y: &Tensor| -> Result<Tensor> { Ok(y.broadcast_as((g, nkv, p, hd))?.contiguous()?) };
            let kf = Tensor::cat(&[shared(&kp)?, kc], 2)?;
            let vf = Tensor::cat(&[shared(&vp)?, vc], 2)?;
            let op = attend(qp, rep(kp, 1, p)?, rep(vp, 1, p)?, 1, p)?;
            let oc = attend(qc, rep(kf, g, p + t)?, rep(vf, g, p + t)?, g, t)?;
            xp = (xp + self.linear(&op, i, Target::O, adapter)?)?;
            xc = (xc + self.linear(&oc, i, Target::O, adapter)?)?;
            let norm = RmsNorm { w: l.ffn_norm.clone(), eps: c.rms_eps };
            let mlp = |x: &Tensor| -> Result<Tensor> {
                let h = x.apply_op1(norm.clone())?;
                // SwiGLU (Shazeer 2020): down(silu(gate h) ⊙ up h).
                let gate = self.linear(&h, i, Target::Gate, adapter)?.silu()?;
                let up = self.linear(&h, i, Target::Up, adapter)?;
                Ok((x + self.linear(&(gate * up)?, i, Target::Down, adapter)?)?)
            };
            xp = mlp(&xp)?;
            xc = mlp(&xc)?;
        }
        // Row 0: the prompt's last state (predicts every completion's token 0); then the
        // completions' rows, row `1 + s·T + j` predicting token `j + 1` of completion `s`.
        let last = Tensor::cat(&[xp.narrow(0, p - 1, 1)?, xc], 0)?;
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (s, x) in completions.iter().enumerate() {
            for (j, &tok) in x.iter().enumerate() {
                rows.push(if j == 0 { 0 } else { (1 + s * t + j - 1) as u32 });
                targets.push(tok);
            }
        }
        let n = rows.len();
        let sel = last.index_select(&Tensor::from_vec(rows, n, &Device::Cpu)?, 0)?;
        let h = sel.apply_op1(RmsNorm { w: self.output_norm.clone(), eps: c.rms_eps })?;
        Ok(h.apply_op1(LmHeadLogProb { w: self.output.clone(), targets: Arc::new(targets), chunk: 128 })?)
    }
}

impl BaseModel {
    /// For comparisons with llama.cpp (no gradient): each completion token's log-probability and
    /// the most likely token at its position, concatenated over the sequences in order. The
    /// log-probs come from the same fused LM-head op as [`BaseModel::completion_logprobs`]; the
    /// argmax from full logits, computed in chunks of rows.
    pub fn completion_scores(&self, seqs: &[(&[u32], &[u32])], adapter: Option<&LoraAdapter>) -> Result<(Vec<f64>, Vec<u32>)> {
        let logp = to_f64_vec(&self.completion_logprobs(seqs, adapter)?.detach())?;
        let mut argmax = Vec::with_capacity(logp.len());
        for (p, c) in seqs {
            let row: Vec<u32> = p.iter().chain(c.iter()).copied().collect();
            let h = self.hidden(&[row], adapter)?.detach();
            let h = h.narrow(0, p.len() - 1, c.len())?;
            let w_t = self.output.t()?;
            for start in (0..c.len()).step_by(64) {
                let n = 64.min(c.len() - start);
                let logits = h.narrow(0, start, n)?.matmul(&w_t)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                for l in logits {
                    argmax.push(l.iter().enumerate().fold(0, |b, (j, &x)| if x > l[b] { j } else { b }) as u32);
                }
            }
        }
        Ok((logp, argmax))
    }
}

/// Writes a llama-architecture GGUF with random F32 weights and `config`'s shape: a stand-in base
/// model for tests and benchmarks that must not depend on the real asset.
pub fn write_random_llama_gguf(path: &Path, config: &LlamaConfig, seed: u64) -> Result<()> {
    use gguf_file::Value as V;
    let c = config;
    let a = &c.architecture;
    let metadata = vec![
        ("general.architecture".to_string(), V::String(a.clone())),
        (format!("{a}.block_count"), V::U32(c.n_layer as u32)),
        (format!("{a}.embedding_length"), V::U32(c.n_embd as u32)),
        (format!("{a}.feed_forward_length"), V::U32(c.n_ff as u32)),
        (format!("{a}.attention.head_count"), V::U32(c.n_head as u32)),
        (format!("{a}.attention.head_count_kv"), V::U32(c.n_head_kv as u32)),
        (format!("{a}.attention.layer_norm_rms_epsilon"), V::F32(c.rms_eps as f32)),
        (format!("{a}.rope.freq_base"), V::F32(c.rope_base as f32)),
    ];
    let mut rng = Rng::new(seed);
    let mut tensor = |shape: (usize, usize), mean: f64, std: f64| -> Result<QTensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| (mean + std * rng.normal()) as f32).collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu)?;
        Ok(QTensor::quantize(&t, GgmlDType::F32)?)
    };
    let mut tensors = vec![
        ("token_embd.weight".to_string(), tensor((c.vocab, c.n_embd), 0.0, 0.5)?),
        ("output_norm.weight".to_string(), tensor((1, c.n_embd), 1.0, 0.1)?),
    ];
    for i in 0..c.n_layer {
        tensors.push((format!("blk.{i}.attn_norm.weight"), tensor((1, c.n_embd), 1.0, 0.1)?));
        tensors.push((format!("blk.{i}.ffn_norm.weight"), tensor((1, c.n_embd), 1.0, 0.1)?));
        for t in Target::ALL {
            let shape = c.shape_of(t);
            tensors.push((format!("blk.{i}.{}.weight", t.gguf()), tensor(shape, 0.0, 1.0 / (shape.1 as f64).sqrt())?));
        }
    }
    // Norm gains are 1-D in a real GGUF.
    let tensors = tensors
        .into_iter()
        .map(|(n, q)| {
            if n.ends_with("norm.weight") {
                let t = q.dequantize(&Device::Cpu)?.flatten_all()?;
                Ok((n, QTensor::quantize(&t, GgmlDType::F32)?))
            } else {
                Ok((n, q))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    write_gguf_atomically(path, &metadata, &tensors)
}
