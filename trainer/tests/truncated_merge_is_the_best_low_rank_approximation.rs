//! Above the rank cap, the merge is the truncated SVD of `ΔW_past + ΔW_delta`, computed from the
//! factors: its Frobenius error equals the tail of the singular values (Eckart–Young), on a
//! case built with known singular values and on a random one checked against the SVD of the
//! materialised matrix. The small QR and SVD it rests on reconstruct their input.

use autodidact_trainer::linalg::{qr, svd, Mat};
use autodidact_trainer::{LlamaConfig, LoraAdapter, LoraConfig, Rng, Target};
use candle_core::{DType, Device, Tensor, Var};

fn random(rng: &mut Rng, r: usize, c: usize) -> Mat {
    Mat::from_vec(r, c, (0..r * c).map(|_| rng.normal()).collect())
}

fn set(v: &Var, m: &Mat) {
    v.set(&Tensor::from_vec(m.data.clone(), (m.rows, m.cols), &Device::Cpu).unwrap()).unwrap();
}

fn mat(v: &Var) -> Mat {
    let (r, c) = v.as_tensor().dims2().unwrap();
    Mat::from_vec(r, c, v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap())
}

fn sub(x: &Mat, y: &Mat) -> Mat {
    Mat::from_vec(x.rows, x.cols, x.data.iter().zip(&y.data).map(|(a, b)| a - b).collect())
}

/// `ΔW` of the (only) Q pair of layer 0.
fn delta_w(ad: &LoraAdapter) -> Mat {
    let p = ad.get(0, Target::Q).unwrap();
    let mut m = mat(&p.b).matmul(&mat(&p.a));
    m.data.iter_mut().for_each(|x| *x *= ad.config.scale());
    m
}

fn q_adapter(rank: usize, alpha: f32, b: &Mat, a: &Mat) -> LoraAdapter {
    let c = LlamaConfig::tiny();
    let ad = LoraAdapter::init(LoraConfig { rank, alpha, targets: vec![Target::Q] }, 1, |t| c.shape_of(t), DType::F64, &mut Rng::new(0))
        .unwrap();
    let p = ad.get(0, Target::Q).unwrap();
    set(&p.a, a);
    set(&p.b, b);
    ad
}

#[test]
fn qr_and_svd_reconstruct_their_input() {
    let mut rng = Rng::new(4);
    for (m, n) in [(9, 4), (4, 9), (6, 6)] {
        let a = random(&mut rng, m, n);
        let (q, r) = qr(&a);
        assert!(sub(&q.matmul(&r), &a).frobenius() < 1e-12);
        let qtq = q.t().matmul(&q);
        for i in 0..qtq.rows {
            for j in 0..qtq.cols {
                assert!((qtq.at(i, j) - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let (u, s, v) = svd(&a);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
        let mut us = u.clone();
        for i in 0..us.rows {
            for j in 0..s.len() {
                us.data[i * s.len() + j] *= s[j];
            }
        }
        assert!(sub(&us.matmul(&v.t()), &a).frobenius() < 1e-10);
    }
}

#[test]
fn truncated_merge_is_the_best_low_rank_approximation() {
    let c = LlamaConfig::tiny();
    let (n_out, n_in) = c.shape_of(Target::Q);
    let mut rng = Rng::new(8);
    // Known singular values: ΔW_past + ΔW_delta = U diag(σ) Vᵀ, σ = 8, 7, …, 1.
    let (u, _) = qr(&random(&mut rng, n_out, 8));
    let (v, _) = qr(&random(&mut rng, n_in, 8));
    let sigma = [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    let cols = |m: &Mat, lo: usize, scale: &[f64]| {
        Mat::from_vec(m.rows, 4, (0..m.rows).flat_map(|i| (0..4).map(move |j| m.at(i, lo + j) * scale[j])).collect())
    };
    let past = q_adapter(4, 4.0, &cols(&u, 0, &sigma[..4]), &cols(&v, 0, &[1.0; 4]).t()); // scale 1
    let half: Vec<f64> = sigma[4..].iter().map(|s| s / 2.0).collect();
    let delta = q_adapter(4, 8.0, &cols(&u, 4, &half), &cols(&v, 4, &[1.0; 4]).t()); // scale 2
    let total = Mat::from_vec(n_out, n_in, delta_w(&past).data.iter().zip(&delta_w(&delta).data).map(|(a, b)| a + b).collect());
    for cap in [8, 5, 2] {
        let merged = LoraAdapter::merge(&past, &delta, cap).unwrap();
        assert_eq!(merged.config.rank, cap);
        let err = sub(&delta_w(&merged), &total).frobenius();
        let tail = sigma[cap..].iter().map(|s| s * s).sum::<f64>().sqrt();
        println!("cap {cap}: error {err:.12} tail {tail:.12}");
        assert!((err - tail).abs() < 1e-9, "cap {cap}: {err} vs {tail}");
    }

    // A random case: the error equals the tail of the materialised matrix's singular values.
    let past = q_adapter(5, 10.0, &random(&mut rng, n_out, 5), &random(&mut rng, 5, n_in));
    let delta = q_adapter(4, 2.0, &random(&mut rng, n_out, 4), &random(&mut rng, 4, n_in));
    let total = Mat::from_vec(n_out, n_in, delta_w(&past).data.iter().zip(&delta_w(&delta).data).map(|(a, b)| a + b).collect());
    let (_, s, _) = svd(&total);
    for cap in [6, 3] {
        let err = sub(&delta_w(&LoraAdapter::merge(&past, &delta, cap).unwrap()), &total).frobenius();
        let tail = s[cap..].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((err - tail).abs() < 1e-8 * s[0], "cap {cap}: {err} vs {tail}");
    }
}
