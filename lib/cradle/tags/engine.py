"""Pure parts of the tag engine: rule compilation, evaluation, DMP merge and SCD-2 history.

Rules are Spark SQL over *source views*: every table a rule names by its qualified name
(``cradle_silver.app_events``, ``cradle_gold.member_profile``) is swapped for a temporary
view of the frame the caller supplies under that name, without its protected columns. The
stage supplies silver tables with a ``one_id`` column (joined to the current
``identity_map``); tests supply literal frames.

Compiling a rule never runs it. :mod:`cradle.sqlguard` parses it first and refuses anything
but a single SELECT over the supplied tables (no DML or DDL, no restricted table, no
protected column, no escape-hatch function); only then does Spark analyse it, so an unknown
column, a wrong output shape or a syntax error is a :class:`ConfigError` naming the tag
before anything is written.

History (``cradle_gold.member_tags``) is SCD-2 on ``(one_id, tag, source)``: a row is
valid from ``valid_from`` (inclusive) to ``valid_to`` (exclusive, null while it holds);
``as_of`` is the last run date that confirmed it. See :func:`history_update`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cradle import sqlguard
from cradle.config import ConfigError
from cradle.identity.graph import source_key
from cradle.tags.settings import PLACEHOLDER, TagsConfig, TagSpec, ThirdPartySpec

log = logging.getLogger(__name__)

RULE_SOURCE = "rule"
VIEW_PREFIX = "tag_source__"
CURRENT_COLUMNS = ("one_id", "tag", "value", "source", "category", "source_date")
HISTORY_KEY = ("one_id", "tag", "source")
HISTORY_COLUMNS = (
    "one_id",
    "tag",
    "value",
    "source",
    "category",
    "source_date",
    "valid_from",
    "valid_to",
    "as_of",
    "run_id",
)


def view_name(qualified_name: str) -> str:
    """The temporary view standing for a qualified table in rules: ``tag_source__cradle_silver__x``."""
    return VIEW_PREFIX + qualified_name.replace(".", "__")


def window_start(run_date: date, window_days: int) -> date:
    """First day of a window of ``window_days`` days ending on (and including) ``run_date``."""
    return run_date - timedelta(days=window_days - 1)


def render_rule(spec: TagSpec, run_date: date) -> str:
    """The rule's SQL with its placeholders filled (as DATE literals and a number)."""
    values = {"run_date": f"DATE'{run_date.isoformat()}'"}
    if spec.window_days is not None:
        values["window_start"] = f"DATE'{window_start(run_date, spec.window_days).isoformat()}'"
        values["window_days"] = str(spec.window_days)
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], spec.rule)


def register_sources(sources: Mapping[str, DataFrame], hidden: Mapping[str, Collection[str]]) -> None:
    """Expose each source frame to rules under its qualified name (as a temporary view),
    without the columns ``hidden`` names for it (the table's protected columns)."""
    for qualified_name, rows in sources.items():
        visible = sqlguard.hide_columns(rows, hidden.get(qualified_name, ()))
        visible.createOrReplaceTempView(view_name(qualified_name))


