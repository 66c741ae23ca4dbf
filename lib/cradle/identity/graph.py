"""The identity graph as DataFrames (pure transforms, no I/O).

Vertices are records and identifier values, both with integral ids (64-bit xxhash of
``source|key`` and ``type|value``); each record has an edge to each identifier it carries.
For connected components the bipartite graph is contracted: a record with identifiers
``v1 < v2 < ... < vk`` contributes the star ``v1-v2, ..., v1-vk``. Connectivity between
records is exactly that of the bipartite graph, with far fewer vertices (millions of app
events share a handful of device/user values); a record's component is that of its
values, and a record without linking values is its own component.

    >>> occurrences = identifier_occurrences(silver, keys, registry)
    >>> edges = link_edges(occurrences.join(linking_values, "value_id", how="left_semi"))
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cradle import sqlguard
from cradle.identity.settings import IdentifierSpec, IdentityConfig

OCCURRENCE_COLUMNS = (
    "record_id",
    "source",
    "source_key",
    "id_type",
    "priority",
    "value",
    "value_id",
    "is_verified",
)
RECORD_COLUMNS = ("record_id", "source", "source_key", "_file", "_line", "_ingest_run_id")


def source_key(keys: tuple[str, ...]) -> Column:
    """The record's business key as one string: key columns joined with '|'."""
    return F.concat_ws("|", *[F.coalesce(F.col(k).cast("string"), F.lit("")) for k in keys])


def record_id(source: Column, key: Column) -> Column:
    """Integral record vertex id."""
    return F.xxhash64(F.lit("rec"), source, key)


def value_id(id_type: Column, value: Column) -> Column:
    """Integral identifier vertex id: equal (type, normalised value) gives equal ids."""
    return F.xxhash64(F.lit("val"), id_type, value)


def normalised(value: Column, spec: IdentifierSpec) -> Column:
    """Apply the configured normalisation steps in order; empty results become null."""
    out = value.cast("string")
    for step in spec.normalise:
        if step == "trim":
            out = F.trim(out)
        elif step == "upper":
            out = F.upper(out)
        elif step == "lower":
            out = F.lower(out)
        elif step == "digits":
            out = F.regexp_replace(out, r"[^0-9]", "")
    return F.when(out != "", out)


def records(silver: Mapping[str, DataFrame], keys: Mapping[str, tuple[str, ...]]) -> DataFrame:
    """Every record of the identity-bearing silver tables, with its vertex id and lineage."""
    parts = []
    for source, rows in silver.items():
        key = source_key(keys[source])
        parts.append(
            rows.select(
                record_id(F.lit(source), key).alias("record_id"),
                F.lit(source).alias("source"),
                key.alias("source_key"),
                F.col("_file"),
                F.col("_line"),
                F.col("_ingest_run_id"),
            )
        )
    return _union(parts).select(*RECORD_COLUMNS)


def identifier_occurrences(
    silver: Mapping[str, DataFrame], keys: Mapping[str, tuple[str, ...]], registry: IdentityConfig
) -> DataFrame:
    """One row per (record, identifier value) as configured in the registry.

    Each table is read once: its identifier columns become an array of (type, value)
    structs that is exploded. A value seen twice on one record is one occurrence; it is
    verified if any of its columns is. A column's ``where`` clause passes
    :func:`cradle.sqlguard.expression` (one expression, no subquery) first.
    """
    by_table: dict[str, list[Column]] = {}
    for id_type, spec in registry.identifiers.items():
        for col in spec.columns:
            if col.table not in silver:
                continue
            value = normalised(F.col(col.column), spec)
            if spec.scope_column:
                value = F.when(value.isNotNull(), F.concat_ws(":", F.col(spec.scope_column), value))
            if col.where:
                origin = f"identity.yaml: identifier {id_type!r}, column {col.table}.{col.column}, where"
                value = F.when(sqlguard.expression(silver[col.table].sparkSession, col.where, origin), value)
            by_table.setdefault(col.table, []).append(
                F.struct(
                    F.lit(id_type).alias("id_type"),
                    F.lit(spec.priority).alias("priority"),
                    value.alias("value"),
                    F.lit(col.verified).alias("is_verified"),
                )
            )
    parts = []
    for table, items in by_table.items():
        key = source_key(keys[table])
        parts.append(
            silver[table]
            .select(
                record_id(F.lit(table), key).alias("record_id"),
                F.lit(table).alias("source"),
                key.alias("source_key"),
                F.explode(F.filter(F.array(*items), lambda i: i["value"].isNotNull())).alias("i"),
            )
            .select("record_id", "source", "source_key", "i.*")
        )
    occurrences = _union(parts).withColumn("value_id", value_id(F.col("id_type"), F.col("value")))
    return (
        occurrences.groupBy("record_id", "value_id")
        .agg(
            F.first("source").alias("source"),
            F.first("source_key").alias("source_key"),
            F.first("id_type").alias("id_type"),
            F.first("priority").alias("priority"),
            F.first("value").alias("value"),
            F.max("is_verified").alias("is_verified"),
        )
        .select(*OCCURRENCE_COLUMNS)
    )


def link_edges(links: DataFrame) -> DataFrame:
    """Contracted edges ``src``/``dst`` between the linking values of each record (a star
    from the record's smallest value id), plus every value as a vertex ``id``.

    Returns (vertices, edges).
    """
    first = links.groupBy("record_id").agg(F.min("value_id").alias("hub_value"))
    edges = (
        links.join(first, on="record_id", how="inner")
        .where(F.col("value_id") != F.col("hub_value"))
        .select(F.col("hub_value").alias("src"), F.col("value_id").alias("dst"))
        .distinct()
    )
    vertices = links.select(F.col("value_id").alias("id")).distinct()
    return vertices, edges


def record_components(links: DataFrame, value_components: DataFrame) -> DataFrame:
    """Component of each record that has linking values (all its values share one)."""
    return (
        links.join(value_components.withColumnRenamed("id", "value_id"), on="value_id", how="inner")
        .groupBy("record_id")
        .agg(F.min("component").alias("component"))
    )


def _union(parts: list[DataFrame]) -> DataFrame:
    if not parts:
        raise ValueError("no identity-bearing silver tables were given")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


OCCURRENCE_SCHEMA = T.StructType(
    [
        T.StructField("record_id", T.LongType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("source_key", T.StringType(), False),
        T.StructField("id_type", T.StringType(), False),
        T.StructField("priority", T.IntegerType(), False),
        T.StructField("value", T.StringType(), False),
        T.StructField("value_id", T.LongType(), False),
        T.StructField("is_verified", T.BooleanType(), False),
    ]
)
