//! Hand-made GGUF files for the property tests of the GGUF readers (the trainer's loaders in
//! `trainer/tests/fuzz_gguf.rs`, the runtime's pre-load check in
//! `runtime/tests/fuzz_gguf_check.rs`), included with `#[path]`: a writer for headers that may
//! lie (counts, lengths, types, shapes, offsets), the strategies that draw them, and an
//! allocator that refuses absurd allocations, so that a declared length a reader trusts shows
//! up as an abort naming its size instead of exhausting the machine.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use proptest::prelude::*;

/// The largest single allocation this test allows (the fixtures are a few kilobytes).
pub const ALLOCATION_CAP: usize = 256 << 20;

/// The system allocator, refusing any allocation above [`ALLOCATION_CAP`].
pub struct Capped;

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; a refused request returns null, which
// the contract allows (the caller then reports an allocation failure and aborts).
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// One change to a file's header bytes.
#[derive(Debug, Clone)]
pub enum Corruption {
    /// XOR one byte with a non-zero mask.
    Flip(prop::sample::Index, u8),
    /// Overwrite `width` bytes with the low bytes of a value, little-endian.
    Word(prop::sample::Index, u64, usize),
}

/// A byte flipped, or a word overwritten with an extreme value.
pub fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Corruption::Flip(i, m)),
        (any::<prop::sample::Index>(), extreme(), prop::sample::select(vec![1usize, 2, 4, 8])).prop_map(|(i, v, w)| Corruption::Word(i, v, w)),
    ]
}

/// Applies `corruptions` within the first `header` bytes of `bytes`.
pub fn corrupt(bytes: &mut [u8], header: usize, corruptions: Vec<Corruption>) {
    for c in corruptions {
        match c {
            Corruption::Flip(i, mask) => bytes[i.index(header)] ^= mask,
            Corruption::Word(i, v, w) => {
                let at = i.index(header - w);
                bytes[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
        }
    }
}

/// Numbers that break length and count arithmetic.
pub fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            4,
            7,
            8,
            31,
            32,
            255,
            256,
            1 << 16,
            1 << 31,
            u32::MAX as u64,
            1 << 32,
            1 << 40,
            1 << 62,
            i64::MAX as u64,
            u64::MAX - 1,
            u64::MAX
        ]),
        any::<u64>(),
    ]
}

/// Keys the loaders read.
pub const KEYS: &[&str] = &[
    "general.type",
    "adapter.type",
    "general.architecture",
    "adapter.lora.alpha",
    "general.alignment",
    "llama.block_count",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
];

/// Tensor names the loaders read.
pub fn tensor_name() -> impl Strategy<Value = String> {
    let target = prop::sample::select(vec!["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm", "attn_x"]);
    prop_oneof![
        (prop_oneof![0usize..3, Just(usize::MAX)], target.clone(), prop::sample::select(vec![".lora_a", ".lora_b", ""]))
            .prop_map(|(l, t, s)| format!("blk.{l}.{t}.weight{s}")),
        prop::sample::select(vec!["token_embd.weight", "output.weight", "output_norm.weight", "blk.x.attn_q.weight.lora_a", "blk.0.weight.lora_a"])
            .prop_map(str::to_owned),
        "[a-z._0-9]{0,16}",
    ]
}

/// One hand-made metadata entry: a type tag and the bytes that follow it (possibly wrong).
#[derive(Debug, Clone)]
pub struct RawMeta {
    pub key: String,
    pub kind: u32,
    pub payload: Vec<u8>,
}

/// One hand-made tensor description.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    pub n_dims: u32,
    pub dims: Vec<u64>,
    pub dtype: u32,
    pub offset: u64,
}

/// A file with a hand-made header: any version, counts that may lie, entries of any type.
#[derive(Debug, Clone)]
pub struct Crafted {
    pub version: u32,
    pub tensor_count: Option<u64>,
    pub kv_count: Option<u64>,
    pub meta: Vec<RawMeta>,
    pub tensors: Vec<RawTensor>,
    pub data: Vec<u8>,
}