def _spark_message(err: Exception) -> str:
    """The first line of Spark's error, with view names turned back into table names."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return re.sub(
        "`?" + VIEW_PREFIX + r"([a-z]+)__(\w+?)`?(?=\W|$)",
        lambda m: f"{m.group(1)}.{m.group(2)}",
        text,
        flags=re.IGNORECASE,
    )


@dataclass(frozen=True)
class CompiledRules:
    frames: dict[str, DataFrame]  # tag -> (one_id STRING, value STRING), values never null
    skipped: dict[str, str]  # tag -> why (a table it reads is not built yet)


def compile_rules(
    spark: SparkSession,
    config: TagsConfig,
    sources: dict[str, DataFrame],
    run_date: date,
    names: list[str] | None = None,
    pending: frozenset[str] = frozenset(),
    hidden: Mapping[str, Collection[str]] | None = None,
) -> CompiledRules:
    """Check and analyse every rule (or those in ``names``) against ``sources`` without
    running it.

    ``pending`` are qualified tables rules may name that do not exist yet (the profile
    before its stage first runs): rules reading them are skipped, not failed. ``hidden``
    maps a source to its protected columns, which rules can neither see nor name.
    """
    hidden = dict(hidden or {})
    register_sources(sources, hidden)
    readable = {name: tuple(hidden.get(name, ())) for name in (*sources, *pending)}
    frames: dict[str, DataFrame] = {}
    skipped: dict[str, str] = {}
    for name in names if names is not None else list(config.tags):
        origin = f"tags.yaml: tag '{name}'"
        query = sqlguard.check_query(spark, render_rule(config.tags[name], run_date), origin, readable)
        missing = sorted(query.tables & pending)
        if missing:
            skipped[name] = f"reads {', '.join(missing)}, which does not exist yet"
            log.warning("tag %s skipped: %s", name, skipped[name])
            continue
        views = {table: view_name(table) for table in query.tables}
        sql = sqlguard.bind(spark, query, views)
        try:
            rows = spark.sql(sql)  # a single query (checked above): analysed, not run
        except (AnalysisException, ParseException) as err:
            raise ConfigError(f"{origin}: {_spark_message(err)}") from None
        sqlguard.check_reads_only(rows, views.values(), origin)
        frames[name] = checked_output(name, rows)
    return CompiledRules(frames, skipped)


def checked_output(name: str, rows: DataFrame) -> DataFrame:
    """Insist on exactly ``(one_id, value)``: one_id a string, value a plain (non-nested) type."""
    columns = [c.lower() for c in rows.columns]
    if sorted(columns) != ["one_id", "value"]:
        raise ConfigError(
            f"tags.yaml: tag '{name}': rule must return exactly the columns (one_id, value), "
            f"got ({', '.join(rows.columns)})"
        )
    types = {f.name.lower(): f.dataType for f in rows.schema.fields}
    if not isinstance(types["one_id"], T.StringType):
        raise ConfigError(
            f"tags.yaml: tag '{name}': one_id must be a string, got {types['one_id'].simpleString()}"
        )
    if isinstance(types["value"], (T.ArrayType, T.MapType, T.StructType, T.BinaryType)):
        raise ConfigError(
            f"tags.yaml: tag '{name}': value must be a plain value, got {types['value'].simpleString()}"
        )
    return rows.select(F.col("one_id").alias("one_id"), F.col("value").cast("string").alias("value")).where(
        F.col("one_id").isNotNull() & F.col("value").isNotNull()
    )


def rule_tags(config: TagsConfig, frames: dict[str, DataFrame]) -> DataFrame | None:
    """The evaluated rules as current tag rows (``CURRENT_COLUMNS``)."""
    parts = [
        rows.select(
            "one_id",
            F.lit(name).alias("tag"),
            "value",
            F.lit(RULE_SOURCE).alias("source"),
            F.lit(config.tags[name].category).alias("category"),
            F.lit(None).cast("date").alias("source_date"),
        )
        for name, rows in frames.items()
    ]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def third_party_tags(dmp: DataFrame, spec: ThirdPartySpec, run_date: date) -> DataFrame:
    """DMP tags (silver ``dmp_tags`` with ``one_id``) as current tag rows.

    A listed DMP tag holds for a person when the DMP reported it within the window with a
    score of at least ``min_score`` (a missing score does not count); ``value`` is ``high``
    from ``high_score`` up, else ``medium``; ``source`` is ``dmp:<name>`` and
    ``source_date`` the latest report. Two DMPs reporting the same tag give two rows.
    """
    start = window_start(run_date, spec.window_days)
    reported = dmp.where(
        F.col("tag_date").between(F.lit(start), F.lit(run_date))
        & F.col("tag").isin(*spec.tags)
        & (F.col("score") >= F.lit(spec.min_score))
        & F.col("one_id").isNotNull()
    )
    per_person = reported.groupBy("one_id", "dmp", "tag").agg(
        F.max("score").alias("score"), F.max("tag_date").alias("source_date")
    )
    return per_person.select(
        "one_id",
        F.concat(F.lit(spec.prefix), F.col("tag")).alias("tag"),
        F.when(F.col("score") >= F.lit(spec.high_score), F.lit("high"))
        .otherwise(F.lit("medium"))
        .alias("value"),
        F.concat(F.lit("dmp:"), F.col("dmp")).alias("source"),
        F.lit("third_party").alias("category"),
        F.col("source_date").cast("date").alias("source_date"),
    )


def with_one_id(rows: DataFrame, identity_map: DataFrame, source: str, keys: tuple[str, ...]) -> DataFrame:
    """Silver ``rows`` of ``source`` with the record's current ``one_id`` (unresolved rows drop)."""
    current = identity_map.where(F.col("valid_to").isNull() & (F.col("source") == source)).select(
        F.col("source_key").alias("_tag_source_key"), "one_id"
    )
    return (
        rows.withColumn("_tag_source_key", source_key(keys))
        .join(current, on="_tag_source_key", how="inner")
        .drop("_tag_source_key")
    )


