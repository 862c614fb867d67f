//! Property tests of the GGUF readers: the adapter loader (`LoraAdapter::load_gguf`) and the
//! base-model loader (`BaseModel::load_gguf`) on files that are truncated, have bytes of their
//! header flipped or overwritten with extreme values, carry rewritten metadata (values of other
//! types, `general.alignment = 0`, absurd layer and head counts) or hand-made headers (huge
//! dimensions, unknown types, offsets past the end), or are garbage. Each gives a value or an
//! error that names the file; never a panic. What loads is usable: the adapter fits a model
//! or is refused, and a loaded model runs a forward or fails with an error.
//!
//! A huge declared length must be refused before anything is allocated for it: this test
//! binary's allocator (`tests/fuzz_common/gguf.rs`, with the hand-made headers) refuses any
//! single allocation above 256 MiB, which aborts the test with `memory allocation of N bytes
//! failed`. `PROPTEST_CASES` scales the run (`make fuzz`).

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;
#[path = "../../tests/fuzz_common/gguf.rs"]
mod gguf;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use autodidact_trainer::{BaseModel, LlamaConfig, LoraAdapter, LoraConfig, Rng, Target, write_random_llama_gguf};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use proptest::sample::Index;

use gguf::{Crafted, KEYS, RawTensor, corrupt, corruption, crafted, extreme, tensor_name, write_crafted};

/// Refuses absurd allocations: a declared length a loader trusts aborts the test.
#[global_allocator]
static ALLOCATOR: gguf::Capped = gguf::Capped;

/// A smaller model than `LlamaConfig::tiny`, so that mutated copies are quick to write.
fn small() -> LlamaConfig {
    LlamaConfig { architecture: "llama".into(), n_layer: 1, n_embd: 8, n_ff: 8, n_head: 2, n_head_kv: 1, vocab: 5, rms_eps: 1e-5, rope_base: 10000.0 }
}

/// Valid files written by the trainer's own writers, and the model the adapter fits.
struct Fixture {
    dir: PathBuf,
    adapter: Vec<u8>,
    model: Vec<u8>,
    base: BaseModel,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("autodidact-fuzz-gguf-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = small();
        let mut rng = Rng::new(1);
        let lora = LoraConfig { rank: 2, alpha: 4.0, targets: vec![Target::Q, Target::V, Target::Down] };
        let ad = LoraAdapter::init(lora, cfg.n_layer, |t| cfg.shape_of(t), DType::F32, &mut rng).unwrap();
        ad.randomize_b(0.1, &mut rng).unwrap();
        ad.export_gguf(&dir.join("adapter.gguf"), "llama").unwrap();
        write_random_llama_gguf(&dir.join("model.gguf"), &cfg, 2).unwrap();
        let base = BaseModel::load_gguf(&dir.join("model.gguf"), DType::F32).unwrap();
        let adapter = std::fs::read(dir.join("adapter.gguf")).unwrap();
        let model = std::fs::read(dir.join("model.gguf")).unwrap();
        Fixture { dir, adapter, model, base }
    }

    fn file(&self, model: bool) -> &[u8] {
        if model { &self.model } else { &self.adapter }
    }

    /// Writes `bytes` to this test's case file and loads it both ways.
    fn check(&self, bytes: &[u8]) -> Result<(Option<String>, Option<String>), TestCaseError> {
        let path = self.dir.join("case.gguf");
        std::fs::write(&path, bytes).unwrap();
        load_both(&path, &self.base)
    }
}

/// Loads `path` as an adapter and as a model; returns the errors. An error must name the file;
/// a loaded adapter must have one rank, and fit the base model or be refused by it; a loaded
/// model must run (or refuse) a forward.
fn load_both(path: &Path, base: &BaseModel) -> Result<(Option<String>, Option<String>), TestCaseError> {
    let shown = path.display().to_string();
    let adapter = match LoraAdapter::load_gguf(path, DType::F32) {
        Ok((a, _)) => {
            for p in &a.pairs {
                let (ra, _) = p.a.as_tensor().dims2().unwrap();
                let (_, rb) = p.b.as_tensor().dims2().unwrap();
                prop_assert!(ra == a.config.rank && rb == a.config.rank, "{}: ranks {ra}, {rb} in an adapter of rank {}", p.base_name(), a.config.rank);
            }
            let mut m = base.clone();
            if m.set_past(Some(&a)).is_ok() {
                let _ = m.hidden(&[vec![0, 1, 4]], None);
            }
            None
        }
        Err(e) => {
            let e = e.to_string();
            prop_assert!(e.contains(&shown), "the adapter error does not name the file: {e}");
            Some(e)
        }
    };
    let model = match BaseModel::load_gguf(path, DType::F32) {
        Ok(m) => {
            if m.config.vocab > 0 {
                let last = (m.config.vocab - 1) as u32;
                let _ = m.hidden(&[vec![0, last, 0]], None);
            }
            None
        }
        Err(e) => {
            let e = e.to_string();
            prop_assert!(e.contains(&shown), "the model error does not name the file: {e}");
            Some(e)
        }
    };
    Ok((adapter, model))
}

