//! Below the rank cap, `LoraAdapter::merge(past, delta)` is exact: the model with the merged
//! adapter gives the same log-probs as the model with the past frozen inside and the delta on
//! top (pairs adapted by one side only are carried over). The merged adapter has one rank, a
//! scale of 1, and survives a GGUF export and reload.

mod common;

use autodidact_trainer::{BaseModel, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::DType;

fn max_diff(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn merge_is_exact_below_the_rank_cap() {
    let base = common::tiny_model("merge-exact", DType::F32);
    let c = base.config.clone();
    let mut rng = Rng::new(9);
    let past = LoraAdapter::init(LoraConfig { rank: 3, alpha: 6.0, targets: Target::ALL.to_vec() }, c.n_layer, |t| c.shape_of(t), DType::F32, &mut rng)
        .unwrap();
    past.randomize_b(0.3, &mut rng).unwrap();
    let delta_targets = vec![Target::Q, Target::V, Target::Down];
    let delta = LoraAdapter::init(LoraConfig { rank: 2, alpha: 8.0, targets: delta_targets }, c.n_layer, |t| c.shape_of(t), DType::F32, &mut rng)
        .unwrap();
    delta.randomize_b(0.3, &mut rng).unwrap();

    let merged = LoraAdapter::merge(&past, &delta, 5).unwrap();
    assert_eq!((merged.config.rank, merged.config.alpha), (5, 5.0), "rank r_p + r_d, scale 1");
    assert_eq!(merged.pairs.len(), past.pairs.len());
    for p in &merged.pairs {
        assert_eq!((p.a.dims()[0], p.b.dims()[1]), (5, 5), "one rank for every pair");
    }

    let seqs: Vec<(Vec<u32>, Vec<u32>)> = vec![(vec![1, 5, 9], vec![4, 2, 30, 7]), (vec![11, 3], vec![8, 8, 20])];
    let refs: Vec<(&[u32], &[u32])> = seqs.iter().map(|(p, c)| (&p[..], &c[..])).collect();
    let lp = |m: &BaseModel, a: Option<&LoraAdapter>| m.completion_logprobs(&refs, a).unwrap().to_vec1::<f32>().unwrap();
    let mut with_past = base.clone();
    with_past.set_past(Some(&past)).unwrap();
    let separate = lp(&with_past, Some(&delta));
    let together = lp(&base, Some(&merged));
    let d = max_diff(&separate, &together);
    println!("max |Δlogp| separate vs merged: {d:e}");
    assert!(d < 1e-4, "{d}");
    assert!(max_diff(&separate, &lp(&base, None)) > 1e-3, "the adapters do change the model");

    let path = common::scratch("merge-exact").join("merged.gguf");
    merged.export_gguf(&path, &c.architecture).unwrap();
    let (back, arch) = LoraAdapter::load_gguf(&path, DType::F32).unwrap();
    assert_eq!(arch, c.architecture);
    assert_eq!(back.config, merged.config);
    assert_eq!(lp(&base, Some(&back)), together);
}