def duplicate_tag(current: DataFrame) -> tuple[str, str, str] | None:
    """The first (tag, source, one_id) a run produced twice, or None."""
    dupes = (
        current.groupBy("tag", "source", "one_id").count().where(F.col("count") > 1).orderBy("tag").limit(1)
    ).collect()
    return (dupes[0]["tag"], dupes[0]["source"], dupes[0]["one_id"]) if dupes else None


def check_unique(current: DataFrame) -> None:
    """A rule returning a one_id twice is a rule error: fail naming the tag."""
    dupe = duplicate_tag(current)
    if dupe is not None:
        tag, source, one_id = dupe
        raise ConfigError(
            f"tags.yaml: tag '{tag}': rule returns one_id {one_id} more than once (source {source}); "
            "group by one_id so each member gets one value"
        )


def history_scope(run_date: date, tags: list[str]) -> str:
    """The ``member_tags`` rows a run for ``run_date`` over ``tags`` may rewrite: rows of
    those tags still open on the run date, or opened or closed on it by an earlier attempt."""
    names = ", ".join("'" + t.replace("'", "''") + "'" for t in sorted(tags)) or "''"
    d = run_date.isoformat()
    return f"tag IN ({names}) AND (valid_to IS NULL OR valid_to >= DATE'{d}' OR valid_from >= DATE'{d}')"


def filter_history_scope(history: DataFrame, run_date: date, tags: list[str]) -> DataFrame:
    return history.where(F.expr(history_scope(run_date, tags)))


def filter_after(history: DataFrame, run_date: date) -> DataFrame:
    """History rows written by runs after ``run_date`` (a backfill would rewrite the future)."""
    d = F.lit(run_date)
    return history.where((F.col("as_of") > d) | (F.col("valid_from") > d) | (F.col("valid_to") > d))


def history_update(scope: DataFrame, current: DataFrame, run_date: date, run_id: str) -> DataFrame:
    """The rows that replace ``scope`` (``filter_history_scope``) after a run found ``current``.

    Per (one_id, tag, source), comparing the row open before the run date with today's value:
    the same value is confirmed (stays open, ``as_of`` moves on); a different value closes
    the old row on the run date and opens a new one; a tag that no longer holds is closed;
    a new tag opens. Rows an earlier attempt of the same date opened are recomputed, so a
    re-run with the same inputs gives the same rows, down to ``run_id`` (kept on rows the
    run did not change).
    """
    d = F.lit(run_date).cast("date")
    key = list(HISTORY_KEY)
    before = scope.where(F.col("valid_from") < d).select(
        *key,
        F.col("value").alias("h_value"),
        F.col("category").alias("h_category"),
        F.col("source_date").alias("h_source_date"),
        F.col("valid_from").alias("h_from"),
        F.col("as_of").alias("h_as_of"),
    )
    today = current.select(
        *key,
        F.col("value").alias("c_value"),
        F.col("category").alias("c_category"),
        F.col("source_date").alias("c_source_date"),
    )
    joined = before.join(today, on=key, how="full")
    had, has = F.col("h_from").isNotNull(), F.col("c_value").isNotNull()
    same = had & has & (F.col("h_value") == F.col("c_value"))
    null_date = F.lit(None).cast("date")
    confirmed = joined.where(same).select(
        *key,
        F.col("h_value").alias("value"),
        F.col("c_category").alias("category"),
        F.col("c_source_date").alias("source_date"),
        F.col("h_from").alias("valid_from"),
        null_date.alias("valid_to"),
        d.alias("as_of"),
    )
    closed = joined.where(had & ~same).select(
        *key,
        F.col("h_value").alias("value"),
        F.col("h_category").alias("category"),
        F.col("h_source_date").alias("source_date"),
        F.col("h_from").alias("valid_from"),
        d.alias("valid_to"),
        F.col("h_as_of").alias("as_of"),
    )
    opened = joined.where(has & ~same).select(
        *key,
        F.col("c_value").alias("value"),
        F.col("c_category").alias("category"),
        F.col("c_source_date").alias("source_date"),
        d.alias("valid_from"),
        null_date.alias("valid_to"),
        d.alias("as_of"),
    )
    desired = confirmed.unionByName(closed).unionByName(opened)
    old = scope.select(
        *key,
        "valid_from",
        *[
            F.col(c).alias(f"o_{c}")
            for c in ("value", "category", "source_date", "valid_to", "as_of", "run_id")
        ],
    )
    unchanged = _all_equal(("value", "category", "source_date", "valid_to", "as_of"))
    return (
        desired.join(old, on=[*key, "valid_from"], how="left")
        .select(
            *key,
            "value",
            "category",
            "source_date",
            "valid_from",
            "valid_to",
            "as_of",
            F.when(unchanged & F.col("o_run_id").isNotNull(), F.col("o_run_id"))
            .otherwise(F.lit(run_id))
            .alias("run_id"),
        )
        .select(*HISTORY_COLUMNS)
    )


