"""Connected components on Spark DataFrames.

Two engines give the same answer (every vertex labelled with the smallest vertex id in
its component):

* ``graphframes``: GraphFrames' ``connectedComponents`` (``two_phase`` or
  ``randomized_contraction``), used when the GraphFrames JVM jar is on the classpath.
* ``builtin``: Cradle's own engine, local contraction rounds (below). It exists because
  some Maven mirrors do not serve ``io.graphframes``, and it is the faster of the two on
  graphs of many small components such as the identity graph.

``auto`` picks GraphFrames when available and the built-in engine otherwise.

The built-in engine, and why it is shaped this way: on Spark the cost of a graph
algorithm is its shuffles and rounds, not its arithmetic, so each round does as much as
one process can do with what it holds, and only what crosses partitions goes on.

1. **Local contraction.** Each partition of the edges runs union-find over its own edges
   (``scipy.sparse.csgraph`` in ``mapInArrow``) and emits one *link* ``(x, r)`` per vertex
   it touches: ``r`` is the smallest vertex of x's component within that partition. The
   links have the graph's connectivity.
2. **A round** shuffles the links by ``x`` (one shuffle). For each x, ``m(x)`` is the
   smallest of its roots: x's *parent* at this level is ``m(x)``. A vertex with one root
   is finished at this level; one with several roots joins components that met in
   different partitions, so the edges ``(r, m(x))`` between its roots are what crosses
   partitions. In the same task, those crossing edges are contracted locally again and
   become the next round's links, over the roots only. Each round's input is the previous
   round's crossing part, so rounds shrink quickly.
3. **Convergence** is the number of links a round emits, counted by ``observe`` in the
   job that materialises the round (a local checkpoint); zero ends the loop. Every
   ``checkpoint_interval`` rounds the whole state is checkpointed reliably (files), so a
   lost executor costs at most that many rounds; those files are deleted at the end.
4. **Labels** are resolved from the last level down: a vertex's component is its
   parent's component at the next level, or its parent itself.

A round whose input has at most ``single_task_rows`` links runs as one task (one
process), which finishes the graph in that round; ``0`` keeps every round on
``spark.sql.shuffle.partitions`` tasks, as on a cluster with a big graph. When a round
shrinks its input by less than half (ids that increase along a long path defeat the
smallest-root rule), the next round uses half as many, larger, partitions, because
contraction within a partition is what makes progress there.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

Engine = Literal["auto", "graphframes", "builtin"]
Algorithm = Literal["two_phase", "randomized_contraction"]
MAX_ROUNDS = 100
SINGLE_TASK_ROWS = 2_000_000  # default of graph.single_task_rows (conf/env)
CHECKPOINT_INTERVAL = 4  # default of graph.checkpoint_interval
CHUNK_EDGES = 10_000_000  # local contraction works on at most this many edges at once
MAX_TASK_ROWS = 20_000_000  # a round never gives one task more links than this
BROADCAST_ROWS = 1_000_000  # label maps up to this size are broadcast in the final join
PARENT, LINK, FINAL = 0, 1, 2

LINK_SCHEMA = "x long, r long, requested boolean"
ROUND_SCHEMA = "kind byte, x long, r long"


def graphframes_available(spark: SparkSession) -> bool:
    """True when the GraphFrames JVM classes can be loaded by this session."""
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName(
            "org.graphframes.GraphFrame", False, jvm.Thread.currentThread().getContextClassLoader()
        )
    except Exception:  # py4j wraps ClassNotFoundException
        return False
    return True


def resolve_engine(spark: SparkSession, engine: Engine) -> Literal["graphframes", "builtin"]:
    if engine == "builtin":
        return "builtin"
    available = graphframes_available(spark)
    if engine == "graphframes" and not available:
        raise RuntimeError(
            "graph engine 'graphframes' requested but org.graphframes.GraphFrame is not on the "
            "classpath: add io.graphframes:graphframes-spark4_2.13 to the jars, or set "
            "graph.engine to 'auto' or 'builtin'"
        )
    return "graphframes" if available else "builtin"


def connected_components(
    vertices: DataFrame,
    edges: DataFrame,
    engine: Engine = "auto",
    algorithm: Algorithm = "two_phase",
    checkpoint_interval: int = CHECKPOINT_INTERVAL,
    *,
    single_task_rows: int = SINGLE_TASK_ROWS,
) -> DataFrame:
    """Label each vertex with its component.

    ``vertices`` has a long column ``id``; ``edges`` has long columns ``src`` and ``dst``
    (direction is ignored, self-loops and duplicates are harmless, edges with a null end
    are ignored). Returns ``id`` and ``component``, where ``component`` is the smallest
    vertex id in the component, once per distinct non-null ``id``. ``algorithm`` applies
    to GraphFrames only; ``checkpoint_interval`` is how many rounds pass between reliable
    checkpoints; ``single_task_rows`` is explained in the module docstring. The built-in
    engine runs its rounds when called; what it returns reads their local checkpoints.

    >>> connected_components(v, e).groupBy("component").count()
    """
    spark = vertices.sparkSession
    chosen = resolve_engine(spark, engine)
    vertices = vertices.select(F.col("id").cast("long").alias("id"))
    edges = edges.select(F.col("src").cast("long").alias("src"), F.col("dst").cast("long").alias("dst"))
    if chosen == "graphframes":
        from graphframes import GraphFrame

        labelled = GraphFrame(vertices, edges).connectedComponents(
            algorithm=algorithm, checkpointInterval=checkpoint_interval
        )
        return labelled.select("id", F.col("component").cast("long").alias("component"))
    return contraction_components(vertices, edges, checkpoint_interval, single_task_rows)


# --- the per-partition work (numpy / scipy inside mapInArrow) -------------------------------


def local_roots(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex of the edges ``a[i]-b[i]`` and the smallest vertex of its component."""
    import pandas as pd
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    codes, ids = pd.factorize(np.concatenate([a, b]), sort=False)
    n, m = len(ids), len(a)
    if m == 0:
        return ids.astype(np.int64), ids.astype(np.int64)
    graph = csr_matrix((np.ones(m), (codes[:m], codes[m:])), shape=(n, n))
    count, labels = scipy_components(graph, directed=False)
    root = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(root, labels, ids)
    return ids.astype(np.int64), root[labels]


