//! The ELLA penalty `λ‖ΔW ⊙ W_past‖²_F` is exactly zero when the new update and the past one
//! touch disjoint entries of every matrix (orthogonal in the element-wise sense), and positive
//! as soon as they share entries; it equals the value computed on the materialised matrices.

use autodidact_trainer::consolidation::penalty;
use autodidact_trainer::{Consolidation, ConsolidationKind, LlamaConfig, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::{DType, Device, Tensor, Var};

fn random(rng: &mut Rng, r: usize, c: usize) -> Vec<f64> {
    (0..r * c).map(|_| rng.normal()).collect()
}

fn set(v: &Var, data: Vec<f64>) {
    v.set(&Tensor::from_vec(data, v.shape(), &Device::Cpu).unwrap()).unwrap();
}

/// An adapter whose `B` rows outside `rows` are zero, so `ΔW` lives in those rows only.
fn adapter_on_rows(seed: u64, rank: usize, alpha: f32, rows: impl Fn(usize, usize) -> bool) -> LoraAdapter {
    let c = LlamaConfig::tiny();
    let mut rng = Rng::new(seed);
    let ad = LoraAdapter::init(LoraConfig { rank, alpha, targets: Target::ALL.to_vec() }, c.n_layer, |t| c.shape_of(t), DType::F64, &mut rng)
        .unwrap();
    for p in &ad.pairs {
        let (n_out, _) = c.shape_of(p.target);
        let mut b = random(&mut rng, n_out, rank);
        for i in 0..n_out {
            if !rows(i, n_out) {
                b[i * rank..(i + 1) * rank].iter_mut().for_each(|x| *x = 0.0);
            }
        }
        set(&p.b, b);
        let (_, n_in) = c.shape_of(p.target);
        set(&p.a, random(&mut rng, rank, n_in));
    }
    ad
}

fn materialised(new: &LoraAdapter, past: &LoraAdapter, lambda: f64) -> f64 {
    let mut total = 0.0;
    for p in &new.pairs {
        let q = past.get(p.layer, p.target).unwrap();
        let dw = (p.b.as_tensor().matmul(p.a.as_tensor()).unwrap() * new.config.scale()).unwrap();
        let wp = (q.b.as_tensor().matmul(q.a.as_tensor()).unwrap() * past.config.scale()).unwrap();
        total += (dw * wp).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    }
    lambda * total
}

#[test]
fn ella_penalty_vanishes_on_disjoint_supports() {
    let ella = Consolidation { kind: ConsolidationKind::Ella, lambda: 10.0 };
    let past = adapter_on_rows(1, 3, 6.0, |i, n| i < n / 2);
    // Disjoint: the new update lives in the other half of the rows; its rank differs too.
    let new = adapter_on_rows(2, 2, 4.0, |i, n| i >= n / 2);
    let p = penalty(&ella, &new, Some(&past)).unwrap();
    assert_eq!(p.value, 0.0, "disjoint supports");
    assert!(p.grads.iter().flatten().all(|g| *g == 0.0), "and no gradient");

    // Overlapping by one row: positive, and equal to the penalty on the materialised matrices.
    let overlap = adapter_on_rows(2, 2, 4.0, |i, n| i + 1 >= n / 2);
    let p = penalty(&ella, &overlap, Some(&past)).unwrap();
    assert!(p.value > 0.0, "{}", p.value);
    let want = materialised(&overlap, &past, 10.0);
    assert!((p.value - want).abs() <= 1e-12 * want, "{} vs {want}", p.value);
    assert!(p.grads.iter().flatten().any(|g| *g != 0.0));
}
