//! `scripts/llama-cpu-flags.sh`, which picks llama.cpp's CPU build options, keeps everything a
//! CPU offers (AVX-512, VNNI, BF16) but AMX, whose kernels crash (issue 16), unless
//! `LLAMA_AMX=1` asks for it; and it never asks for an instruction set the CPU lacks. Each
//! case reads the flags line of a real CPU class.

use std::collections::BTreeMap;
use std::process::Command;

/// A Sapphire Rapids cloud VM, as `/proc/cpuinfo` lists it (AMX tile, int8 and bf16).
const SAPPHIRE_RAPIDS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 \
clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology \
nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt \
aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch ssbd ibrs ibpb stibp ibrs_enhanced \
fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap \
avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni \
avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq \
avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid cldemote movdiri movdir64b fsrm md_clear serialize \
tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities";

/// A Haswell: AVX2, FMA, F16C, BMI2, no AVX-512.
const HASWELL: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
mmx fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl pni pclmulqdq ssse3 fma \
cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm fsgsbase \
bmi1 avx2 smep bmi2 erms invpcid xsaveopt";

/// A Nehalem: SSE4.2, no AVX.
const NEHALEM: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
mmx fxsr sse sse2 syscall nx rdtscp lm constant_tsc rep_good nopl pni ssse3 cx16 sse4_1 sse4_2 popcnt \
hypervisor lahf_lm";

/// The options the script prints for a CPU with `flags`, with `env` set.
fn options(flags: &str, env: &[(&str, &str)]) -> BTreeMap<String, String> {
    let dir = std::env::temp_dir().join(format!("autodidact-cpu-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per call: the tests run in parallel, and two may describe the same CPU.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let cpuinfo = dir.join(format!("cpuinfo-{}", CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::write(&cpuinfo, format!("processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")).unwrap();
    let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/llama-cpu-flags.sh"));
    // The script keeps GGML_* values already in the environment: start from none.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GGML_") || k == "LLAMA_AMX") {
        cmd.env_remove(k);
    }
    let out = cmd.env("AUTODIDACT_CPUINFO", &cpuinfo).envs(env.iter().copied()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not NAME=VALUE: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn on(opts: &BTreeMap<String, String>) -> Vec<&str> {
    opts.iter().filter(|(_, v)| *v == "ON").map(|(k, _)| k.as_str()).collect()
}

#[test]
fn a_sapphire_rapids_gets_avx512_vnni_and_bf16_but_not_amx() {
    let opts = options(SAPPHIRE_RAPIDS, &[]);
    for k in ["GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_VBMI", "GGML_AVX512_BF16", "GGML_AVX_VNNI", "GGML_FMA", "GGML_F16C"] {
        assert_eq!(opts.get(k).map(String::as_str), Some("ON"), "{k}: {opts:?}");
    }
    for k in ["GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"] {
        assert_eq!(opts.get(k).map(String::as_str), Some("OFF"), "{k}: {opts:?}");
    }
}

#[test]
fn llama_amx_1_turns_amx_on_where_the_cpu_has_it_and_nowhere_else() {
    let opts = options(SAPPHIRE_RAPIDS, &[("LLAMA_AMX", "1")]);
    for k in ["GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"] {
        assert_eq!(opts.get(k).map(String::as_str), Some("ON"), "{k}: {opts:?}");
    }
    let haswell = options(HASWELL, &[("LLAMA_AMX", "1")]);
    assert!(!on(&haswell).iter().any(|k| k.starts_with("GGML_AMX")), "{haswell:?}");
}

#[test]
fn older_cpus_get_exactly_what_they_have() {
    // Every option is printed, ON or OFF: ggml's own defaults (AVX2 on) never apply.
    let haswell = options(HASWELL, &[]);
    assert_eq!(on(&haswell), ["GGML_AVX", "GGML_AVX2", "GGML_BMI2", "GGML_F16C", "GGML_FMA", "GGML_SSE42"]);
    assert_eq!(haswell.len(), 14);
    let nehalem = options(NEHALEM, &[]);
    assert_eq!(on(&nehalem), ["GGML_SSE42"]);
}

#[test]
fn a_value_set_by_the_user_is_kept() {
    let opts = options(SAPPHIRE_RAPIDS, &[("GGML_AVX512", "OFF")]);
    assert_eq!(opts["GGML_AVX512"], "OFF");
}