def _table(batches: Iterator[pa.RecordBatch], empty: pa.Schema) -> pa.Table:
    """All batches as one table (Spark's nullability flags vary, so the schema is only
    imposed on an empty partition)."""
    items = list(batches)
    return pa.Table.from_batches(items) if items else empty.empty_table()


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def contract_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Edges ``(src, dst)`` of one partition -> links ``(x, r, requested=false)``.

    Works on chunks of at most ``CHUNK_EDGES`` edges so that a huge partition cannot
    exhaust the worker's memory; a smaller chunk only contracts less.
    """
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_EDGES:
            yield from _contract_chunk(pending)
            pending, rows = [], 0
    if rows:
        yield from _contract_chunk(pending)


def _contract_chunk(batches: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    table = pa.Table.from_batches(batches)
    x, r = local_roots(_column(table, "src"), _column(table, "dst"))
    yield pa.RecordBatch.from_arrays(
        [pa.array(x), pa.array(r), pa.array(np.zeros(len(x), dtype=bool))], names=["x", "r", "requested"]
    )


LINK_ARROW = pa.schema([("x", pa.int64()), ("r", pa.int64()), ("requested", pa.bool_())])


def round_partition(batches: Iterator[pa.RecordBatch], first: bool, alone: bool) -> Iterator[pa.RecordBatch]:
    """One round's work on the links of one partition (all links of each x are here).

    Emits the parent of each x (in the first round only of the requested vertices, the
    links there carry ``requested``) and the next round's links: the crossing edges
    ``(r, m(x))`` contracted within this partition. When this task is ``alone`` (the
    round's only one) that contraction covers every crossing edge, so its roots are final:
    they are emitted as the next level's parents (``FINAL``) and no link goes on.
    """
    table = _table(batches, LINK_ARROW)
    import pandas as pd

    x, r, requested = _column(table, "x"), _column(table, "r"), _column(table, "requested")
    codes, ids = pd.factorize(x, sort=False)
    ids = ids.astype(np.int64)
    n = len(ids)
    candidate = ~requested
    parent = ids.copy()  # a requested vertex without edges is its own parent
    np.minimum.at(parent, codes[candidate], r[candidate])
    if first:
        keep = np.zeros(n, dtype=bool)
        keep[codes[requested]] = True
    else:
        keep = np.ones(n, dtype=bool)
    crossing = candidate & (r != parent[codes])
    next_x, next_r = local_roots(r[crossing], parent[codes[crossing]])
    kinds = np.concatenate(
        [
            np.full(int(keep.sum()), PARENT, dtype=np.int8),
            np.full(len(next_x), FINAL if alone else LINK, dtype=np.int8),
        ]
    )
    out = pa.table(
        {
            "kind": kinds,
            "x": np.concatenate([ids[keep], next_x]),
            "r": np.concatenate([parent[keep], next_r]),
        }
    )
    yield from out.to_batches(max_chunksize=1_000_000)


# --- the rounds (Spark) ----------------------------------------------------------------------


def next_partitions(rows: int, previous_rows: int, previous: int, default: int, single_task_rows: int) -> int:
    """How many tasks the next round gets (see the module docstring)."""
    if rows <= single_task_rows:
        return 1
    parts = previous // 2 if previous_rows and rows > previous_rows / 2 else previous
    return max(parts, 2 if default > 1 else 1, math.ceil(rows / MAX_TASK_ROWS))


KINDS = {"parents": PARENT, "links": LINK, "final": FINAL}


def count_of(kind: int) -> Column:
    return F.coalesce(F.sum((F.col("kind") == kind).cast("long")), F.lit(0))


def estimated_rows(frame: DataFrame) -> int:
    """Spark's own estimate of a frame's rows, from its optimised plan (no job runs):
    exact for local relations, from the compressed size for files, an overestimate after
    joins and filters, and unknown (huge) for frames built on RDDs."""
    stats = frame._jdf.queryExecution().optimizedPlan().stats()
    if stats.rowCount().isDefined():
        return int(str(stats.rowCount().get()))
    return int(str(stats.sizeInBytes())) // (8 + 8 * len(frame.columns))


@dataclass
class Level:
    """Where a round's parents are kept (a checkpointed frame) and how many there are."""

    frame: DataFrame
    parents: int
    reliable: bool = False


def contraction_components(
    vertices: DataFrame, edges: DataFrame, checkpoint_interval: int, single_task_rows: int
) -> DataFrame:
    """The built-in engine (see the module docstring)."""
    if checkpoint_interval < 1:
        raise ValueError("checkpoint_interval must be at least 1")
    spark = vertices.sparkSession
    default = int(spark.conf.get("spark.sql.shuffle.partitions") or "1")
    links = edges.where(F.col("src").isNotNull() & F.col("dst").isNotNull()).mapInArrow(
        contract_partition, LINK_SCHEMA
    )
    requested = vertices.where(F.col("id").isNotNull()).select(
        F.col("id").alias("x"), F.col("id").alias("r"), F.lit(True).alias("requested")
    )
    todo = links.unionByName(requested)
    # Spark's estimate of file-backed frames is their compressed size: leave a wide margin.
    first_rows = 4 * (2 * estimated_rows(edges) + estimated_rows(vertices))
    parts = 1 if first_rows <= single_task_rows else default
    previous_rows = 0
    levels: dict[int, Level] = {}
    made: list[DataFrame] = []  # every checkpointed frame, released at the end
    for level in range(1, MAX_ROUNDS + 1):
        observation = Observation(f"connected_components_round_{level}")
        step = functools.partial(round_partition, first=level == 1, alone=parts == 1)
        out = (
            # Salted by the round: a fixed hash would let a path settle into neighbours that
            # always sit in different partitions, where no round contracts anything.
            todo.repartition(parts, F.xxhash64(F.col("x"), F.lit(level)))
            .mapInArrow(step, ROUND_SCHEMA)
            .observe(observation, *[count_of(kind).alias(name) for name, kind in KINDS.items()])
            # A single task's final roots are the next level's parents.
            .select(
                F.when(F.col("kind") == FINAL, F.lit(PARENT).cast("byte"))
                .otherwise(F.col("kind"))
                .alias("kind"),
                "x",
                "r",
                (F.lit(level) + (F.col("kind") == FINAL).cast("int")).alias("level"),
            )
            .localCheckpoint()
        )
        made.append(out)
        counts = {k: int(v) for k, v in observation.get.items()}
        levels[level] = Level(out, counts["parents"])
        log.info(
            "connected components: round %d on %d task(s): %d parents, %d links on, %d final",
            level,
            parts,
            counts["parents"],
            counts["links"],
            counts["final"],
        )
        last = level
        if counts["final"]:
            last = level + 1
            levels[last] = Level(out, counts["final"])
        if counts["links"] == 0:
            break
        if level % checkpoint_interval == 0:
            out = _checkpoint_reliably(levels, level)
            made.append(out)
        todo = out.where((F.col("level") == level) & (F.col("kind") == LINK)).select(
            "x", "r", F.lit(False).alias("requested")
        )
        parts = next_partitions(counts["links"], previous_rows, parts, default, single_task_rows)
        previous_rows = counts["links"]
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    result = _resolve(levels, last)
    if not any(level.reliable for level in levels.values()):
        # Only local checkpoints behind it: Spark drops their blocks once the result is
        # garbage; materialising it here would cost a pass over every vertex for nothing.
        return result
    # Files must not outlive the call: materialise the labels, then delete them.
    result = result.localCheckpoint()
    _release(spark, made)
    return result


def _checkpoint_reliably(levels: dict[int, Level], level: int) -> DataFrame:
    """Write the whole state to files: every level's parents not yet in a file, and this
    round's links. Read from the local checkpoints, so nothing is computed twice."""
    pending = [k for k, kept in levels.items() if not kept.reliable]
    parts = [levels[k].frame.where((F.col("kind") == PARENT) | (F.col("level") == level)) for k in pending]
    saved = functools.reduce(DataFrame.unionByName, parts).checkpoint()
    for k in pending:
        levels[k] = Level(saved, levels[k].parents, reliable=True)
    path = saved._jdf.queryExecution().logical().rdd().getCheckpointFile().get()
    log.info("connected components: reliable checkpoint of rounds %s written to %s", pending, path)
    return saved


def _parents(levels: dict[int, Level], level: int) -> DataFrame:
    frame = levels[level].frame
    return frame.where((F.col("level") == level) & (F.col("kind") == PARENT)).select("x", "r")


def _resolve(levels: dict[int, Level], last: int) -> DataFrame:
    """Component of each requested vertex, from the last level's parents down to the first."""
    labels = _parents(levels, last).select(F.col("x"), F.col("r").alias("label"))
    for level in range(last - 1, 0, -1):
        above = labels.select(F.col("x").alias("r"), F.col("label"))
        if levels[level + 1].parents <= BROADCAST_ROWS:
            above = F.broadcast(above)
        labels = (
            _parents(levels, level)
            .join(above, on="r", how="left")
            .select("x", F.coalesce(F.col("label"), F.col("r")).alias("label"))
        )
    return labels.select(F.col("x").alias("id"), F.col("label").alias("component"))


def _release(spark: SparkSession, frames: list[DataFrame]) -> None:
    """Drop the blocks of local checkpoints and delete the files of reliable ones."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for frame in frames:
        rdd = frame._jdf.queryExecution().logical().rdd()
        checkpoint_file = rdd.getCheckpointFile()
        rdd.unpersist(False)
        if checkpoint_file.isDefined():
            path = jvm.org.apache.hadoop.fs.Path(checkpoint_file.get())
            path.getFileSystem(conf).delete(path, True)