pub fn string_payload(s: &str) -> Vec<u8> {
    [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat()
}

/// A metadata entry: mostly well formed (so that the reader gets past it), sometimes with a
/// length that lies, an unknown type or arrays nested deeper than a reader should follow.
pub fn raw_meta() -> impl Strategy<Value = RawMeta> {
    let key = prop_oneof![3 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), 1 => "[a-z.]{0,12}"];
    let well_formed = prop_oneof![
        prop::sample::select(vec!["adapter", "lora", "llama"]).prop_map(|s| (8u32, string_payload(s))),
        any::<f32>().prop_map(|x| (6u32, x.to_le_bytes().to_vec())),
        extreme().prop_map(|v| (4u32, (v as u32).to_le_bytes().to_vec())),
        extreme().prop_map(|v| (10u32, v.to_le_bytes().to_vec())),
        extreme().prop_map(|v| (5u32, (v as i32).to_le_bytes().to_vec())),
    ];
    let malformed = prop_oneof![
        (extreme(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(n, b)| (8u32, [&n.to_le_bytes()[..], &b].concat())),
        (0u32..14, extreme(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(t, n, b)| (9u32, [&t.to_le_bytes()[..], &n.to_le_bytes()[..], &b].concat())),
        (1usize..80).prop_map(|depth| {
            let mut b = Vec::new();
            for _ in 0..depth {
                b.extend(9u32.to_le_bytes());
                b.extend(1u64.to_le_bytes());
            }
            b.extend(4u32.to_le_bytes());
            b.extend(0u64.to_le_bytes());
            (9u32, b)
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..8)),
    ];
    (key, prop_oneof![8 => well_formed, 1 => malformed]).prop_map(|(key, (kind, payload))| RawMeta { key, kind, payload })
}

/// The well-formed metadata of an adapter, which the loaders look for first.
pub fn adapter_basics() -> Vec<RawMeta> {
    let s = |key: &str, v: &str| RawMeta { key: key.into(), kind: 8, payload: string_payload(v) };
    vec![
        s("general.type", "adapter"),
        s("adapter.type", "lora"),
        s("general.architecture", "llama"),
        RawMeta { key: "adapter.lora.alpha".into(), kind: 6, payload: 4.0f32.to_le_bytes().to_vec() },
    ]
}

/// A tensor description: mostly small F32 shapes at the offsets a writer would choose (`offset`
/// is then `None`), sometimes extreme dimensions, other types or offsets anywhere.
pub fn raw_tensor() -> impl Strategy<Value = RawTensor> {
    let dim = prop_oneof![12 => 1u64..9, 1 => Just(0u64), 2 => extreme()];
    let dtype = prop_oneof![8 => Just(0u32), 2 => prop::sample::select(vec![1u32, 2, 3, 6, 8, 9, 12, 14, 15, 30]), 1 => any::<u32>()];
    let offset = prop_oneof![6 => Just(None), 1 => extreme().prop_map(Some)];
    let n_dims = prop_oneof![8 => Just(None), 1 => (0u32..9).prop_map(Some)];
    (tensor_name(), prop::collection::vec(dim, 1..4), n_dims, dtype, offset).prop_map(|(name, dims, n_dims, dtype, offset)| RawTensor {
        name,
        n_dims: n_dims.unwrap_or(dims.len() as u32),
        dims,
        dtype,
        offset: offset.unwrap_or(u64::MAX),
    })
}

pub fn crafted() -> impl Strategy<Value = Crafted> {
    (
        prop_oneof![8 => Just(3u32), 2 => Just(2u32), 1 => Just(1u32), 1 => any::<u32>()],
        prop_oneof![8 => Just(None), 1 => extreme().prop_map(Some)],
        prop_oneof![8 => Just(None), 1 => extreme().prop_map(Some)],
        (any::<bool>(), prop::collection::vec(raw_meta(), 0..5)),
        prop::collection::vec(raw_tensor(), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(version, tensor_count, kv_count, (basics, extra), mut tensors, tail)| {
            // Tensors without a chosen offset are laid out one after the other, as a writer
            // would, with data for each (garbage bytes are as good as any for a reader).
            let mut next = 0u64;
            for t in &mut tensors {
                if t.offset == u64::MAX {
                    t.offset = next;
                    let bytes = t.dims.iter().try_fold(4u64, |n, &d| n.checked_mul(d)).filter(|b| *b <= 4096).unwrap_or(0);
                    next = (next + bytes).div_ceil(32) * 32;
                }
            }
            let mut data: Vec<u8> = (0..next).map(|i| (i * 37 % 251) as u8).collect();
            data.extend(tail);
            let meta = if basics { adapter_basics().into_iter().chain(extra).collect() } else { extra };
            Crafted { version, tensor_count, kv_count, meta, tensors, data }
        })
}

/// A file every reader must accept: GGUF v3, true counts, an adapter's metadata and small U32
/// entries, one to four F32 tensors of small shapes laid out one after the other with their
/// data, and nothing after the last tensor's data but padding.
pub fn well_formed() -> impl Strategy<Value = Crafted> {
    let entry = ("x[a-z]{0,7}\\.[a-z_]{1,12}", any::<u32>()).prop_map(|(key, v)| RawMeta { key, kind: 4, payload: v.to_le_bytes().to_vec() });
    let tensor = ("[a-z]{1,6}\\.weight", prop::collection::vec(1u64..9, 1..4));
    (prop::collection::vec(entry, 0..4), prop::collection::vec(tensor, 1..5)).prop_map(|(extra, shapes)| {
        let mut next = 0u64;
        let mut tensors = Vec::new();
        for (i, (name, dims)) in shapes.into_iter().enumerate() {
            let bytes = 4 * dims.iter().product::<u64>();
            tensors.push(RawTensor { name: format!("{i}.{name}"), n_dims: dims.len() as u32, dims, dtype: 0, offset: next });
            next = (next + bytes).div_ceil(32) * 32;
        }
        let data = (0..next).map(|i| (i * 37 % 251) as u8).collect();
        Crafted { version: 3, tensor_count: None, kv_count: None, meta: adapter_basics().into_iter().chain(extra).collect(), tensors, data }
    })
}

/// Where the last tensor's data ends in `write_crafted(c)`: a file cut before it lacks data.
pub fn data_end(c: &Crafted) -> usize {
    let header = write_crafted(&Crafted { data: Vec::new(), ..c.clone() }).len();
    let end = c.tensors.iter().map(|t| t.offset + 4 * t.dims.iter().product::<u64>()).max().unwrap_or(0);
    header + end as usize
}

/// The bytes of `c`: the header as described (lies included), padding to 32, then `data`.
pub fn write_crafted(c: &Crafted) -> Vec<u8> {
    let v1 = c.version == 1;
    let mut w = b"GGUF".to_vec();
    w.extend(c.version.to_le_bytes());
    let len = |w: &mut Vec<u8>, n: u64| if v1 { w.extend((n as u32).to_le_bytes()) } else { w.extend(n.to_le_bytes()) };
    len(&mut w, c.tensor_count.unwrap_or(c.tensors.len() as u64));
    len(&mut w, c.kv_count.unwrap_or(c.meta.len() as u64));
    for m in &c.meta {
        len(&mut w, m.key.len() as u64);
        w.extend(m.key.as_bytes());
        w.extend(m.kind.to_le_bytes());
        w.extend(&m.payload);
    }
    for t in &c.tensors {
        len(&mut w, t.name.len() as u64);
        w.extend(t.name.as_bytes());
        w.extend(t.n_dims.to_le_bytes());
        for d in &t.dims {
            len(&mut w, *d);
        }
        w.extend(t.dtype.to_le_bytes());
        w.extend(t.offset.to_le_bytes());
    }
    while !w.len().is_multiple_of(32) {
        w.push(0);
    }
    w.extend(&c.data);
    w
}

