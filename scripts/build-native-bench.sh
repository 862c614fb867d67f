#!/usr/bin/env bash
# Builds benches/llama_bench_lite.cpp against the libllama that llama-cpp-sys-2 built for the
# CLI (same vendored source, same flags), into $CARGO_TARGET_DIR/native/llama-bench-lite.
# `autodidact bench model` runs it when present and reports gen_vs_native.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-${AUTODIDACT_HOME:-$HOME/.cache/autodidact}/target}"
# The newest llama-cpp-sys-2 build output of the dev profile.
OUT="$(ls -td "$TARGET"/debug/build/llama-cpp-sys-2-*/out 2>/dev/null | while read -r d; do
    [ -f "$d/include/llama.h" ] && { echo "$d"; break; }; done)"
[ -n "$OUT" ] || { echo "no llama-cpp-sys-2 build under $TARGET; run: make build" >&2; exit 1; }
LIBDIR="$OUT/lib"
[ -d "$LIBDIR" ] || LIBDIR="$OUT/lib64"
mkdir -p "$TARGET/native"
c++ -O3 -DNDEBUG -march=native -std=c++17 -I"$OUT/include" \
    "$ROOT/benches/llama_bench_lite.cpp" -o "$TARGET/native/llama-bench-lite" \
    -L"$LIBDIR" -Wl,--start-group -lllama -lggml -lggml-cpu -lggml-base -Wl,--end-group -lpthread -lm -ldl
echo "$TARGET/native/llama-bench-lite"
