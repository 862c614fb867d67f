//! `BaseModel::group_logprobs` (the shared prompt run once, the completions attending to its
//! keys and values) gives the same per-token log-probs, in the same order, as
//! `completion_logprobs` on `(prompt, completion)` rows: on the tiny random llama (GQA, f64 and
//! f32, with and without a random adapter, edge lengths) and on the real SmolLM2.

mod common;

use autodidact_trainer::{default_model_path, BaseModel, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::{DType, Tensor};

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// Max |Δ| between the shared-prompt and the per-row log-probs of one group.
fn max_delta(model: &BaseModel, prompt: &[u32], completions: &[Vec<u32>], adapter: Option<&LoraAdapter>) -> f64 {
    let refs: Vec<&[u32]> = completions.iter().map(|c| &c[..]).collect();
    let seqs: Vec<(&[u32], &[u32])> = refs.iter().map(|c| (prompt, *c)).collect();
    let per_row = vec(&model.completion_logprobs(&seqs, adapter).unwrap());
    let shared = vec(&model.group_logprobs(prompt, &refs, adapter).unwrap());
    assert_eq!(per_row.len(), shared.len());
    assert_eq!(per_row.len(), completions.iter().map(|c| c.len()).sum::<usize>());
    per_row.iter().zip(&shared).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

fn adapter(model: &BaseModel, seed: u64) -> LoraAdapter {
    let c = model.config.clone();
    let mut rng = Rng::new(seed);
    let lora = LoraConfig { rank: 4, alpha: 8.0, targets: Target::ALL.to_vec() };
    let a = LoraAdapter::init(lora, c.n_layer, |t| c.shape_of(t), model.dtype(), &mut rng).unwrap();
    a.randomize_b(0.2, &mut rng).unwrap();
    a
}

#[test]
fn group_logprobs_match_per_row_on_the_tiny_model() {
    let cases: Vec<(Vec<u32>, Vec<Vec<u32>>)> = vec![
        (vec![3, 1, 4, 1, 5, 9, 2], vec![vec![6, 5, 3, 5], vec![8], vec![9, 7, 9, 3, 2, 3], vec![8, 4]]),
        (vec![11], vec![vec![2]]),
        (vec![30, 2], vec![vec![36, 0, 1], vec![36, 0, 1]]),
    ];
    for dtype in [DType::F64, DType::F32] {
        let model = common::tiny_model(&format!("group-lp-{dtype:?}"), dtype);
        let lora = adapter(&model, 5);
        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
        for (prompt, completions) in &cases {
            for a in [None, Some(&lora)] {
                let d = max_delta(&model, prompt, completions, a);
                println!("{dtype:?} prompt {} completions {} adapter {}: max |Δ| {d:.2e}", prompt.len(), completions.len(), a.is_some());
                assert!(d < tol, "{dtype:?}: max |Δ| {d} ≥ {tol}");
            }
        }
    }
}

#[test]
fn group_logprobs_match_per_row_on_smollm2() {
    let model = BaseModel::load_gguf(&default_model_path(), DType::F32).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng::new(9);
    let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| 1000 + (rng.next_u64() % 20000) as u32).collect() };
    let prompt = tok(24);
    let completions = vec![tok(9), tok(3), tok(12)];
    let lora = adapter(&model, 6);
    for a in [None, Some(&lora)] {
        let d = max_delta(&model, &prompt, &completions, a);
        println!("SmolLM2, adapter {}: max |Δ| {d:.2e}", a.is_some());
        assert!(d < 1e-4, "max |Δ| {d}");
    }
}
