"""Connected components against published statistics of real graphs (SNAP).

``cradle eval graphs --json`` reads ``../shared/external/graphs`` and compares the
configured engine's components with the figures published for each graph.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from cradle.config import PROJECT_ROOT, EnvConfig
from cradle.graph import connected_components, resolve_engine

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "external" / "graphs"

# Published: SNAP dataset pages (Leskovec, Kleinberg, Faloutsos, TKDD 2007).
PUBLISHED = {
    "ca-GrQc": {"nodes": 5242, "components": 355, "largest": 4158},
    "email-Eu-core": {"nodes": 1005, "largest": 986},
}


def read_ca_grqc(spark: SparkSession, folder: Path) -> tuple[DataFrame, DataFrame]:
    """Tab-separated edge list whose first line is a 'nodes edges' count header."""
    # header=True with an explicit schema skips the count line instead of parsing it.
    edges = spark.read.csv(str(folder / "ca-GrQc.txt"), sep="\t", header=True, schema="src long, dst long")
    return endpoints(edges), edges


def read_email_eu_core(spark: SparkSession, folder: Path) -> tuple[DataFrame, DataFrame]:
    """CSV edges plus a labels file that also lists nodes without any edge."""
    edges = spark.read.csv(str(folder / "email-Eu-core.csv"), header=True, schema="src long, dst long")
    labels = spark.read.csv(str(folder / "email-Eu-core-labels.csv"), header=True, schema="id long, dep long")
    return endpoints(edges).unionByName(labels.select("id")).distinct(), edges


def endpoints(edges: DataFrame) -> DataFrame:
    return edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()


def component_stats(labels: DataFrame) -> dict[str, int]:
    sizes = labels.groupBy("component").count()
    row = sizes.agg(
        F.sum("count").alias("nodes"), F.count("*").alias("components"), F.max("count").alias("largest")
    ).first()
    return {key: int(row[key]) for key in ("nodes", "components", "largest")}


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.spark import build_spark

    folder = Path(args.data) if args.data else DEFAULT_DATA
    spark = build_spark(env, app_name="cradle-eval-graphs")
    engine = resolve_engine(spark, env.graph.engine)
    result: dict[str, Any] = {"engine": engine, "algorithm": env.graph.algorithm, "graphs": {}}
    passed = True
    for name, reader in (("ca-GrQc", read_ca_grqc), ("email-Eu-core", read_email_eu_core)):
        vertices, edges = reader(spark, folder)
        t0 = time.monotonic()
        stats = component_stats(connected_components(vertices, edges, engine, env.graph.algorithm))
        stats["seconds"] = round(time.monotonic() - t0, 2)
        published = PUBLISHED[name]
        matches = all(stats[k] == v for k, v in published.items())
        passed &= matches
        result["graphs"][name] = {"measured": stats, "published": published, "matches": matches}
    result["passed"] = passed
    return result
