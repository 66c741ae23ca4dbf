"""`make bench`: run the benchmarks, each against its floor measured in the same run.

    .venv/bin/python -m bench.run                  # every benchmark at its quick size
    .venv/bin/python -m bench.run ingest graph     # some of them
    .venv/bin/python -m bench.run --list

Each benchmark is a module ``bench/bench_<name>.py`` with ``main(argv) -> int`` and its own
``--help``; here each has a quick size that finishes in minutes on 2 cores, so ``make bench``
is a smoke run of every benchmark and its floor. The figures in docs/benchmarks.md come from
the full sizes, run one benchmark at a time on a quiet machine (the commands are in that
file). The machine's load average is printed before and after each benchmark, because on a
shared machine a ratio to a floor measured in the same run is the only fair figure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

# name -> arguments for the quick run
QUICK: dict[str, list[str]] = {
    "generate": ["--members", "20000", "--days", "30"],
    "ingest": ["--members", "20000", "--days", "3"],
    "identity": ["--members", "5000", "--days", "10", "--work", "/tmp/cradle-bench-identity"],
    "graph": ["--n", "100000", "--identity-scale", "0.1", "--work", "/tmp/cradle-bench-graph"],
    "profile": ["--members", "3000", "--days", "30", "--work", "/tmp/cradle-bench-profile"],
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Cradle's benchmarks at their quick sizes.")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(QUICK)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their quick arguments")
    args = parser.parse_args(argv)
    if args.list:
        for name, quick in QUICK.items():
            print(f"{name:<10} bench/bench_{name}.py {' '.join(quick)}")
        return 0
    unknown = [n for n in args.names if n not in QUICK]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(QUICK)}")
    failed = []
    for name in args.names or list(QUICK):
        print(f"\n== bench {name} {' '.join(QUICK[name])}  (load average {load()})", flush=True)
        t0 = time.monotonic()
        module = importlib.import_module(f"bench.bench_{name}")
        code = module.main(QUICK[name])
        print(f"== bench {name}: exit {code} in {time.monotonic() - t0:.0f} s (load average {load()})")
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
