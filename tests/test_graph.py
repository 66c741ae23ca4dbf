from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from cradle.config import ConfigError, GraphConfig, load_env
from cradle.evals.graphs import component_stats, evaluate, read_ca_grqc, read_email_eu_core, worst_cases
from cradle.graph import (
    CHECKPOINT_INTERVAL,
    SINGLE_TASK_ROWS,
    connected_components,
    graphframes_available,
    local_roots,
    next_partitions,
    resolve_engine,
)

EDGE = "src long, dst long"
LABEL = "id long, component long"
# Every round on spark.sql.shuffle.partitions tasks, as a cluster runs a big graph; the
# default lets a round with few links finish in one task.
MODES = {"default": {}, "distributed": {"single_task_rows": 0}}


def components(spark: SparkSession, ids: list, edges: list, **options) -> DataFrame:
    vertices = spark.createDataFrame([(i,) for i in ids], "id long")
    return connected_components(vertices, spark.createDataFrame(edges, EDGE), engine="builtin", **options)


@pytest.mark.parametrize("mode", MODES)
def test_chain_star_isolated_and_self_loop(spark: SparkSession, mode: str) -> None:
    got = components(
        spark,
        [1, 2, 3, 4, 5, 10, 11, 12, 13, 20, 30, None, 30],
        # A chain listed out of order, a star, a self-loop, duplicate/reversed edges and
        # edges with a missing end (ignored); vertex 30 listed twice, a null vertex dropped.
        [(4, 5), (1, 2), (3, 4), (2, 3), (13, 10), (10, 11), (12, 10), (11, 10), (20, 20), (30, None)],
        **MODES[mode],
    )
    want = [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (10, 10), (11, 10), (12, 10), (13, 10)]
    want += [(20, 20), (30, 30)]
    assertDataFrameEqual(got, spark.createDataFrame(want, LABEL))


@pytest.mark.parametrize("mode", MODES)
def test_long_path_needs_several_rounds(spark: SparkSession, mode: str) -> None:
    # A path whose ids zig-zag defeats one-round label propagation.
    order = [0, 63, 1, 62, 2, 61, 3, 60, 4, 59, 5, 58, 6, 57, 7, 56]
    got = components(spark, order, list(itertools.pairwise(order)), **MODES[mode])
    assertDataFrameEqual(got, spark.createDataFrame([(i, 0) for i in order], LABEL))


def test_empty_edges(spark: SparkSession) -> None:
    got = components(spark, [7, 8], [])
    assertDataFrameEqual(got, spark.createDataFrame([(7, 7), (8, 8)], LABEL))


def test_vertices_outside_the_edges_can_label_a_component(spark: SparkSession) -> None:
    # 1 is an edge end but not a requested vertex: it is still the smallest of its component.
    got = components(spark, [5, 9], [(5, 1), (1, 9)])
    assertDataFrameEqual(got, spark.createDataFrame([(5, 1), (9, 1)], LABEL))


def test_local_roots_is_union_find() -> None:
    x, r = local_roots(np.array([5, 7, 9, 9], dtype=np.int64), np.array([7, 3, 11, 11], dtype=np.int64))
    assert dict(zip(x.tolist(), r.tolist(), strict=True)) == {5: 3, 7: 3, 3: 3, 9: 9, 11: 9}


def test_next_partitions_shrinks_when_rounds_stall() -> None:
    assert next_partitions(1_500, 9_000, 8, 8, single_task_rows=2_000) == 1
    assert next_partitions(5_000, 20_000, 8, 8, single_task_rows=0) == 8  # shrank to a quarter
    assert next_partitions(15_000, 20_000, 8, 8, single_task_rows=0) == 4  # stalled: bigger tasks
    assert next_partitions(15_000, 20_000, 2, 2, single_task_rows=0) == 2  # never below two when forced


