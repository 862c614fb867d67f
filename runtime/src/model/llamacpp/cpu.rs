//! Which instruction sets the linked llama.cpp was compiled for, and whether this CPU has them.
//!
//! llama.cpp's CPU kernels (ggml-cpu) are compiled for the build machine's instruction set
//! (`scripts/llama-cpu-flags.sh`), and the binary and the target directory can be moved to
//! another machine. A kernel using an instruction the CPU lacks dies of SIGILL in the middle of
//! a run; [`check`] refuses first, with an error that says to rebuild. ggml itself records what
//! it was compiled with (its `ggml_cpu_has_*` constants), so there is nothing to keep in sync:
//! the check compares those with what this CPU reports through `cpuid`.
//!
//! AMX is left out of the comparison: ggml checks at run time whether the CPU and the kernel
//! allow it before using an AMX buffer, and the default build has no AMX (its Q4_1 kernel
//! crashes, llama.cpp issue #20824).

use super::ffi;
use crate::{Error, Result};

/// The linked llama.cpp's instruction sets against this CPU's, with the engine's weight
/// buffer types: what `bench model` prints beside its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuReport {
    /// Instruction sets ggml-cpu was compiled with, by ggml's names (`AVX2`, `AVX512_VNNI`).
    pub compiled: Vec<String>,
    /// Those among `compiled` that this CPU lacks; empty when the engine can run here.
    pub missing: Vec<String>,
    /// This CPU's instruction sets among those ggml knows, by ggml's names.
    pub cpu: Vec<String>,
    /// The CPU device's extra weight-buffer types (`CPU_REPACK`; `AMX` only in a build with
    /// AMX). Empty when `missing` is not: they are not asked for on a CPU that cannot run
    /// the kernels.
    pub extra_buffer_types: Vec<String>,
    /// llama.cpp's own one-line report, likewise empty when `missing` is not.
    pub system_info: String,
}

/// Every ggml instruction-set name, in `ggml_cpu_has_*` order.
const GGML_ISA: [&str; 13] = [
    "SSE3", "SSSE3", "AVX", "AVX_VNNI", "AVX2", "BMI2", "F16C", "FMA", "AVX512", "AVX512_VBMI",
    "AVX512_VNNI", "AVX512_BF16", "AMX_INT8",
];

/// Whether this CPU (and the OS, for the wide registers) supports ggml's instruction set
/// `name`; `None` for AMX, which ggml checks itself.
fn cpu_has(name: &str) -> Option<bool> {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        use std::arch::is_x86_feature_detected as has;
        Some(match name {
            "SSE3" => has!("sse3"),
            "SSSE3" => has!("ssse3"),
            "AVX" => has!("avx"),
            "AVX_VNNI" => has!("avxvnni"),
            "AVX2" => has!("avx2"),
            "BMI2" => has!("bmi2"),
            "F16C" => has!("f16c"),
            "FMA" => has!("fma"),
            // GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
            "AVX512" => {
                has!("avx512f") && has!("avx512cd") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw")
            }
            "AVX512_VBMI" => has!("avx512vbmi"),
            "AVX512_VNNI" => has!("avx512vnni"),
            "AVX512_BF16" => has!("avx512bf16"),
            _ => return None,
        })
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        let _ = name;
        None
    }
}

/// The compiled instruction sets that `has` says the CPU lacks (AMX and unknown names are
/// never missing: see the module documentation).
fn missing_from(compiled: &[&str], has: impl Fn(&str) -> Option<bool>) -> Vec<String> {
    compiled.iter().filter(|n| has(n) == Some(false)).map(|n| n.to_string()).collect()
}

/// Whether `/proc/cpuinfo` lists AMX-INT8 (reported only; ggml decides on its use).
fn cpu_lists_amx() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().any(|f| f == "amx_int8")))
        .unwrap_or(false)
}

/// The report for the linked llama.cpp on this CPU.
pub fn report() -> CpuReport {
    let compiled = ffi::compiled_isa();
    let missing = missing_from(&compiled, cpu_has);
    let cpu = GGML_ISA
        .iter()
        .filter(|n| match cpu_has(n) {
            Some(h) => h,
            None => **n == "AMX_INT8" && cpu_lists_amx(),
        })
        .map(|n| n.to_string())
        .collect();
    let (extra_buffer_types, system_info) =
        if missing.is_empty() { (ffi::cpu_extra_buffer_types(), ffi::system_info()) } else { (Vec::new(), String::new()) };
    CpuReport { compiled: compiled.iter().map(|n| n.to_string()).collect(), missing, cpu, extra_buffer_types, system_info }
}

/// Refuses to run llama.cpp's kernels on a CPU that lacks an instruction set they were
/// compiled with: an [`Error::CpuMismatch`] that names them and says to rebuild.
pub fn check() -> Result<()> {
    let compiled = ffi::compiled_isa();
    let missing = missing_from(&compiled, cpu_has);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::CpuMismatch { missing, compiled: compiled.iter().map(|n| n.to_string()).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_compiled_sets_the_cpu_lacks_are_missing_and_amx_never_is() {
        let has = |n: &str| match n {
            "AVX2" | "FMA" => Some(true),
            "AVX512" | "AVX512_VNNI" => Some(false),
            _ => None,
        };
        let compiled = ["AVX2", "FMA", "AVX512", "AVX512_VNNI", "AMX_INT8"];
        assert_eq!(missing_from(&compiled, has), vec!["AVX512", "AVX512_VNNI"]);
        assert!(missing_from(&["AVX2", "AMX_INT8"], has).is_empty());
    }

    #[test]
    fn the_build_machine_runs_its_own_build() {
        // The tests run where they were built: the check must pass, and report what it saw.
        check().unwrap();
        let r = report();
        assert!(r.missing.is_empty(), "{r:?}");
        for c in &r.compiled {
            assert!(r.cpu.contains(c) || c == "AMX_INT8", "compiled {c} not reported for this CPU: {r:?}");
        }
        assert!(!r.system_info.is_empty());
    }
}
