"""Export the identity stage's connected-components input to Parquet, once.

    .venv/bin/python bench/export_identity_edges.py --members 1000000 --days 2 --work /tmp/cradle_idedges

Generates members (unless ``--skip-generate``), ingests every delivery up to the last day,
runs identity ``--full`` on that day, and writes the edge list its first connected-
components pass consumed (linking values contracted per record, exactly what
``bench/bench_identity.py`` labels) to ``<work>/edges/{vertices,edges}.parquet``.
``bench/bench_graph.py --identity-edges <work>/edges`` then reads it. Slow at 1M members
(ingest dominates); it is meant to be run once and kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench_identity import START, first_pass_edges, machine
from cradle.config import load_env
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.spark import build_spark


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default="/tmp/cradle_idedges")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--driver-memory", default="8g")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.work)
    landing, lake_root, out = work / "landing", work / "lake", work / "edges"
    command_line = " ".join([Path(sys.executable).name, *sys.argv])
    result: dict[str, Any] = {"command": command_line, "machine": machine()}
    if not args.skip_generate:
        t0 = time.monotonic()
        command = [sys.executable, "-m", "cradle", "generate", "--members", str(args.members)]
        command += ["--days", str(args.days), "--seed", str(args.seed), "--out", str(landing)]
        command += ["--workers", "2"]
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
    spark = build_spark(env, app_name="bench-export-identity-edges")
    last = START + timedelta(days=args.days - 1)

    def run(stage: str, day: date, full: bool = False) -> float:
        t0 = time.monotonic()
        run_stages(spark, env, [stage], make_context(env, day, None, full))
        return round(time.monotonic() - t0, 1)

    result["ingest_seconds"] = run("ingest", last)
    result["identity_full_seconds"] = run("identity", last, full=True)
    vertices, edges = first_pass_edges(Lake(spark, env.lake_root))
    vertices.write.mode("overwrite").parquet(str(out / "vertices.parquet"))
    edges.write.mode("overwrite").parquet(str(out / "edges.parquet"))
    result["edge_list"] = {"path": str(out), "vertices": vertices.count(), "edges": edges.count()}
    print(json.dumps(result, indent=2))
    (out / "export.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
