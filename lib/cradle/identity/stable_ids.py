"""Stable OneIDs across runs (pure transforms).

Rule, applied to every cluster of the records being (re)assigned:

* A previous one_id's *home* is the cluster holding most of its records (ties: the
  smallest cluster label). Any other cluster holding some of its records is a split piece.
* A cluster keeps the oldest one_id whose home it is (smallest ``one_id_since``, then the
  smallest id); the other previous ids homed there are merged into it and logged with
  the identifier that joined them.
* A cluster with no homed previous id gets a new id derived from its label and the run
  date (deterministic, so a re-run issues the same id); split pieces are logged.

Records of clusters the run did not touch are not passed in, so their ids never change.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ASSIGNMENT_COLUMNS = ("record_id", "cluster", "one_id", "one_id_since", "previous_one_id")
EVENT_COLUMNS = ("event", "old_one_id", "one_id", "cause_type", "cause_value", "records")
NEW = "<new>"


def new_one_id(cluster: F.Column, run_date: date) -> F.Column:
    """'O' + 15 hex digits of sha2(cluster label, run date)."""
    return F.concat(
        F.lit("O"),
        F.upper(
            F.substring(
                F.sha2(F.concat_ws("|", cluster.cast("string"), F.lit(run_date.isoformat())), 256), 1, 15
            )
        ),
    )


def assign_one_ids(clusters: DataFrame, previous: DataFrame, run_date: date) -> DataFrame:
    """One row per record: its cluster, one_id, the date that id was first issued, and the
    previous id.

    ``clusters``: (record_id, cluster); ``previous``: (record_id, one_id, one_id_since) for
    records that had an id before (may be empty).
    """
    prev = previous.select(
        "record_id", F.col("one_id").alias("previous_one_id"), F.col("one_id_since").alias("previous_since")
    )
    pairs = clusters.select("record_id", "cluster").join(prev, on="record_id", how="left")
    counts = (
        pairs.where(F.col("previous_one_id").isNotNull())
        .groupBy("previous_one_id", "cluster")
        .agg(F.count("*").alias("n"), F.min("previous_since").alias("since"))
    )
    by_old = Window.partitionBy("previous_one_id").orderBy(F.col("n").desc(), F.col("cluster"))
    homes = counts.withColumn("rank", F.row_number().over(by_old)).where(F.col("rank") == 1)
    by_cluster = Window.partitionBy("cluster").orderBy(F.col("since"), F.col("previous_one_id"))
    survivors = (
        homes.withColumn("rank", F.row_number().over(by_cluster))
        .where(F.col("rank") == 1)
        .select("cluster", F.col("previous_one_id").alias("kept_id"), F.col("since").alias("kept_since"))
    )
    ids = (
        clusters.select("cluster")
        .distinct()
        .join(survivors, on="cluster", how="left")
        .select(
            "cluster",
            F.coalesce(F.col("kept_id"), new_one_id(F.col("cluster"), run_date)).alias("one_id"),
            F.coalesce(F.col("kept_since"), F.lit(run_date)).alias("one_id_since"),
        )
    )
    return pairs.join(ids, on="cluster", how="inner").select(*ASSIGNMENT_COLUMNS)


def id_events(assigned: DataFrame, links: DataFrame) -> DataFrame:
    """Merges and splits implied by an assignment, one row per (old id, new id).

    ``links``: (record_id, value_id, id_type, priority, value) linking occurrences of the
    assigned records. A merge's cause is the highest-priority identifier carried both by a
    record that held the old id and by a record that did not.
    """
    per_cluster = (
        assigned.where(F.col("previous_one_id").isNotNull())
        .groupBy("previous_one_id", "one_id", "cluster")
        .agg(F.count("*").alias("records"))
    )
    # Same home rule as assign_one_ids: the old id's records moved with its home cluster
    # are a merge (when that cluster kept another id); records elsewhere were split off.
    by_old = Window.partitionBy("previous_one_id").orderBy(F.col("records").desc(), F.col("cluster"))
    kinds = (
        per_cluster.withColumn("is_home", F.row_number().over(by_old) == 1)
        .where(F.col("previous_one_id") != F.col("one_id"))
        .withColumn("event", F.when(F.col("is_home"), F.lit("merge")).otherwise(F.lit("split")))
    )
    holders = (
        links.select("record_id", "value_id", "id_type", "priority", "value")
        .join(assigned.select("record_id", "cluster", "previous_one_id"), on="record_id", how="inner")
        .groupBy("cluster", "value_id", "id_type", "priority", "value")
        .agg(F.collect_set(F.coalesce(F.col("previous_one_id"), F.lit(NEW))).alias("holders"))
        .where(F.size("holders") >= 2)
        .select("cluster", "id_type", "priority", "value", F.explode("holders").alias("previous_one_id"))
    )
    best = Window.partitionBy("cluster", "previous_one_id").orderBy("priority", "id_type", "value")
    causes = (
        holders.withColumn("rank", F.row_number().over(best))
        .where(F.col("rank") == 1)
        .select(
            "cluster",
            "previous_one_id",
            F.col("id_type").alias("cause_type"),
            F.col("value").alias("cause_value"),
        )
    )
    return kinds.join(causes, on=["cluster", "previous_one_id"], how="left").select(
        "event",
        F.col("previous_one_id").alias("old_one_id"),
        "one_id",
        F.when(F.col("event") == "merge", F.col("cause_type")).alias("cause_type"),
        F.when(F.col("event") == "merge", F.col("cause_value")).alias("cause_value"),
        "records",
    )
