"""Benchmark `cradle run ingest`: rows/s for a catch-up run and for one daily run.

    .venv/bin/python bench/bench_ingest.py --members 100000 --days 30

For each scale: generate (or reuse, with --data) a landing area, then on a fresh lake run
ingestion once for every day but the last (a catch-up run, the backfill case) and once
for the last day (the daily case). Rows are the data rows read, from the manifest;
rows/s = rows / wall time of the run. Spark runs local[2] (this machine has 2 cores).

The floor, in the same session right after each run: a bare Spark copy of exactly the
files that run read (``spark.read`` of each source's files with the right encoding, CSV
with its header or JSON lines, written to Parquet; no validation, no Delta, no
accounting). The ratio ingest / bare copy is the figure that matters. Prints a Markdown
table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import functions as F

from cradle.catalog import INGEST_MANIFEST
from cradle.config import load_env
from cradle.generate.engine import generate
from cradle.generate.settings import Params, load_settings
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.spark import build_spark

START = date(2026, 1, 1)


def rows_read(lake: Lake, run_id: str) -> int:
    manifest = lake.read(INGEST_MANIFEST).where(F.col("ingest_run_id") == run_id)
    return int(manifest.agg(F.sum("rows_read")).first()[0] or 0)


def encoding_of(path: Path) -> str:
    """What a bare reader would be told: the file's encoding (BOM, UTF-8 or GB18030)."""
    content = path.read_bytes()
    if content.startswith(b"\xef\xbb\xbf"):
        return "UTF-8"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "GB18030"
    return "UTF-8"


def delivered(landing: Path, first: date, last: date) -> dict[tuple[str, str, str], list[str]]:
    """Files delivered from ``first`` to ``last``, grouped by (source, format, encoding)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for folder in sorted(landing.glob("*/????-??-??")):
        if folder.parent.name.startswith("_") or not first.isoformat() <= folder.name <= last.isoformat():
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.stat().st_size > 0):
            fmt = "json" if path.name.endswith(".jsonl") else "csv"
            groups.setdefault((folder.parent.name, fmt, encoding_of(path)), []).append(str(path))
    return groups


def bare_copy(spark, groups: dict[tuple[str, str, str], list[str]], out: str) -> float:
    """Wall seconds for Spark's own readers to copy the files to Parquet, no validation."""
    t0 = time.perf_counter()
    for n, ((source, fmt, encoding), paths) in enumerate(sorted(groups.items())):
        reader = spark.read.option("encoding", encoding)
        frame = reader.json(paths) if fmt == "json" else reader.option("header", True).csv(paths)
        frame.write.mode("overwrite").parquet(f"{out}/{source}-{n}")
    return time.perf_counter() - t0


def run(members: int, days: int, data: str | None, workers: int) -> list[dict]:
    landing = Path(data) if data else Path(tempfile.mkdtemp(prefix="cradle-bench-landing-"))
    if not (landing / "_truth" / "manifest.json").is_file():
        generate(
            load_settings(),
            Params(members=members, days=days, start=START, seed=7, out=str(landing), workers=workers),
        )
    lake_root = tempfile.mkdtemp(prefix="cradle-bench-lake-")
    env = load_env("local", lake=lake_root)
    env = env.model_copy(
        update={"landing_root": str(landing), "spark": env.spark.model_copy(update={"master": "local[2]"})}
    )
    spark = build_spark(env, app_name="bench-ingest")
    lake = Lake(spark, env.lake_root)
    last = START + timedelta(days=days - 1)
    results = []
    copies = tempfile.mkdtemp(prefix="cradle-bench-copy-")
    for label, first, day in (("catch-up", START, last - timedelta(days=1)), ("daily", last, last)):
        run_id = f"bench-{label}"
        t0 = time.perf_counter()
        run_stages(spark, env, ["ingest"], make_context(env, day, run_id))
        wall = time.perf_counter() - t0
        rows = rows_read(lake, run_id)
        floor = bare_copy(spark, delivered(landing, first, day), f"{copies}/{label}")
        results.append(
            {
                "members": members,
                "days": days,
                "run": label,
                "rows": rows,
                "wall_s": wall,
                "rows_per_s": rows / wall,
                "copy_s": floor,
                "copy_rows_per_s": rows / floor,
                "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            }
        )
        print(results[-1], flush=True)
    spark.stop()
    shutil.rmtree(copies, ignore_errors=True)
    shutil.rmtree(lake_root, ignore_errors=True)
    if not data:
        shutil.rmtree(landing, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data", default=None, help="reuse this generated landing folder (one scale)")
    parser.add_argument("--workers", type=int, default=2, help="generator workers")
    args = parser.parse_args(argv)
    rows = [r for m in args.members for r in run(m, args.days, args.data, args.workers)]
    print(f"\nMachine: {platform.platform()}, {os.cpu_count()} cores; Spark local[2]\n")
    header = ["members", "days", "run", "rows read", "ingest (s)", "rows/s", "bare copy (s)", "rows/s"]
    print("| " + " | ".join([*header, "ratio", "load"]) + " |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cells = [f"{r['members']:,}", str(r["days"]), r["run"], f"{r['rows']:,}", f"{r['wall_s']:.1f}"]
        cells += [f"{r['rows_per_s']:,.0f}", f"{r['copy_s']:.1f}", f"{r['copy_rows_per_s']:,.0f}"]
        print("| " + " | ".join([*cells, f"{r['wall_s'] / r['copy_s']:.1f}x", r["load"]]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
