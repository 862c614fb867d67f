//! `autodidact trainer parity`: the trainer's f32 log-probs agree with llama.cpp's on the
//! quantized model (the targets: mean |Δ| ≤ 0.1, argmax agreement ≥ 0.95), and an
//! adapter exported by the trainer changes llama.cpp's log-probs the way it changes the
//! trainer's (correlation ≥ 0.98, slope about 1). One text keeps the test short;
//! `autodidact trainer parity` without `--texts` scores all three.

use std::process::Command;

#[test]
fn trainer_logprobs_and_adapter_effects_match_llamacpp() {
    let out = Command::new(env!("CARGO_BIN_EXE_autodidact"))
        .args(["trainer", "parity", "--texts", "1", "--threads", "1", "--random-adapter", "1", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{v}");
    let mean = v["mean_abs_logprob_diff"].as_f64().unwrap();
    let max = v["max_abs_logprob_diff"].as_f64().unwrap();
    let agree = v["argmax_agreement"].as_f64().unwrap();
    assert!(v["tokens"][0].as_u64().unwrap() >= 200, "{v}");
    assert!(mean <= 0.1, "mean |Δ log-prob| {mean}");
    assert!(max < 2.0, "max |Δ log-prob| {max}");
    assert!(agree >= 0.95, "argmax agreement {agree}");
    let corr = v["adapter_delta_correlation"].as_f64().unwrap();
    let slope = v["adapter_delta_slope"].as_f64().unwrap();
    assert!(corr >= 0.98, "adapter effect correlation {corr}");
    assert!((0.9..=1.1).contains(&slope), "adapter effect slope {slope}");
    assert!(v["adapter_mean_abs_delta"].as_f64().unwrap() > 0.2, "{v}");
}
