"""Guards against over-merging (pure transforms).

1. Blocked values never link: configured values and patterns, test mobiles turned into
   tokens, and reference placeholders (store phones).
2. Hubs: a value carried by more than ``hub_max_records`` records, or seen together with
   identifiers of more than ``hub_max_persons`` people, does not link. People are counted
   as a lower bound that needs no clustering: for every limited type U (``max_per_person``)
   other than the value's own, ceil(distinct U values seen with it / U.max_per_person);
   the value's count is the largest of these. A store phone typed on the orders of 40
   card holders joins at least 14 people; a family phone joins 2.
3. Split: a component holding more distinct values of a type than ``max_per_person``
   (two mobiles, i.e. two members with their own verified mobile) is split by dropping
   record-to-value edges of the conflicting types, then components are recomputed:

   * level 1: drop the edge when it is not from a verified source (the CRM is the system
     of record for member_id, card and mobile) and the record carries a linking
     identifier of higher priority. A store order with the mother's card and her
     relative's phone stays with the card; the phone no longer glues the families.
   * level 2 (components still in conflict): drop every unverified edge of a conflicting
     type from records that carry any other linking identifier.

   Every record keeps at least one edge, so no record is orphaned; components still in
   conflict after level 2 are kept and audited as ``unresolved``. The rule depends only on
   the data, never on processing order, so incremental and full runs agree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cradle.graph import SINGLE_TASK_ROWS, Algorithm, Engine, connected_components
from cradle.identity.graph import link_edges, normalised, record_components
from cradle.identity.settings import IdentityConfig

log = logging.getLogger(__name__)

VALUE_STATUS_COLUMNS = ("value_id", "id_type", "value", "records", "persons", "status", "reason")


def blocked_list(
    spark: SparkSession,
    registry: IdentityConfig,
    token_key: bytes,
    references: Mapping[str, DataFrame],
) -> DataFrame:
    """Exact blocked values per type: (id_type, value, reason)."""
    literal = []
    for id_type, spec in registry.identifiers.items():
        literal += [(id_type, v, "blocked value") for v in spec.blocked_values]
        literal += [(id_type, v, "blocked test value") for v in spec.blocked_tokens(token_key)]
    blocked = spark.createDataFrame(literal, "id_type string, value string, reason string")
    for id_type, spec in registry.identifiers.items():
        for ref in spec.blocked_from:
            if ref.table not in references:
                raise KeyError(f"blocked_from table {ref.table!r} was not read")
            rows = references[ref.table].select(
                F.lit(id_type).alias("id_type"),
                normalised(F.col(ref.column), spec).alias("value"),
                F.lit(f"known placeholder: {ref.table}.{ref.column}").alias("reason"),
            )
            blocked = blocked.unionByName(rows.where(F.col("value").isNotNull()))
    return blocked.groupBy("id_type", "value").agg(F.min("reason").alias("reason"))


def pattern_reason(registry: IdentityConfig) -> F.Column:
    """Reason a value is blocked by a configured pattern, else null (first match wins)."""
    reasons = [
        F.when(
            (F.col("id_type") == id_type) & F.col("value").rlike(pattern), F.lit(f"blocked pattern {pattern}")
        )
        for id_type, spec in registry.identifiers.items()
        for pattern in spec.blocked_patterns
    ]
    return F.coalesce(*reasons) if reasons else F.lit(None).cast("string")


def with_blocked(occurrences: DataFrame, blocked: DataFrame, registry: IdentityConfig) -> DataFrame:
    """Occurrences plus ``blocked_reason`` (null when the value may link)."""
    exact = F.broadcast(blocked.withColumnRenamed("reason", "exact_reason"))
    return (
        occurrences.join(exact, on=["id_type", "value"], how="left")
        .withColumn("blocked_reason", F.coalesce(F.col("exact_reason"), pattern_reason(registry)))
        .drop("exact_reason")
    )


def value_stats(occurrences: DataFrame, registry: IdentityConfig) -> DataFrame:
    """Per value: records carrying it and the lower bound of people it joins.

    ``occurrences`` must carry ``blocked_reason``; blocked values do not count as evidence
    of people.
    """
    limits = {t: s.max_per_person for t, s in registry.identifiers.items() if s.max_per_person}
    records = occurrences.groupBy("value_id", "id_type", "value", "blocked_reason").agg(
        F.countDistinct("record_id").alias("records")
    )
    limit_of = F.lit(None).cast("int")
    for id_type, limit in limits.items():
        limit_of = F.when(F.col("other_type") == id_type, F.lit(limit)).otherwise(limit_of)
    mine = occurrences.select("record_id", "value_id", "id_type")
    others = occurrences.where(
        F.col("blocked_reason").isNull() & F.col("id_type").isin(*limits.keys())
    ).select(
        "record_id",
        F.col("value_id").alias("other_value"),
        F.col("id_type").alias("other_type"),
    )
    seen_with = (
        mine.join(others, on="record_id", how="inner")
        .where(F.col("id_type") != F.col("other_type"))
        .select("value_id", "other_type", "other_value")
        .distinct()
        .groupBy("value_id", "other_type")
        .agg(F.count("*").alias("n"))
        .withColumn("people", F.ceil(F.col("n") / limit_of))
        .groupBy("value_id")
        .agg(F.max("people").cast("long").alias("persons"))
    )
    return records.join(seen_with, on="value_id", how="left").withColumn(
        "persons", F.coalesce(F.col("persons"), F.lit(1).cast("long"))
    )


def with_status(stats: DataFrame, registry: IdentityConfig) -> DataFrame:
    """``status`` (link / attribute / blocked / hub) and ``reason`` per value."""
    max_records = F.lit(None).cast("long")
    max_persons = F.lit(None).cast("long")
    links = F.lit(None).cast("boolean")
    for id_type, spec in registry.identifiers.items():
        is_type = F.col("id_type") == id_type
        max_records = F.when(is_type, F.lit(spec.hub_max_records)).otherwise(max_records)
        max_persons = F.when(is_type, F.lit(spec.hub_max_persons)).otherwise(max_persons)
        links = F.when(is_type, F.lit(spec.links)).otherwise(links)
    too_many_records = F.col("records") > max_records
    too_many_people = F.col("persons") > max_persons
    status = (
        F.when(F.col("blocked_reason").isNotNull(), F.lit("blocked"))
        .when(~links, F.lit("attribute"))
        .when(too_many_records | too_many_people, F.lit("hub"))
        .otherwise(F.lit("link"))
    )
    reason = (
        F.when(F.col("blocked_reason").isNotNull(), F.col("blocked_reason"))
        .when(~links, F.lit("type does not link"))
        .when(
            too_many_records,
            F.format_string("hub: %d records > limit %d", F.col("records"), max_records),
        )
        .when(
            too_many_people,
            F.format_string("hub: joins at least %d people > limit %d", F.col("persons"), max_persons),
        )
    )
    return stats.select(
        "value_id",
        "id_type",
        "value",
        "records",
        "persons",
        status.alias("status"),
        reason.alias("reason"),
    )


def conflicts(links: DataFrame, registry: IdentityConfig) -> DataFrame:
    """(component, id_type, values) where a component holds more values of a type than
    one person may have."""
    limit_of = F.lit(None).cast("int")
    for id_type, spec in registry.identifiers.items():
        if spec.max_per_person:
            limit_of = F.when(F.col("id_type") == id_type, F.lit(spec.max_per_person)).otherwise(limit_of)
    return (
        links.groupBy("component", "id_type")
        .agg(F.countDistinct("value_id").alias("values"))
        .withColumn("limit", limit_of)
        .where(F.col("limit").isNotNull() & (F.col("values") > F.col("limit")))
        .select("component", "id_type", "values")
    )


def drop_conflicting_edges(links: DataFrame, conflicted: DataFrame, level: int) -> DataFrame:
    """Links of conflicted components without the edges the split rule drops (see module)."""
    types = conflicted.select("component", "id_type", F.lit(True).alias("is_conflict_type"))
    marked = links.join(types, on=["component", "id_type"], how="left").withColumn(
        "is_conflict_type", F.coalesce(F.col("is_conflict_type"), F.lit(False))
    )
    record = Window.partitionBy("record_id").rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    if level == 1:
        has_stronger = F.min("priority").over(record) < F.col("priority")
        drop = F.col("is_conflict_type") & ~F.col("is_verified") & has_stronger
    else:
        has_other = F.max((~F.col("is_conflict_type")).cast("int")).over(record) == 1
        drop = F.col("is_conflict_type") & ~F.col("is_verified") & has_other
    return (
        marked.withColumn("is_dropped", drop)
        .where(~F.col("is_dropped"))
        .drop("is_conflict_type", "is_dropped")
    )


def components(
    links: DataFrame,
    engine: Engine,
    algorithm: Algorithm,
    checkpoint_interval: int,
    single_task_rows: int = SINGLE_TASK_ROWS,
) -> DataFrame:
    """``links`` (record_id, value_id, ...) with the ``component`` of each record."""
    vertices, edges = link_edges(links)
    labels = connected_components(
        vertices, edges, engine, algorithm, checkpoint_interval, single_task_rows=single_task_rows
    )
    per_record = record_components(links, labels)
    return links.drop("component").join(per_record, on="record_id", how="inner")


def split_components(
    links: DataFrame,
    registry: IdentityConfig,
    engine: Engine,
    algorithm: Algorithm,
    checkpoint_interval: int = 1,
    single_task_rows: int = SINGLE_TASK_ROWS,
) -> tuple[DataFrame, DataFrame]:
    """Cluster linking occurrences, splitting components that break ``max_per_person``.

    ``links`` are the linking occurrences (record_id, value_id, id_type, priority,
    is_verified, ...). Returns (links with ``component`` (before splitting) and ``cluster``
    (after), split audit rows (component, id_type, values, level, outcome)).
    """
    labelled = components(links, engine, algorithm, checkpoint_interval, single_task_rows).localCheckpoint()
    current = labelled.withColumn("cluster", F.col("component"))
    # Conflicts are always keyed by the current cluster label.
    open_conflicts = conflicts(labelled, registry).localCheckpoint()
    audits = []
    for level in (1, 2):
        if open_conflicts.limit(1).count() == 0:
            break
        conflicted = open_conflicts.select(F.col("component").alias("cluster")).distinct()
        in_conflict = current.join(conflicted, on="cluster", how="left_semi")
        kept = drop_conflicting_edges(
            in_conflict.withColumnRenamed("component", "original").withColumnRenamed("cluster", "component"),
            open_conflicts,
            level,
        ).drop("component")
        # Dropped edges stay out of the clustering; every record keeps at least one value.
        reclustered = (
            components(kept, engine, algorithm, checkpoint_interval, single_task_rows)
            .withColumnRenamed("component", "cluster")
            .withColumnRenamed("original", "component")
        )
        untouched = current.join(conflicted, on="cluster", how="left_anti")
        current = untouched.unionByName(reclustered.select(*untouched.columns)).localCheckpoint()
        audits.append(
            open_conflicts.select(
                "component", "id_type", "values", F.lit(level).alias("level"), F.lit("split").alias("outcome")
            )
        )
        open_conflicts = conflicts(
            reclustered.drop("component").withColumnRenamed("cluster", "component"), registry
        ).localCheckpoint()
    audits.append(
        open_conflicts.select(
            "component", "id_type", "values", F.lit(3).alias("level"), F.lit("unresolved").alias("outcome")
        )
    )
    audit = audits[0]
    for more in audits[1:]:
        audit = audit.unionByName(more)
    return current, audit


def value_status(occurrences: DataFrame, blocked: DataFrame, registry: IdentityConfig) -> DataFrame:
    """Status of every value in ``occurrences`` (blocked, hub, attribute or link), from
    these occurrences alone (a full rebuild; the stage adjusts it for incremental runs)."""
    return with_status(value_stats(with_blocked(occurrences, blocked, registry), registry), registry)


def cluster_records(
    records: DataFrame,
    occurrences: DataFrame,
    values: DataFrame,
    registry: IdentityConfig,
    engine: Engine,
    algorithm: Algorithm,
    checkpoint_interval: int = 1,
    single_task_rows: int = SINGLE_TASK_ROWS,
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Cluster records through their linking values, with the split guard.

    Returns (clusters: record_id, component, cluster; clustered linking occurrences;
    split audit). A record without a linking value is a cluster of its own (its record_id).
    """
    links = occurrences.join(
        values.where(F.col("status") == "link").select("value_id"), on="value_id", how="left_semi"
    )
    clustered, split_audit = split_components(
        links, registry, engine, algorithm, checkpoint_interval, single_task_rows
    )
    clustered = clustered.localCheckpoint()
    per_record = clustered.groupBy("record_id").agg(
        F.min("component").alias("component"), F.min("cluster").alias("cluster")
    )
    clusters = records.join(per_record, on="record_id", how="left").select(
        "record_id",
        F.coalesce(F.col("component"), F.col("record_id")).alias("component"),
        F.coalesce(F.col("cluster"), F.col("record_id")).alias("cluster"),
    )
    return clusters, clustered, split_audit
