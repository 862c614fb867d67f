#!/usr/bin/env bash
# Prints the ggml build options (GGML_NAME=ON|OFF, one per line) that compile llama.cpp's CPU
# kernels for the instruction set of the machine this runs on, AMX excepted. The Makefile and
# scripts/bootstrap.sh export them before every cargo build; llama-cpp-sys-2 forwards GGML_*
# variables to CMake and rebuilds llama.cpp when one of them changes, so the same target
# directory used on a CPU with another instruction set is rebuilt by the next `make build`.
#
# Why options and not `-march=native`:
# - `-march=native` on an Intel CPU with AMX (Sapphire Rapids and later) turns on ggml's AMX
#   backend, whose Q4_1 matrix kernel crashes (SIGSEGV in ggml_backend_amx_mul_mat, llama.cpp
#   issue #20824). The options below never enable AMX unless asked to.
# - These options apply to the ggml-cpu library only (its kernels). llama.cpp's other code,
#   and its static initialisers, stay baseline x86-64, so a binary moved to an older CPU runs
#   far enough to refuse with a clear error (runtime/src/model/llamacpp/cpu.rs) instead of
#   dying of SIGILL.
#
#   LLAMA_AMX=1        also enable AMX (tile, int8, bf16) where the CPU has it: for when
#                      upstream has fixed the AMX kernels. Off by default.
#   GGML_<NAME>=...    a value already in the environment is kept as it is.
#   AUTODIDACT_CPUINFO another machine's /proc/cpuinfo to read instead (for the tests).
#
# On other architectures, or without /proc/cpuinfo, it prints nothing, and llama-cpp-sys-2's
# defaults apply.
set -euo pipefail

case "$(uname -m)" in x86_64 | amd64) ;; *) exit 0 ;; esac
CPUINFO="${AUTODIDACT_CPUINFO:-/proc/cpuinfo}"
[ -r "$CPUINFO" ] || exit 0

# The first "flags" line: the kernel lists only what it has enabled (XSAVE state included).
flags=" $(grep -m1 '^flags' "$CPUINFO" | cut -d: -f2) "
has() {
    local f
    for f in "$@"; do
        case "$flags" in *" $f "*) ;; *) return 1 ;; esac
    done
}

# option  cpuinfo flags it needs (all of them)
OPTIONS=(
    "GGML_SSE42 sse4_2"
    "GGML_AVX avx"
    "GGML_AVX2 avx2"
    "GGML_BMI2 bmi2"
    "GGML_FMA fma"
    "GGML_F16C f16c"
    "GGML_AVX_VNNI avx_vnni"
    "GGML_AVX512 avx512f avx512cd avx512vl avx512dq avx512bw"
    "GGML_AVX512_VBMI avx512vbmi"
    "GGML_AVX512_VNNI avx512_vnni"
    "GGML_AVX512_BF16 avx512_bf16"
    "GGML_AMX_TILE amx_tile"
    "GGML_AMX_INT8 amx_int8"
    "GGML_AMX_BF16 amx_bf16"
)

for entry in "${OPTIONS[@]}"; do
    read -r name needs <<<"$entry"
    if [ -n "${!name+x}" ]; then
        printf '%s=%s\n' "$name" "${!name}"
        continue
    fi
    value=OFF
    # shellcheck disable=SC2086
    if has $needs; then
        value=ON
        case "$name" in GGML_AMX_*) [ "${LLAMA_AMX:-0}" = 1 ] || value=OFF ;; esac
    fi
    printf '%s=%s\n' "$name" "$value"
done