/// Where the tensor data starts: everything before is header and metadata.
fn header_len(bytes: &[u8]) -> usize {
    gguf_file::Content::read(&mut Cursor::new(bytes)).unwrap().tensor_data_offset as usize
}

#[test]
fn truncated_files_are_errors() {
    let f = Fixture::new("truncated");
    fuzz_common::check("gguf_truncated", 1000, (any::<bool>(), any::<Index>()), |(model, cut)| {
        let bytes = f.file(model);
        let (a, m) = f.check(&bytes[..cut.index(bytes.len())])?;
        prop_assert!(a.is_some() && m.is_some(), "a truncated file loaded");
        Ok(())
    });
}

#[test]
fn corrupted_headers_are_values_or_errors() {
    let f = Fixture::new("headers");
    let input = (any::<bool>(), prop::collection::vec(corruption(), 1..6));
    fuzz_common::check("gguf_corrupted_headers", 1000, input, |(model, corruptions)| {
        let mut bytes = f.file(model).to_vec();
        let header = header_len(&bytes);
        corrupt(&mut bytes, header, corruptions);
        f.check(&bytes)?;
        Ok(())
    });
}

#[test]
fn garbage_is_an_error() {
    let f = Fixture::new("garbage");
    let input = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (0u32..=4, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(v, rest)| [b"GGUF".as_slice(), &v.to_le_bytes(), &rest].concat()),
    ];
    fuzz_common::check("gguf_garbage", 1000, input, |bytes| {
        f.check(&bytes)?;
        Ok(())
    });
}

/// A metadata value of any GGUF type.
fn value() -> impl Strategy<Value = gguf_file::Value> {
    use gguf_file::Value as V;
    let scalar = prop_oneof![
        any::<u8>().prop_map(V::U8),
        any::<i8>().prop_map(V::I8),
        any::<u16>().prop_map(V::U16),
        any::<i16>().prop_map(V::I16),
        extreme().prop_map(|v| V::U32(v as u32)),
        extreme().prop_map(|v| V::I32(v as i32)),
        extreme().prop_map(V::U64),
        extreme().prop_map(|v| V::I64(v as i64)),
        any::<f32>().prop_map(V::F32),
        prop_oneof![Just(0.0f64), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), Just(1e-300), any::<f64>()].prop_map(V::F64),
        any::<bool>().prop_map(V::Bool),
        prop_oneof![Just("adapter"), Just("lora"), Just("llama"), Just(""), Just("model")].prop_map(|s| V::String(s.into())),
        any::<String>().prop_map(V::String),
    ];
    prop_oneof![
        4 => scalar,
        1 => prop::collection::vec(extreme(), 0..4).prop_map(|v| V::Array(v.into_iter().map(|x| V::U32(x as u32)).collect())),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    SetMeta(Index, gguf_file::Value),
    RemoveMeta(Index),
    DropTensor(Index),
    RenameTensor(Index, String),
    /// Replace a tensor by an F32 one of this shape (zeros).
    ReshapeTensor(Index, Vec<usize>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), value()).prop_map(|(i, v)| Edit::SetMeta(i, v)),
        1 => any::<Index>().prop_map(Edit::RemoveMeta),
        1 => any::<Index>().prop_map(Edit::DropTensor),
        1 => (any::<Index>(), tensor_name()).prop_map(|(i, n)| Edit::RenameTensor(i, n)),
        1 => (any::<Index>(), prop::collection::vec(0usize..10, 0..4)).prop_map(|(i, d)| Edit::ReshapeTensor(i, d)),
    ]
}

/// A file's metadata and tensors, by name.
type Parts = (Vec<(String, gguf_file::Value)>, Vec<(String, QTensor)>);

/// The metadata and tensors of a valid file, to be edited and written again.
fn parts(bytes: &[u8]) -> Parts {
    let mut r = Cursor::new(bytes);
    let c = gguf_file::Content::read(&mut r).unwrap();
    let mut meta: Vec<_> = c.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let mut names: Vec<&String> = c.tensor_infos.keys().collect();
    names.sort();
    let tensors = names.into_iter().map(|n| (n.clone(), c.tensor(&mut r, n, &Device::Cpu).unwrap())).collect();
    (meta, tensors)
}

