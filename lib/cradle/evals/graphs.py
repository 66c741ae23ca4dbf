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
        labels = connected_components(
            vertices,
            edges,
            engine,
            env.graph.algorithm,
            env.graph.checkpoint_interval,
            single_task_rows=env.graph.single_task_rows,
        )
        stats = component_stats(labels)
        stats["seconds"] = round(time.monotonic() - t0, 2)
        published = PUBLISHED[name]
        matches = all(stats[k] == v for k, v in published.items())
        passed &= matches
        result["graphs"][name] = {"measured": stats, "published": published, "matches": matches}
    result["passed"] = passed
    return result


Case = tuple[DataFrame, DataFrame, DataFrame]


def worst_cases(spark: SparkSession, n: int, seed: int = 7) -> dict[str, Case]:
    """Graphs that are hard for star-contraction algorithms, ``n`` vertices each, with
    their exact answer: name -> (vertices, edges, expected labels).

    * ``path``: one path, ids random-looking (``xxhash64`` of the position, like
      identity's vertex ids), so the smallest id sits anywhere along it;
    * ``sorted_path``: one path whose ids increase along it, the worst order for rules that
      hang a vertex from its smallest neighbour;
    * ``star``: one centre and ``n - 1`` leaves (a vertex of huge degree);
    * ``giant_and_singletons``: a random tree on half the vertices (each hangs from a
      random earlier one) and as many vertices without any edge.

    The edges come in a random order, as a hash-partitioned edge list does.
    """
    steps = spark.range(n - 1)
    h = F.xxhash64
    graphs = {
        "path": steps.select(h(F.col("id")).alias("src"), h(F.col("id") + 1).alias("dst")),
        "sorted_path": steps.select(F.col("id").alias("src"), (F.col("id") + 1).alias("dst")),
        "star": steps.select(h(F.lit(n - 1).cast("long")).alias("src"), h(F.col("id")).alias("dst")),
        "giant_and_singletons": spark.range(1, n // 2).select(
            h(F.col("id")).alias("src"), h(F.floor(F.rand(seed) * F.col("id")).cast("long")).alias("dst")
        ),
    }
    cases = {}
    for name, ordered in graphs.items():
        # Edges in a random (hash) order, so no partition holds a stretch of the path.
        edges = ordered.orderBy(h(F.col("src"), F.col("dst")))
        joined = endpoints(edges)
        expected = joined.crossJoin(joined.agg(F.min("id").alias("component")))
        vertices = joined
        if name == "giant_and_singletons":
            singletons = spark.range(n // 2, n).select(h(F.col("id")).alias("id"))
            vertices = joined.unionByName(singletons)
            expected = expected.unionByName(singletons.select("id", F.col("id").alias("component")))
        cases[name] = (vertices, edges, expected)
    return cases