def _all_equal(columns: tuple[str, ...]) -> Column:
    cond = F.lit(True)
    for c in columns:
        cond = cond & F.col(c).eqNullSafe(F.col(f"o_{c}"))
    return cond


def tags_as_of(member_tags: DataFrame, day: date) -> DataFrame:
    """Tags that held on ``day``: ``(one_id, tag, value, source, category)``.

    >>> tags_as_of(lake.read(MEMBER_TAGS), date(2026, 3, 1)).where("tag = 'buyer_formula'")
    """
    d = F.lit(day).cast("date")
    return member_tags.where(
        (F.col("valid_from") <= d) & (F.col("valid_to").isNull() | (F.col("valid_to") > d))
    ).select("one_id", "tag", "value", "source", "category")


def tag_sizes(current: DataFrame, evaluated: dict[str, str], run_date: date, run_id: str) -> DataFrame:
    """Members per (tag, source) this run, with 0 for evaluated rule tags that matched nobody.

    ``evaluated`` maps each evaluated rule tag to its category.
    """
    counted = current.groupBy("tag", "source", "category").agg(F.countDistinct("one_id").alias("members"))
    spark = current.sparkSession
    listed = spark.createDataFrame(
        [(t, RULE_SOURCE, c) for t, c in sorted(evaluated.items())],
        "tag string, source string, category string",
    )
    return listed.join(counted, on=["tag", "source", "category"], how="full").select(
        "tag",
        "source",
        "category",
        F.lit(run_date).cast("date").alias("as_of"),
        F.coalesce(F.col("members"), F.lit(0)).cast("long").alias("members"),
        F.lit(run_id).alias("run_id"),
    )


def due_tags(config: TagsConfig, run_date: date, last_run: dict[str, date], full: bool = False) -> list[str]:
    """Rule tags to evaluate on ``run_date``: daily ones always; weekly ones when never
    evaluated or last evaluated 7 or more days before (every tag with ``full``)."""
    due = []
    for name, spec in config.tags.items():
        last = last_run.get(name)
        if full or spec.refresh == "daily" or last is None or (run_date - last).days >= 7 or last > run_date:
            due.append(name)
    return due


def latest_snapshot(rows: DataFrame, run_date: date) -> DataFrame:
    """Rows of the latest ``as_of`` on or before ``run_date`` (the profile may keep history)."""
    eligible = rows.where(F.col("as_of") <= F.lit(run_date))
    latest = eligible.agg(F.max("as_of").alias("_latest"))
    return eligible.join(latest, on=F.col("as_of") == F.col("_latest"), how="inner").drop("_latest")