def scipy_labels(ids: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Smallest id of each vertex's component, by scipy (the independent reference)."""
    order = np.sort(ids)
    a, b = np.searchsorted(order, src), np.searchsorted(order, dst)
    n = len(order)
    _, labels = scipy_components(csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, labels, order)
    return np.stack([order, smallest[labels]], axis=1)


@pytest.mark.parametrize(("seed", "vertices", "edges"), [(1, 3000, 1500), (2, 3000, 2900), (3, 2000, 6000)])
@pytest.mark.parametrize("mode", MODES)
def test_random_graphs_match_scipy(
    spark: SparkSession, caplog: pytest.LogCaptureFixture, seed: int, vertices: int, edges: int, mode: str
) -> None:
    """Sparse (many small components), near the giant-component threshold, and dense;
    random 63-bit ids, duplicate edges and self-loops; a reliable checkpoint every round,
    whose files must be gone afterwards."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, size=vertices))
    src, dst = rng.choice(ids, size=edges), rng.choice(ids, size=edges)
    src, dst = np.concatenate([src, src[:50], ids[:20]]), np.concatenate([dst, dst[:50], ids[:20]])
    want = scipy_labels(ids, src, dst)
    with caplog.at_level(logging.INFO, logger="cradle.graph"):
        got = components(
            spark,
            ids.tolist(),
            list(zip(src.tolist(), dst.tolist(), strict=True)),
            checkpoint_interval=1,
            **MODES[mode],
        )
    assertDataFrameEqual(got, spark.createDataFrame(want.tolist(), LABEL))
    written = [r.message.rsplit(" ", 1)[1] for r in caplog.records if "reliable checkpoint" in r.message]
    if mode == "distributed":
        assert written, "two tasks cannot finish a random graph in one round: a checkpoint was due"
    for path in written:
        assert not Path(path.removeprefix("file:")).exists()


def assert_same_rows(got: DataFrame, want: DataFrame) -> None:
    """Whole-frame equality computed by Spark (too many rows to collect)."""
    assert got.count() == want.count()
    assert got.exceptAll(want).limit(5).collect() == []


@pytest.mark.parametrize("mode", MODES)
def test_worst_cases_for_star_algorithms(spark: SparkSession, mode: str) -> None:
    """A path (random and increasing ids), a star and one giant component plus singletons,
    100,000 vertices each. The 1M-vertex versions run in bench/bench_graph.py (each takes
    longer than a unit test should on local[2])."""
    for name, (vertices, edges, want) in worst_cases(spark, 100_000).items():
        got = connected_components(vertices, edges, engine="builtin", **MODES[mode])
        assert want.count() == 100_000, name
        assert_same_rows(got, want)


def test_rounds_do_not_stall_on_a_path_split_across_partitions(spark: SparkSession) -> None:
    """Increasing ids chosen so that path neighbours always land in different partitions
    under Spark's hash partitioning into two. Partitioned by that fixed hash, no round
    would contract anything and each would remove one vertex (MAX_ROUNDS would run out);
    salting the partitioning by round lets contraction work again."""
    rows = spark.range(30_000).select("id", F.pmod(F.hash("id"), F.lit(2)).alias("p")).collect()
    ids: list[int] = []
    side = None
    for row in rows:
        if row["p"] != side:
            ids.append(row["id"])
            side = row["p"]
    edges = list(itertools.pairwise(ids))
    got = components(spark, ids, edges[::2] + edges[1::2], single_task_rows=0)
    assertDataFrameEqual(got, spark.createDataFrame([(i, ids[0]) for i in ids], LABEL))


@pytest.mark.parametrize("mode", MODES)
def test_ca_grqc_matches_published_statistics(spark: SparkSession, shared: Path, mode: str) -> None:
    vertices, edges = read_ca_grqc(spark, shared / "graphs")
    stats = component_stats(connected_components(vertices, edges, engine="builtin", **MODES[mode]))
    assert stats == {"nodes": 5242, "components": 355, "largest": 4158}


@pytest.mark.parametrize("mode", MODES)
def test_email_eu_core_with_isolated_nodes(spark: SparkSession, shared: Path, mode: str) -> None:
    vertices, edges = read_email_eu_core(spark, shared / "graphs")
    stats = component_stats(connected_components(vertices, edges, engine="builtin", **MODES[mode]))
    assert stats["nodes"] == 1005
    assert stats["largest"] == 986
    assert stats["components"] == 20  # the giant component plus 19 nodes with no edge


def test_resolve_engine(spark: SparkSession) -> None:
    assert resolve_engine(spark, "builtin") == "builtin"
    if graphframes_available(spark):
        assert resolve_engine(spark, "auto") == "graphframes"
    else:
        assert resolve_engine(spark, "auto") == "builtin"
        with pytest.raises(RuntimeError, match="not on the classpath"):
            resolve_engine(spark, "graphframes")


def test_graphframes_engine_when_its_jar_is_present(spark: SparkSession, shared: Path) -> None:
    if not graphframes_available(spark):
        pytest.skip("GraphFrames jar not on the classpath (this Maven mirror does not serve io.graphframes)")
    vertices, edges = read_ca_grqc(spark, shared / "graphs")
    for algorithm in ("two_phase", "randomized_contraction"):
        labels = connected_components(vertices, edges, engine="graphframes", algorithm=algorithm)
        assertDataFrameEqual(labels, connected_components(vertices, edges, engine="builtin"))


def test_graph_settings_defaults_and_validation(tmp_path: Path) -> None:
    assert GraphConfig().checkpoint_interval == CHECKPOINT_INTERVAL
    assert GraphConfig().single_task_rows == SINGLE_TASK_ROWS
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "bad.yaml").write_text(
        "lake_root: l\nlanding_root: x\ngraph:\n  single_task_rows: -1\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"bad.yaml.*graph.single_task_rows"):
        load_env("bad", directory=tmp_path)


def test_eval_graphs_reports_matches(env, spark: SparkSession, shared: Path) -> None:
    result = evaluate(env, argparse.Namespace(data=str(shared / "graphs")))
    assert result["passed"] is True
    assert result["graphs"]["ca-GrQc"]["measured"]["components"] == 355
