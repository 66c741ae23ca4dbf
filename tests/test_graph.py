from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.evals.graphs import component_stats, evaluate, read_ca_grqc, read_email_eu_core
from cradle.graph import connected_components, graphframes_available, resolve_engine

EDGE = "src long, dst long"
LABEL = "id long, component long"


def components(spark: SparkSession, ids: list[int], edges: list[tuple[int, int]]):
    vertices = spark.createDataFrame([(i,) for i in ids], "id long")
    return connected_components(vertices, spark.createDataFrame(edges, EDGE), engine="builtin")


def test_chain_star_isolated_and_self_loop(spark: SparkSession) -> None:
    got = components(
        spark,
        [1, 2, 3, 4, 5, 10, 11, 12, 13, 20, 30],
        # A chain listed out of order, a star, a self-loop and duplicate/reversed edges.
        [(4, 5), (1, 2), (3, 4), (2, 3), (13, 10), (10, 11), (12, 10), (11, 10), (20, 20)],
    )
    want = [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
        (10, 10),
        (11, 10),
        (12, 10),
        (13, 10),
        (20, 20),
        (30, 30),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(want, LABEL))


def test_long_path_needs_several_rounds(spark: SparkSession) -> None:
    # A path whose ids zig-zag defeats one-round label propagation.
    order = [0, 63, 1, 62, 2, 61, 3, 60, 4, 59, 5, 58, 6, 57, 7, 56]
    got = components(spark, order, list(itertools.pairwise(order)))
    assertDataFrameEqual(got, spark.createDataFrame([(i, 0) for i in order], LABEL))


def test_empty_edges(spark: SparkSession) -> None:
    got = components(spark, [7, 8], [])
    assertDataFrameEqual(got, spark.createDataFrame([(7, 7), (8, 8)], LABEL))


def test_ca_grqc_matches_published_statistics(spark: SparkSession, shared: Path) -> None:
    vertices, edges = read_ca_grqc(spark, shared / "graphs")
    stats = component_stats(connected_components(vertices, edges, engine="builtin"))
    assert stats == {"nodes": 5242, "components": 355, "largest": 4158}


def test_email_eu_core_with_isolated_nodes(spark: SparkSession, shared: Path) -> None:
    vertices, edges = read_email_eu_core(spark, shared / "graphs")
    stats = component_stats(connected_components(vertices, edges, engine="builtin"))
    assert stats["nodes"] == 1005
    assert stats["largest"] == 986
    assert stats["components"] == 20  # the giant component plus 19 nodes with no edge


def test_graphframes_engine_when_its_jar_is_present(spark: SparkSession, shared: Path) -> None:
    if not graphframes_available(spark):
        with pytest.raises(RuntimeError, match="not on the classpath"):
            resolve_engine(spark, "graphframes")
        assert resolve_engine(spark, "auto") == "builtin"
        return
    vertices, edges = read_ca_grqc(spark, shared / "graphs")
    for algorithm in ("two_phase", "randomized_contraction"):
        labels = connected_components(vertices, edges, engine="graphframes", algorithm=algorithm)
        assertDataFrameEqual(labels, connected_components(vertices, edges, engine="builtin"))


def test_eval_graphs_reports_matches(env, spark: SparkSession, shared: Path) -> None:
    result = evaluate(env, argparse.Namespace(data=str(shared / "graphs")))
    assert result["passed"] is True
    assert result["graphs"]["ca-GrQc"]["measured"]["components"] == 355
