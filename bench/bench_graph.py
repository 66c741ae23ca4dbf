"""Benchmark connected components: Cradle's built-in engine against scipy, same edge lists.

    .venv/bin/python bench/bench_graph.py --work /tmp/bench_graph \\
        [--identity-edges /tmp/cradle_idedges/edges] [--cases identity path star giant_and_singletons]

Cases (each written to Parquet once, then read by both sides):

* ``identity``: the identity stage's connected-components input at 1M members (5.6M
  vertices, 5.2M edges), exported by ``bench/export_identity_edges.py``; without
  ``--identity-edges`` a synthetic graph with the same statistics (``identity_like``);
* ``path``, ``sorted_path``, ``star``, ``giant_and_singletons``: the worst cases for star
  algorithms at ``--n`` vertices (``cradle.evals.graphs.worst_cases``).

For each case, in one process: the floor, ``scipy.sparse.csgraph.connected_components``
on one core (timed twice: the call alone, and the whole job from the Parquet files to the
smallest id per vertex); the built-in engine as configured (a round with at most
``single_task_rows`` links runs in one task); and the built-in engine forced to keep every
round distributed (``single_task_rows=0``), which is what a cluster runs on a big graph.
Spark's time runs from the Parquet files to the labels counted (after a warm-up on a tiny
graph; with ``--repeat`` the fastest run is reported, all are listed). Both answers are
compared vertex by vertex. Prints one JSON object and writes ``<work>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from cradle.config import load_env
from cradle.evals.graphs import worst_cases
from cradle.graph import SINGLE_TASK_ROWS, connected_components
from cradle.spark import build_spark

log = logging.getLogger("bench_graph")

# Records per person at 1M members (docs/benchmarks.md, identity after guards).
CASES = ["path", "sorted_path", "star", "giant_and_singletons"]
RECORDS_PER_PERSON = {1: 366_990, 2: 401_712, (3, 5): 304_238, (6, 10): 30_497, (11, 50): 1_184}


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def identity_like(seed: int = 7, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic identity graph with the statistics of the 1M-member one.

    People have records per the measured distribution (ranges drawn uniformly) and a pool
    of ``min(19, 2 + 1.3 * records)`` identifier values (the measured graph's largest
    component has 19 values). The pool is split into one block per record; each later
    record also carries one to three values of the blocks before its own (the same phone on
    an order and in the CRM). Like ``cradle.identity.graph.link_edges``, each record
    becomes a star from its smallest value id, duplicate edges dropped; vertex ids are
    random 64-bit values like xxhash64. Returns (vertex ids, src, dst).
    """
    rng = np.random.default_rng(seed)
    sizes = []
    for size, count in RECORDS_PER_PERSON.items():
        lo, hi = size if isinstance(size, tuple) else (size, size)
        sizes.append(rng.integers(lo, hi + 1, size=round(count * scale)))
    records = rng.permutation(np.concatenate(sizes))
    pool = np.minimum(19, np.round(2 + 1.3 * records)).astype(np.int64)
    base = np.cumsum(pool) - pool
    # One row per record: its person's records, pool and value base, and its position.
    per_record = np.repeat(np.arange(len(records)), records)
    position = np.arange(len(per_record)) - np.repeat(np.cumsum(records) - records, records)
    s, v, b = records[per_record], pool[per_record], base[per_record]
    start, end = position * v // s, (position + 1) * v // s
    # (record, value) rows: the record's own block, then the values it shares.
    width = end - start
    own_record = np.repeat(np.arange(len(per_record)), width)
    offset = np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width)
    own_value = np.repeat(b + start, width) + offset
    sharing = np.flatnonzero(start > 0)
    extra = rng.choice([1, 2, 3], size=len(sharing), p=[0.25, 0.45, 0.3])
    shared_record = np.repeat(sharing, extra)
    shared_value = b[shared_record] + rng.integers(0, start[shared_record])
    record = np.concatenate([own_record, shared_record])
    value = np.concatenate([own_value, shared_value])
    values = int(pool.sum())
    ids = np.unique(rng.integers(-(2**63), 2**63 - 1, size=values + 1000, dtype=np.int64))
    ids = rng.permutation(ids)[:values]
    vid = ids[value]
    order = np.lexsort((vid, record))
    record, vid, value = record[order], vid[order], value[order]
    first = np.r_[True, record[1:] != record[:-1]]
    hub = np.maximum.accumulate(np.where(first, np.arange(len(record)), 0))
    keep = value != value[hub]
    # Rows in a random order, as Spark's hash partitioning leaves them (no locality).
    pairs = rng.permutation(np.unique(value[hub][keep] * (values + 1) + value[keep]))
    src, dst = ids[pairs // (values + 1)], ids[pairs % (values + 1)]
    return np.unique(vid), src, dst


def scipy_labels(path: Path) -> dict[str, Any]:
    """The single-core floor: Parquet -> smallest vertex id of each vertex's component."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    t0 = time.perf_counter()
    ids = np.sort(pq.read_table(path / "vertices.parquet").column("id").to_numpy())
    edges = pq.read_table(path / "edges.parquet")
    src = np.searchsorted(ids, edges.column("src").to_numpy())
    dst = np.searchsorted(ids, edges.column("dst").to_numpy())
    n = len(ids)
    graph = csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    t1 = time.perf_counter()
    count, labels = scipy_components(graph, directed=False)
    t2 = time.perf_counter()
    smallest = np.full(count, np.iinfo(np.int64).max)
    np.minimum.at(smallest, labels, ids)
    component = smallest[labels]
    t3 = time.perf_counter()
    return {
        "seconds_call": round(t2 - t1, 3),
        "seconds_whole": round(t3 - t0, 3),
        "edges": len(src),
        "components": int(count),
        "largest": int(np.bincount(labels).max()) if n else 0,
        "labels": (ids, component),
    }


def spark_labels(spark, path: Path, single_task_rows: int, checkpoint_interval: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    vertices = spark.read.parquet(str(path / "vertices.parquet"))
    edges = spark.read.parquet(str(path / "edges.parquet"))
    labels = connected_components(
        vertices, edges, "builtin", checkpoint_interval=checkpoint_interval, single_task_rows=single_task_rows
    )
    rows = labels.count()
    seconds = time.perf_counter() - t0
    got = labels.toPandas().sort_values("id")
    return {"seconds": round(seconds, 2), "rows": rows, "labels": got}


def same(floor: tuple[np.ndarray, np.ndarray], got) -> bool:
    ids, component = floor
    return bool(
        len(got) == len(ids)
        and np.array_equal(got["id"].to_numpy(), ids)
        and np.array_equal(got["component"].to_numpy(), component)
    )


def write_case(spark, name: str, args: argparse.Namespace, work: Path) -> Path:
    """The case's vertices and edges as Parquet (returns its folder)."""
    if name == "identity" and args.identity_edges:
        return Path(args.identity_edges)
    identity = f"identity_like_shuffled_{args.identity_scale}_{args.seed}"
    key = identity if name == "identity" else f"{name}_{args.n}"
    folder = work / key
    if (folder / "edges.parquet").exists():
        return folder
    if name == "identity":
        ids, src, dst = identity_like(args.seed, args.identity_scale)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": ids}), folder / "vertices.parquet")
        pq.write_table(pa.table({"src": src, "dst": dst}), folder / "edges.parquet")
        return folder
    vertices, edges, _ = worst_cases(spark, args.n)[name]
    vertices.write.mode("overwrite").parquet(str(folder / "vertices.parquet"))
    edges.write.mode("overwrite").parquet(str(folder / "edges.parquet"))
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/bench_graph")
    p.add_argument("--identity-edges", help="folder written by bench/export_identity_edges.py")
    p.add_argument("--cases", nargs="+", default=["identity", *CASES])
    p.add_argument("--n", type=int, default=1_000_000, help="vertices of each worst case")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--identity-scale", type=float, default=1.0, help="size of the synthetic identity graph")
    p.add_argument("--checkpoint-interval", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1, help="Spark runs per mode; the fastest is reported")
    p.add_argument("--driver-memory", default="6g")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = load_env("local", lake=str(work / "lake"))
    env = base.model_copy(
        update={
            "spark": base.spark.model_copy(
                update={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": args.driver_memory}
            )
        }
    )
    spark = build_spark(env, app_name="bench-graph")
    # Warm up (JVM, Python workers, scipy imports) so the first case is not charged for it.
    tiny = spark.createDataFrame([(1, 2), (3, 4)], "src long, dst long")
    connected_components(tiny.select(F.col("src").alias("id")), tiny, "builtin").count()
    result: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "cases": {}}
    for name in args.cases:
        folder = write_case(spark, name, args, work)
        case: dict[str, Any] = {"data": str(folder), "load_before": load()}
        floor = scipy_labels(folder)
        answer = floor.pop("labels")
        case["scipy"] = floor
        case["vertices"], case["edges"] = len(answer[0]), floor.pop("edges")
        if name == "identity":
            exported = "exported identity edge list"
            case["source"] = exported if args.identity_edges else "synthetic identity_like()"
        for mode, rows in (("builtin", SINGLE_TASK_ROWS), ("builtin_distributed", 0)):
            runs = [spark_labels(spark, folder, rows, args.checkpoint_interval) for _ in range(args.repeat)]
            run = min(runs, key=lambda r: r["seconds"])
            run["seconds_each"] = [r["seconds"] for r in runs]
            got = run.pop("labels")
            run["identical_to_scipy"] = same(answer, got)
            run["x_scipy_call"] = round(run["seconds"] / max(floor["seconds_call"], 1e-3), 1)
            run["x_scipy_whole"] = round(run["seconds"] / max(floor["seconds_whole"], 1e-3), 1)
            case[mode] = run
            log.info("%s %s: %s", name, mode, run)
        case["load_after"] = load()
        result["cases"][name] = case
        log.info("%s: %s", name, case)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    (work / "result.json").write_text(text, encoding="utf-8")
    modes = ("builtin", "builtin_distributed")
    return 0 if all(c[m]["identical_to_scipy"] for c in result["cases"].values() for m in modes) else 1


if __name__ == "__main__":
    sys.exit(main())
