"""Benchmark `cradle generate`: wall time and rows/s per scale.

    .venv/bin/python bench/bench_generate.py --members 100000 1000000 --days 90 --workers 2

Each scale writes into a fresh temporary folder (removed afterwards unless --keep) and
prints one line per scale plus a Markdown table for docs/benchmarks.md. Rows are the data
rows of all delivered files (record_person); rows/s = rows / wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from cradle.generate.engine import generate
from cradle.generate.settings import Params, load_settings

log = logging.getLogger("bench_generate")


def peak_rss_gib() -> float:
    """Peak resident memory of this process and its (finished) workers, GiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024**2


def run(members: int, days: int, workers: int, seed: int, keep: str | None) -> dict:
    out = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cradle-bench-"))
    t0 = time.perf_counter()
    manifest = generate(load_settings(), Params(members=members, days=days,
                                                start=date(2026, 1, 1), seed=seed,
                                                out=str(out), workers=workers))
    wall = time.perf_counter() - t0
    rows = sum(v["rows"] for v in manifest["sources"].values())
    files = sum(v["files"] for v in manifest["sources"].values())
    size = sum(v["bytes"] for v in manifest["sources"].values())
    truth = sum(p.stat().st_size for p in (out / "_truth").glob("*"))
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"members": members, "days": days, "workers": workers, "wall_s": wall,
            "rows": rows, "rows_per_s": rows / wall, "files": files,
            "landing_gib": size / 1024**3, "truth_gib": truth / 1024**3,
            "peak_rss_gib": peak_rss_gib()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, nargs="+", default=[90],
                        help="days per scale (one value, or one per --members value)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", default=None, help="write here and keep the output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    days = args.days * len(args.members) if len(args.days) == 1 else args.days
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    results = []
    for m, d in zip(args.members, days, strict=True):
        r = run(m, d, args.workers, args.seed, args.keep)
        results.append(r)
        print(f"members={m} days={d} workers={args.workers}: {r['wall_s']:.1f}s, "
              f"{r['rows']:,} rows, {r['rows_per_s']:,.0f} rows/s, {r['files']} files, "
              f"{r['landing_gib']:.2f} GiB landing, peak RSS {r['peak_rss_gib']:.1f} GiB",
              flush=True)
    print("\n| members | days | workers | wall time | rows | rows/s | files | landing | truth |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['members']:,} | {r['days']} | {r['workers']} | {r['wall_s']:.0f} s | "
              f"{r['rows']:,} | {r['rows_per_s']:,.0f} | {r['files']:,} | "
              f"{r['landing_gib']:.2f} GiB | {r['truth_gib']:.2f} GiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