#[test]
fn rewritten_metadata_and_tensors_are_values_or_errors() {
    let f = Fixture::new("metadata");
    let originals = [parts(&f.adapter), parts(&f.model)];
    let input = (any::<bool>(), prop::collection::vec(edit(), 1..6));
    fuzz_common::check("gguf_rewritten_metadata", 1000, input, |(model, edits)| {
        let (meta, tensors) = &originals[usize::from(model)];
        let mut meta: Vec<(String, gguf_file::Value)> = meta.clone();
        // Each written tensor: its name, and an original (index into `tensors`) or a fresh one.
        let mut written: Vec<(String, Result<usize, QTensor>)> = tensors.iter().enumerate().map(|(k, t)| (t.0.clone(), Ok(k))).collect();
        for e in edits {
            let n = written.len();
            match e {
                Edit::SetMeta(i, v) => {
                    // Mostly the keys the loaders read; sometimes a new one.
                    let k = i.index(KEYS.len() + 2);
                    let key = KEYS.get(k).map_or_else(|| format!("extra.{k}"), |k| (*k).to_owned());
                    meta.retain(|(name, _)| *name != key);
                    meta.push((key, v));
                }
                Edit::RemoveMeta(i) if !meta.is_empty() => {
                    meta.remove(i.index(meta.len()));
                }
                Edit::DropTensor(i) if n > 0 => {
                    let _ = written.remove(i.index(n));
                }
                Edit::RenameTensor(i, name) if n > 0 && !written.iter().any(|w| w.0 == name) => written[i.index(n)].0 = name,
                Edit::ReshapeTensor(i, dims) if n > 0 => {
                    let count: usize = dims.iter().product();
                    let t = Tensor::from_vec(vec![0.5f32; count], dims.as_slice(), &Device::Cpu).unwrap();
                    if let Ok(q) = QTensor::quantize(&t, GgmlDType::F32) {
                        written[i.index(n)].1 = Err(q);
                    }
                }
                _ => {}
            }
        }
        let ts: Vec<(&str, &QTensor)> = written
            .iter()
            .map(|(name, t)| {
                let q = match t {
                    Ok(k) => &tensors[*k].1,
                    Err(q) => q,
                };
                (name.as_str(), q)
            })
            .collect();
        let md: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &md, &ts).unwrap();
        f.check(out.get_ref())?;
        Ok(())
    });
}

#[test]
fn crafted_headers_are_values_or_errors() {
    let f = Fixture::new("crafted");
    fuzz_common::check("gguf_crafted_headers", 1000, crafted(), |c| {
        f.check(&write_crafted(&c))?;
        Ok(())
    });
}

/// The inputs that panicked inside candle's reader or our loaders before they were guarded.
#[test]
fn regressions_are_errors() {
    let f = Fixture::new("regressions");
    let (meta, tensors) = parts(&f.model);
    let rewrite = |key: &str, value: gguf_file::Value| {
        let mut md: Vec<(&str, &gguf_file::Value)> = meta.iter().filter(|(k, _)| k != key).map(|(k, v)| (k.as_str(), v)).collect();
        md.push((key, &value));
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &md, &ts).unwrap();
        out.into_inner()
    };
    use gguf_file::Value as V;
    for (key, value) in [
        ("general.alignment", V::U32(0)),
        ("llama.block_count", V::U64(u64::MAX)),
        ("llama.block_count", V::U32(u32::MAX)),
        ("llama.attention.head_count", V::U32(0)),
        ("llama.attention.head_count_kv", V::U32(0)),
        ("llama.attention.head_count", V::U32(3)),
        ("llama.embedding_length", V::U32(0)),
    ] {
        let (_, model) = f.check(&rewrite(key, value.clone())).unwrap();
        assert!(model.is_some(), "{key} = {value:?} loaded");
    }
    // A tensor whose dimensions multiply past u64.
    let huge = RawTensor { name: "token_embd.weight".into(), n_dims: 4, dims: vec![1 << 32, 1 << 32, 1 << 32, 1 << 32], dtype: 0, offset: 0 };
    let c = Crafted { version: 3, tensor_count: None, kv_count: None, meta: Vec::new(), tensors: vec![huge], data: vec![0; 64] };
    let (adapter, model) = f.check(&write_crafted(&c)).unwrap();
    assert!(adapter.is_some() && model.is_some());
}
