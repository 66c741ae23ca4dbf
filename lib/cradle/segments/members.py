"""Pure transforms that evaluate segments: the wide frame, members and sizes."""

from __future__ import annotations

from datetime import date

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.config import ConfigError
from cradle.segments.expressions import Expression, tag_column, to_column


def wide_frame(
    profile: DataFrame | None, tags: DataFrame, tag_names: tuple[str, ...] | list[str]
) -> DataFrame:
    """One row per person: the profile's columns (when there is a profile) and one column
    ``tag__<t>`` per tag holding its value (null: no tag).

    ``tags`` is long-form ``(one_id, tag, value, ...)`` as of the run date, e.g.
    ``tags_as_of(member_tags, day)``; where two sources give one tag, the greatest value wins.
    People appear if they are in the profile or hold any tag.
    """
    names = sorted(set(tag_names))
    long = tags.where(F.col("tag").isin(*names)) if names else tags.limit(0)
    pivoted = long.groupBy("one_id").pivot("tag", names).agg(F.max("value")) if names else None
    ids = tags.select("one_id")
    if profile is not None:
        ids = ids.unionByName(profile.select("one_id"))
    wide = ids.distinct()
    if profile is not None:
        wide = wide.join(profile, on="one_id", how="left")
    if pivoted is not None:
        wide = wide.join(
            pivoted.select("one_id", *[F.col(f"`{n}`").alias(tag_column(n)) for n in names]),
            on="one_id",
            how="left",
        )
    return wide


def check_expressions(wide: DataFrame, expressions: dict[str, Expression], run_date: date) -> None:
    """Let Spark analyse every expression over ``wide`` (type errors, e.g. a date compared
    with a number in a way Spark cannot cast) and name the segment if it fails."""
    for name, expression in expressions.items():
        try:
            wide.select(to_column(expression, run_date).alias("in_segment"))
        except AnalysisException as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"segments.yaml: segment '{name}': {first}") from None


def segment_members(
    wide: DataFrame, expressions: dict[str, Expression], run_date: date, run_id: str
) -> DataFrame:
    """``(segment, one_id, as_of, run_id)``: who is in which segment, in one pass over ``wide``."""
    if not expressions:
        return wide.sparkSession.createDataFrame(
            [], "segment string, one_id string, as_of date, run_id string"
        )
    flags = F.array(*[F.when(to_column(e, run_date), F.lit(name)) for name, e in sorted(expressions.items())])
    return wide.select("one_id", F.explode(F.array_compact(flags)).alias("segment")).select(
        "segment",
        "one_id",
        F.lit(run_date).cast("date").alias("as_of"),
        F.lit(run_id).alias("run_id"),
    )


def segment_sizes(members: DataFrame, names: list[str], run_date: date, run_id: str) -> DataFrame:
    """``(segment, as_of, members, run_id)`` for every segment in ``names`` (0 when empty)."""
    listed = members.sparkSession.createDataFrame([(n,) for n in sorted(names)], "segment string")
    counted = members.groupBy("segment").agg(F.countDistinct("one_id").alias("members"))
    return listed.join(counted, on="segment", how="left").select(
        "segment",
        F.lit(run_date).cast("date").alias("as_of"),
        F.coalesce(F.col("members"), F.lit(0)).cast("long").alias("members"),
        F.lit(run_id).alias("run_id"),
    )


def masked_contacts(crm: DataFrame) -> DataFrame:
    """``(one_id, mobile_masked)`` from CRM rows that carry ``one_id``: the masked mobile
    only (138****8000), never a token or ciphertext; one per person (the greatest)."""
    return (
        crm.where(F.col("mobile_masked").isNotNull())
        .groupBy("one_id")
        .agg(F.max("mobile_masked").alias("mobile_masked"))
    )


def sample(matches: DataFrame, contacts: DataFrame, limit: int) -> DataFrame:
    """The first ``limit`` matching people by one_id with their masked mobile (or null)."""
    first = matches.select("one_id").orderBy("one_id").limit(limit)
    return first.join(contacts, on="one_id", how="left").select("one_id", "mobile_masked").orderBy("one_id")
