//! Helpers shared by the runtime's behaviour tests: opening the bootstrapped model and writing
//! small GGUF files (LoRA adapters) in the format llama.cpp's `llama-adapter.cpp` reads.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::smollm2_path;

/// The bootstrapped SmolLM2 (tests fail, not skip, when it is missing).
pub async fn smollm2() -> LlamaCppModel {
    // One llama.cpp thread: without barriers between threads, the tests stay short even while
    // other processes compete for the cores (two threads then slow down several-fold).
    let config = LlamaCppConfig { path: smollm2_path(), n_ctx: 2048, threads: Some(1), ..LlamaCppConfig::default() };
    LlamaCppModel::load(config).await.expect("the bootstrapped model (run scripts/bootstrap.sh)")
}

/// A scratch directory under the target dir, unique per test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autodidact-runtime-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 1 MB haystack with one needle ("The magic number for NAME is NUMBER."), the shape of the
/// `niah` eval suite, for the long-context tests.
pub fn haystack(name: &str, number: u32) -> String {
    let mut hay = String::with_capacity(1_000_100);
    let mut i = 0u32;
    while hay.len() < 1_000_000 {
        if i == 20_011 {
            hay.push_str(&format!("The magic number for {name} is {number}. "));
        }
        hay.push_str(&format!("The quiet river {} the amber lantern. ", ["follows", "mirrors", "greets"][(i % 3) as usize]));
        i += 1;
    }
    hay
}

/// A metadata value.
pub enum Meta {
    Str(String),
    F32(f32),
    U32(u32),
}

/// An F32 tensor: name, ggml dims (ne0 first, i.e. reversed numpy order) and data.
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub data: Vec<f32>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Writes a GGUF v3 file with the given metadata and F32 tensors (alignment 32).
pub fn write_gguf(path: &Path, meta: &[(&str, Meta)], tensors: &[Tensor]) {
    const ALIGN: u64 = 32;
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        put_str(&mut out, key);
        match value {
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            Meta::F32(x) => {
                out.extend(6u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            Meta::U32(x) => {
                out.extend(4u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
        }
    }
    let mut offset = 0u64;
    for t in tensors {
        assert_eq!(t.dims.iter().product::<u64>() as usize, t.data.len(), "{}", t.name);
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // GGML_TYPE_F32
        out.extend(offset.to_le_bytes());
        offset += (t.data.len() as u64 * 4).div_ceil(ALIGN) * ALIGN;
    }
    while out.len() as u64 % ALIGN != 0 {
        out.push(0);
    }
    for t in tensors {
        let start = out.len();
        for x in &t.data {
            out.extend(x.to_le_bytes());
        }
        while (out.len() - start) as u64 % ALIGN != 0 {
            out.push(0);
        }
    }
    std::fs::write(path, out).unwrap();
}

/// SmolLM2-135M's projection shapes: (name, n_in, n_out).
pub const SMOLLM2_PROJECTIONS: [(&str, u64, u64); 7] = [
    ("attn_q", 576, 576),
    ("attn_k", 576, 192),
    ("attn_v", 576, 192),
    ("attn_output", 576, 576),
    ("ffn_gate", 576, 1536),
    ("ffn_up", 576, 1536),
    ("ffn_down", 1536, 576),
];

/// Deterministic pseudo-random numbers in [-1, 1).
pub fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A random LoRA adapter for SmolLM2: rank `r` on `projections` of every layer, with
/// `scale` on B (0 would be a no-op adapter). `arch` is `general.architecture` (`llama`).
pub fn write_lora(path: &Path, arch: &str, r: u64, projections: &[&str], scale: f32, seed: u64) {
    let mut tensors = Vec::new();
    for layer in 0..30 {
        for &(name, n_in, n_out) in SMOLLM2_PROJECTIONS.iter().filter(|p| projections.contains(&p.0)) {
            let base = format!("blk.{layer}.{name}.weight");
            let a = noise(seed ^ (layer * 131 + n_in), (r * n_in) as usize);
            let b: Vec<f32> = noise(seed ^ (layer * 137 + n_out + 1), (n_out * r) as usize)
                .into_iter()
                .map(|x| x * scale)
                .collect();
            // numpy shapes A (r, n_in) and B (n_out, r); ggml dims are reversed.
            tensors.push(Tensor { name: format!("{base}.lora_a"), dims: vec![n_in, r], data: a });
            tensors.push(Tensor { name: format!("{base}.lora_b"), dims: vec![r, n_out], data: b });
        }
    }
    let meta = [
        ("general.architecture", Meta::Str(arch.into())),
        ("general.type", Meta::Str("adapter".into())),
        ("adapter.type", Meta::Str("lora".into())),
        ("adapter.lora.alpha", Meta::F32(r as f32)),
    ];
    write_gguf(path, &meta, &tensors);
}

/// Resident memory of this process in MB, from /proc.
pub fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}
