"""Benchmark the identity stage on generated data.

    .venv/bin/python bench/bench_identity.py --members 20000 --days 30 --work /tmp/bench_identity

Steps, all in one process and one Spark session (local[2], 2 shuffle partitions):

1. ``cradle generate`` (unless ``--skip-generate``), then ingest every delivery up to the
   day before the last;
2. identity, first run (a full build);
3. ingest the last day, identity incremental (the daily run);
4. identity ``--full`` on the same date: must give the same partition and the same ids;
5. the edge list the stage's first connected-components pass consumed (linking values,
   contracted per record), re-built from the stage's state, labelled by the Spark engine
   alone and by ``scipy.sparse.csgraph.connected_components`` (single core): timings and
   component counts, which must agree.

GraphFrames' two_phase and randomized_contraction are run too when its jar is on the
classpath; otherwise the result says so. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from cradle.catalog import IDENTITY_GRAPH_STATS, IDENTITY_RECORDS, IDENTITY_VALUES, JOB_RUNS
from cradle.config import load_env
from cradle.graph import connected_components, graphframes_available
from cradle.identity.graph import link_edges
from cradle.identity.stage import state_occurrences
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.spark import build_spark

log = logging.getLogger("bench_identity")
START = date(2026, 1, 1)


def machine() -> dict[str, Any]:
    mem = (
        Path("/proc/meminfo").read_text().split("\n")[0].split()[1] if Path("/proc/meminfo").exists() else "?"
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 2**20, 1) if mem != "?" else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def stage_seconds(lake: Lake, run_id: str, job: str) -> dict[str, Any]:
    row = lake.read(JOB_RUNS).where((F.col("run_id") == run_id) & (F.col("job") == job)).first()
    details = dict(row["details"] or {})
    return {
        "seconds": row["duration_s"],
        "phases": {
            k.removeprefix("seconds."): float(v) for k, v in details.items() if k.startswith("seconds.")
        },
        "records_in_scope": int(details.get("records_in_scope", 0)),
        "components": int(details.get("components", 0)),
        "largest": int(details.get("largest", 0)),
        "merges": int(details.get("merges", 0)),
        "splits": int(details.get("splits", 0)),
    }


def assignment(lake: Lake):
    return lake.read(IDENTITY_RECORDS).select("record_id", "one_id").localCheckpoint()


def compare(before, after) -> dict[str, int]:
    """Same partition and same ids? Counted without collecting the assignment."""
    joined = before.withColumnRenamed("one_id", "a").join(after.withColumnRenamed("one_id", "b"), "record_id")
    pairs = joined.select("a", "b").distinct()
    return {
        "records": joined.count(),
        "records_with_different_id": joined.where(F.col("a") != F.col("b")).count(),
        "ids_mapping_to_several": pairs.groupBy("a").count().where(F.col("count") > 1).count(),
        "ids_mapped_from_several": pairs.groupBy("b").count().where(F.col("count") > 1).count(),
    }


def first_pass_edges(lake: Lake):
    occ = state_occurrences(lake.read(IDENTITY_RECORDS))
    linking = lake.read(IDENTITY_VALUES).where(F.col("status") == "link").select("value_id")
    links = occ.join(linking, on="value_id", how="left_semi")
    vertices, edges = link_edges(links)
    return vertices.localCheckpoint(), edges.localCheckpoint()


def spark_components(vertices, edges, engine: str, algorithm: str) -> dict[str, Any]:
    t0 = time.monotonic()
    labels = connected_components(vertices, edges, engine, algorithm).localCheckpoint()  # type: ignore[arg-type]
    seconds = time.monotonic() - t0
    sizes = labels.groupBy("component").count()
    row = sizes.agg(F.count("*").alias("n"), F.max("count").alias("largest")).first()
    return {"seconds": round(seconds, 2), "components": int(row["n"]), "largest": int(row["largest"])}


def scipy_components(vertices, edges) -> dict[str, Any]:
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    t0 = time.monotonic()
    ids = vertices.toPandas()["id"].to_numpy(dtype=np.int64)
    pairs = edges.toPandas()
    load = time.monotonic() - t0
    t1 = time.monotonic()
    ids.sort()
    src = np.searchsorted(ids, pairs["src"].to_numpy(dtype=np.int64))
    dst = np.searchsorted(ids, pairs["dst"].to_numpy(dtype=np.int64))
    n = len(ids)
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n)).tocsr()
    build = time.monotonic() - t1
    t2 = time.monotonic()
    count, labels = cc(graph, directed=False)
    seconds = time.monotonic() - t2
    return {
        "vertices": int(n),
        "edges": len(pairs),
        "seconds_to_pandas": round(load, 2),
        "seconds_build_csr": round(build, 2),
        "seconds": round(seconds, 3),
        "components": int(count),
        "largest": int(np.bincount(labels).max()) if n else 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=20000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default="/tmp/bench_identity")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--driver-memory", default="8g")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.work)
    landing, lake_root = work / "landing", work / "lake"
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
    }
    if not args.skip_generate:
        t0 = time.monotonic()
        command = [sys.executable, "-m", "cradle", "generate", "--members", str(args.members)]
        command += [
            "--days",
            str(args.days),
            "--seed",
            str(args.seed),
            "--out",
            str(landing),
            "--workers",
            "2",
        ]
        subprocess.run(command, check=True)
        result["generate_seconds"] = round(time.monotonic() - t0, 1)
    base = load_env("local", lake=str(lake_root))
    env = base.model_copy(
        update={
            "landing_root": str(landing),
            "spark": base.spark.model_copy(
                update={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": args.driver_memory}
            ),
        }
    )
    spark = build_spark(env, app_name="bench-identity")
    lake = Lake(spark, env.lake_root)
    last = START + timedelta(days=args.days - 1)
    before_last = last - timedelta(days=1)

    def run(stages: list[str], day: date, full: bool = False) -> str:
        ctx = make_context(env, day, None, full)
        run_stages(spark, env, stages, ctx)
        return ctx.run_id

    t0 = time.monotonic()
    run(["ingest"], before_last)
    result["ingest_until_day_before_seconds"] = round(time.monotonic() - t0, 1)
    first = run(["identity"], before_last)
    result["identity_first_build"] = stage_seconds(lake, first, "identity")
    t0 = time.monotonic()
    run(["ingest"], last)
    result["ingest_last_day_seconds"] = round(time.monotonic() - t0, 1)
    daily = run(["identity"], last)
    result["identity_incremental_day"] = stage_seconds(lake, daily, "identity")
    after_daily = assignment(lake)
    rebuild = run(["identity"], last, full=True)
    result["identity_full_rebuild"] = stage_seconds(lake, rebuild, "identity")
    result["incremental_vs_full"] = compare(after_daily, assignment(lake))
    agreement = result["incremental_vs_full"]
    identical = agreement["records_with_different_id"] == 0 and agreement["ids_mapping_to_several"] == 0
    incremental_s = result["identity_incremental_day"]["seconds"]
    full_s = result["identity_full_rebuild"]["seconds"]
    result["incremental_over_full"] = round(incremental_s / full_s, 3) if full_s else None
    result["assignments_identical"] = identical
    print(
        f"identity after {args.days - 1} days of history, {args.members} members: "
        f"incremental day {incremental_s:.1f} s, --full {full_s:.1f} s, "
        f"ratio {result['incremental_over_full']}, assignments identical: {identical} "
        f"({agreement['records']} records, {agreement['records_with_different_id']} with another id)",
        flush=True,
    )
    stats = lake.read(IDENTITY_GRAPH_STATS).where(F.col("run_id") == rebuild).first().asDict()
    result["graph_stats_full"] = {k: v for k, v in stats.items() if k not in ("ingest_runs", "run_id")}

    vertices, edges = first_pass_edges(lake)
    result["edge_list"] = {"vertices": vertices.count(), "edges": edges.count()}
    result["spark_builtin"] = spark_components(vertices, edges, "builtin", "two_phase")
    if graphframes_available(spark):
        for algorithm in ("two_phase", "randomized_contraction"):
            result[f"graphframes_{algorithm}"] = spark_components(vertices, edges, "graphframes", algorithm)
    else:
        result["graphframes"] = "not run: org.graphframes.GraphFrame is not on the classpath (jar not served)"
    result["scipy"] = scipy_components(vertices, edges)
    result["components_agree"] = result["scipy"]["components"] == result["spark_builtin"]["components"]
    print(json.dumps(result, indent=2, default=str))
    (work / "result.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if identical and result["components_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
