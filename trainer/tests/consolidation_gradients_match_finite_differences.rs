//! The gradients of the ELLA and O-LoRA penalties agree with central finite differences in f64,
//! on adapters of the tiny llama's shapes (past and new adapter of different ranks).

use autodidact_trainer::consolidation::penalty;
use autodidact_trainer::{Consolidation, ConsolidationKind, LlamaConfig, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::{DType, Device, Tensor, Var};

fn adapter(seed: u64, rank: usize, alpha: f32) -> LoraAdapter {
    let c = LlamaConfig::tiny();
    let mut rng = Rng::new(seed);
    let ad = LoraAdapter::init(LoraConfig { rank, alpha, targets: Target::ALL.to_vec() }, c.n_layer, |t| c.shape_of(t), DType::F64, &mut rng)
        .unwrap();
    ad.randomize_b(0.5, &mut rng).unwrap();
    ad
}

fn nudge(v: &Var, i: usize, x: f64) {
    let mut data = v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    data[i] = x;
    v.set(&Tensor::from_vec(data, v.shape(), &Device::Cpu).unwrap()).unwrap();
}

fn check(kind: ConsolidationKind, lambda: f64) {
    let past = adapter(11, 3, 6.0);
    let new = adapter(12, 2, 4.0);
    let c = Consolidation { kind, lambda };
    let p = penalty(&c, &new, Some(&past)).unwrap();
    assert!(p.value > 0.0);
    let vars = new.named_vars();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    let mut checked = 0;
    // A few entries of A and B in several matrices.
    for (k, (name, var)) in vars.iter().enumerate() {
        if k % 3 != 0 {
            continue;
        }
        for i in [0, var.elem_count() / 2, var.elem_count() - 1] {
            let analytic = p.grads[k][i];
            let x0 = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap()[i];
            nudge(var, i, x0 + h);
            let up = penalty(&c, &new, Some(&past)).unwrap().value;
            nudge(var, i, x0 - h);
            let down = penalty(&c, &new, Some(&past)).unwrap().value;
            nudge(var, i, x0);
            let numeric = (up - down) / (2.0 * h);
            let err = (analytic - numeric).abs() / (analytic.abs() + numeric.abs()).max(1e-6);
            assert!(err < 1e-5, "{kind:?} {name}[{i}]: analytic {analytic} numeric {numeric}");
            if name.ends_with("lora_b") && kind == ConsolidationKind::OLora {
                assert_eq!(analytic, 0.0, "O-LoRA does not depend on B");
            }
            worst = worst.max(err);
            checked += 1;
        }
    }
    assert!(vars.iter().enumerate().any(|(k, (n, _))| n.ends_with("lora_a") && p.grads[k].iter().any(|g| *g != 0.0)));
    println!("{kind:?}: {checked} entries, worst relative error {worst:.2e}");
}

#[test]
fn ella_gradient_matches_finite_differences() {
    check(ConsolidationKind::Ella, 3.0);
}

#[test]
fn olora_gradient_matches_finite_differences() {
    check(ConsolidationKind::OLora, 0.7);
}
