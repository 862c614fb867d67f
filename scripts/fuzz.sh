#!/usr/bin/env bash
# `make fuzz`: the property tests (`*/tests/fuzz_*.rs`) run long. `make test` runs the same
# targets with a thousand cases each; here every target runs PROPTEST_CASES cases (default
# 200000: 4.8 million cases in about a quarter of an hour on 2 cores, most of it the GGUF
# readers and the service, whose queue grows as the run goes). Prints one JSON object per
# target,
#   {"fuzz": "policy_arbitrary_text", "test": "fuzz_policy", "cases": 200000, "panics": 0, "failed": 0, "seconds": 17.6, "seed": 42}
# and a total; `panics` counts inputs whose run panicked (the goal is 0). Each run draws new
# seeds; PROPTEST_RNG_SEED=<seed> replays one. Each test binary's whole output is kept in
# $AUTODIDACT_HOME/fuzz/<test>.log; a failure prints its end, with the smallest failing input
# proptest found. Exits non-zero if any target failed.
set -uo pipefail
export PROPTEST_CASES="${PROPTEST_CASES:-200000}"
HOME_DIR="${AUTODIDACT_HOME:-$HOME/.cache/autodidact}"
LOGS="$HOME_DIR/fuzz"
mkdir -p "$LOGS"
: >"$LOGS/summary.jsonl.tmp"

# package:test, one line each.
TARGETS="
autodidact-policies:fuzz_policy
autodidact-evals:fuzz_suite
autodidact-runtime:fuzz_code_blocks
autodidact-runtime:fuzz_gguf_check
autodidact-trainer:fuzz_gguf
autodidact-serve:fuzz_serve_bodies
"

args=()
for t in $TARGETS; do
    args+=(-p "${t%%:*}" --test "${t##*:}")
done
echo "fuzz: building the fuzz tests" >&2
cargo test --quiet --no-run "${args[@]}" >&2 || exit 1

status=0
for t in $TARGETS; do
    pkg="${t%%:*}" test="${t##*:}" log="$LOGS/${t##*:}.log"
    echo "fuzz: $test ($PROPTEST_CASES cases per target)" >&2
    RUST_BACKTRACE=0 cargo test --quiet -p "$pkg" --test "$test" -- --nocapture >"$log" 2>&1
    code=$?
    # Progress dots of the test harness may precede a summary line on the same line.
    grep -o 'fuzz target=.*' "$log" | python3 -c '
import json, sys
test = sys.argv[1]
for line in sys.stdin:
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    print(json.dumps({"fuzz": fields["target"], "test": test, "cases": int(fields["cases"]), "panics": int(fields["panics"]),
                      "failed": int(fields["failed"]), "seconds": float(fields["seconds"]), "seed": int(fields["seed"])}))
' "$test" | tee -a "$LOGS/summary.jsonl.tmp"
    if [ $code -ne 0 ]; then
        status=1
        echo "fuzz: $test failed (exit $code); the end of $log:" >&2
        tail -n 40 "$log" >&2
        # A test binary that died (abort, stack overflow) printed no line for the target it
        # was running: count the crash as one.
        if ! grep -q 'fuzz target=.* failed=1' "$log"; then
            echo "{\"fuzz\": \"$test: crashed\", \"test\": \"$test\", \"cases\": 0, \"panics\": 1, \"failed\": 1, \"seconds\": 0}" \
                | tee -a "$LOGS/summary.jsonl.tmp"
        fi
    fi
done
# `seconds` sums the targets' own times (a test binary runs two at once); `wall_seconds` is
# this script's, the build included.
python3 - "$LOGS/summary.jsonl.tmp" "$SECONDS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"fuzz": "total", "targets": len(rows), "cases": sum(r["cases"] for r in rows),
                  "panics": sum(r["panics"] for r in rows), "failed": sum(r["failed"] for r in rows),
                  "seconds": round(sum(r["seconds"] for r in rows), 1), "wall_seconds": int(sys.argv[2])}))
PY
mv "$LOGS/summary.jsonl.tmp" "$LOGS/summary.jsonl"
exit $status
