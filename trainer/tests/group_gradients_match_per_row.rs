//! The adapter's gradient through `BaseModel::group_logprobs` equals the per-row forward's
//! (`completion_logprobs`): the shared prompt's keys and values stay in the graph, so every
//! adapter tensor — including those that only reach the loss through the prompt's keys and
//! values — gets the same gradient. Checked on the tiny random llama in f64 and f32 and on the
//! real SmolLM2 in f32, with a randomized `B` so that `A`'s gradient is non-zero.

mod common;

use autodidact_trainer::{default_model_path, BaseModel, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::{DType, Device, Tensor};

/// The worst, over the adapter's tensors, of `max |g_shared − g_row| / max |g_row|`.
fn worst_relative_error(model: &BaseModel, prompt: &[u32], completions: &[Vec<u32>], seed: u64) -> f64 {
    let c = model.config.clone();
    let mut rng = Rng::new(seed);
    let lora = LoraConfig { rank: 4, alpha: 8.0, targets: Target::ALL.to_vec() };
    let adapter = LoraAdapter::init(lora, c.n_layer, |t| c.shape_of(t), model.dtype(), &mut rng).unwrap();
    adapter.randomize_b(0.1, &mut rng).unwrap();
    let refs: Vec<&[u32]> = completions.iter().map(|c| &c[..]).collect();
    let seqs: Vec<(&[u32], &[u32])> = refs.iter().map(|c| (prompt, *c)).collect();
    let n: usize = completions.iter().map(|c| c.len()).sum();
    // A loss with a different weight per token, so that each token's gradient counts.
    let w = Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f64>>(), n, &Device::Cpu).unwrap().to_dtype(model.dtype()).unwrap();
    let grads = |lp: Tensor| (lp * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let g_row = grads(model.completion_logprobs(&seqs, Some(&adapter)).unwrap());
    let g_shared = grads(model.group_logprobs(prompt, &refs, Some(&adapter)).unwrap());
    let mut worst: f64 = 0.0;
    for (name, var) in adapter.named_vars() {
        let get = |g: &candle_core::backprop::GradStore| -> Vec<f64> {
            let t = g.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient (the graph is cut)"));
            t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
        };
        let (a, b) = (get(&g_shared), get(&g_row));
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name}: zero gradient");
        let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        worst = worst.max(d / scale);
    }
    worst
}

#[test]
fn group_gradients_match_per_row_on_the_tiny_model() {
    let prompt = vec![3, 1, 4, 1, 5, 9, 2, 6];
    let completions = vec![vec![5, 3, 5], vec![8, 9, 7, 9, 3], vec![2], vec![3, 8, 4, 6]];
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-3)] {
        let model = common::tiny_model(&format!("group-grad-{dtype:?}"), dtype);
        let worst = worst_relative_error(&model, &prompt, &completions, 4);
        println!("{dtype:?}: worst relative gradient error {worst:.2e}");
        assert!(worst < tol, "{dtype:?}: {worst} ≥ {tol}");
    }
}

#[test]
fn group_gradients_match_per_row_on_smollm2() {
    let model = BaseModel::load_gguf(&default_model_path(), DType::F32).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng::new(12);
    let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| 1000 + (rng.next_u64() % 20000) as u32).collect() };
    let prompt = tok(20);
    let completions = vec![tok(6), tok(10), tok(3)];
    let worst = worst_relative_error(&model, &prompt, &completions, 8);
    println!("SmolLM2: worst relative gradient error {worst:.2e}");
    assert!(worst < 1e-3, "{worst}");
}
