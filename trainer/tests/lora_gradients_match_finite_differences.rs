//! The backward passes of the custom ops, the LoRA path and the GRPO loss agree with central
//! finite differences in f64 on a tiny random llama (2 layers, GQA, right-padded batch).

mod common;

use autodidact_trainer::loss::{weighted_loss, TokenTerms};
use autodidact_trainer::{LoraAdapter, LoraConfig, LossConfig, LossType, Rng, Target};
use candle_core::{DType, Device, Tensor, Var};

fn set_elem(v: &Var, i: usize, x: f64) {
    let mut data = v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    data[i] = x;
    v.set(&Tensor::from_vec(data, v.shape(), &Device::Cpu).unwrap()).unwrap();
}

fn get_elem(v: &Var, i: usize) -> f64 {
    v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap()[i]
}

#[test]
fn lora_gradients_match_finite_differences() {
    let model = common::tiny_model("fd", DType::F64);
    let c = model.config.clone();
    let mut rng = Rng::new(3);
    let lora = LoraConfig { rank: 3, alpha: 6.0, targets: Target::ALL.to_vec() };
    let adapter = LoraAdapter::init(lora, c.n_layer, |t| c.shape_of(t), DType::F64, &mut rng).unwrap();
    // B starts at zero; make it non-zero so that A's gradient is too.
    for p in &adapter.pairs {
        let n = p.b.elem_count();
        let b: Vec<f64> = (0..n).map(|_| 0.3 * rng.normal()).collect();
        p.b.set(&Tensor::from_vec(b, p.b.shape(), &Device::Cpu).unwrap()).unwrap();
    }
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = vec![(vec![1, 5, 9], vec![4, 2, 30, 7]), (vec![11, 3], vec![8, 8])];
    let seq_refs: Vec<(&[u32], &[u32])> = seqs.iter().map(|(p, c)| (&p[..], &c[..])).collect();
    let n_tok = 6;
    let cfg = LossConfig { loss_type: LossType::Grpo, beta: 0.05, epsilon: 0.2, epsilon_high: 0.28, ..LossConfig::default() };
    // Fixed old and reference log-probs near the current ones, so some ratios are clipped and some not.
    let base_lp = model.completion_logprobs(&seq_refs, Some(&adapter)).unwrap().to_vec1::<f64>().unwrap();
    let terms: Vec<TokenTerms> = (0..n_tok)
        .map(|k| TokenTerms {
            advantage: [0.7, -1.2, 0.4, 1.5, -0.3, 0.9][k],
            old_logp: Some(base_lp[k] + [0.01, -0.3, 0.02, 0.4, -0.01, 0.0][k]),
            ref_logp: base_lp[k] + 0.1,
        })
        .collect();
    let weights = vec![0.25, 0.25, 0.25, 0.25, 0.5, 0.5];
    let loss_of = |a: &LoraAdapter| -> (Tensor, f64) {
        let lp = model.completion_logprobs(&seq_refs, Some(a)).unwrap();
        let (l, _) = weighted_loss(&cfg, &lp, &weights, &terms).unwrap();
        let v = l.to_scalar::<f64>().unwrap();
        (l, v)
    };
    let (loss, _) = loss_of(&adapter);
    let grads = loss.backward().unwrap();

    // Several parameters across layers and targets, in A and in B.
    let picks: [(usize, Target, bool, usize); 8] = [
        (0, Target::Q, true, 5),
        (0, Target::K, false, 3),
        (0, Target::V, true, 17),
        (1, Target::O, false, 20),
        (1, Target::Gate, true, 9),
        (1, Target::Up, false, 40),
        (0, Target::Down, true, 30),
        (1, Target::Q, false, 11),
    ];
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for (layer, target, is_a, i) in picks {
        let p = adapter.get(layer, target).unwrap();
        let var = if is_a { &p.a } else { &p.b };
        let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[i];
        let x0 = get_elem(var, i);
        set_elem(var, i, x0 + h);
        let up = loss_of(&adapter).1;
        set_elem(var, i, x0 - h);
        let down = loss_of(&adapter).1;
        set_elem(var, i, x0);
        let numeric = (up - down) / (2.0 * h);
        let rel = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-8);
        println!("blk.{layer}.{target:?}.{} [{i}]: analytic {analytic:.10e} numeric {numeric:.10e} rel {rel:.2e}", if is_a { "a" } else { "b" });
        assert!(analytic.abs() > 1e-9, "gradient of {layer}/{target:?} is zero: the graph is cut");
        assert!(rel < 1e-5, "blk.{layer}.{target:?}: analytic {analytic} vs numeric {numeric} (rel {rel})");
        worst = worst.max(rel);
    }
    println!("worst relative error {worst:.2e}");
}
