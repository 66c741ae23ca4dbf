"""The tags stage: ``cradle run tags --run-date D [--full]``.

1. Load ``conf/tags.yaml`` and compile every rule against the source views (silver tables
   with ``one_id`` from the current ``identity_map``; ``cradle_gold.member_profile`` once it
   exists; protected columns hidden). Rules are checked by :mod:`cradle.sqlguard` before
   Spark analyses them: any bad rule fails the run here, before anything runs or is written.
2. Evaluate the rules due today (daily ones; weekly ones a week after their last run, or
   all with ``--full``) and the third-party DMP tags; a one_id twice in a tag fails the run.
3. Replace the open part of ``cradle_gold.member_tags`` for those tags with its SCD-2
   update, and this date's ``cradle_gold.tag_sizes`` rows: re-running a date changes nothing.

Rules reading ``cradle_gold.member_profile`` are skipped (logged and recorded in the run's
details) while the profile table does not exist.
"""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.catalog import IDENTITY_MAP, MEMBER_PROFILE, MEMBER_TAGS, TAG_SIZES, silver_tables
from cradle.identity.settings import load_identity
from cradle.lake import Lake, WriteResult
from cradle.runs import Job
from cradle.sources import load_sources
from cradle.tags.engine import (
    RULE_SOURCE,
    check_unique,
    compile_rules,
    due_tags,
    filter_after,
    filter_history_scope,
    history_scope,
    history_update,
    latest_snapshot,
    rule_tags,
    tag_sizes,
    third_party_tags,
    with_one_id,
)
from cradle.tags.settings import load_tags

log = logging.getLogger(__name__)

PROFILE = MEMBER_PROFILE.qualified_name
DMP_TABLE = "dmp_tags"


def rule_sources(lake: Lake, run_date: date) -> tuple[dict[str, DataFrame], frozenset[str]]:
    """Frames rules may read by qualified name, and tables known but not built yet.

    Silver tables that carry identifiers get the record's current ``one_id``; reference
    tables (products, stores, inventory) come as they are. Each join is persisted (lazily:
    only tables some rule reads are ever computed), so rules reading the same table share
    one silver x identity join per run; :func:`release` frees them.
    """
    tables = silver_tables(load_sources().sources)
    identity_sources = set(load_identity().tables())
    identity_map = lake.read(IDENTITY_MAP)
    sources: dict[str, DataFrame] = {}
    for name, table in tables.items():
        rows = lake.read(table)
        if name in identity_sources:
            rows = with_one_id(rows, identity_map, name, table.keys).persist()
        sources[table.qualified_name] = rows
    if lake.exists(MEMBER_PROFILE):
        sources[PROFILE] = latest_snapshot(lake.read(MEMBER_PROFILE), run_date)
        return sources, frozenset()
    return sources, frozenset({PROFILE})


def release(sources: dict[str, DataFrame]) -> None:
    """Unpersist the shared source frames (a no-op for frames never persisted)."""
    for rows in sources.values():
        rows.unpersist()


def protected_columns() -> dict[str, tuple[str, ...]]:
    """Columns hidden from rules, per table rules may read: the catalogue's ``protected``
    columns (tokens and ciphertext of personal data) and ``sensitive`` ones (children's data)."""
    tables = [*silver_tables(load_sources().sources).values(), MEMBER_PROFILE]
    return {table.qualified_name: (*table.protected, *table.sensitive) for table in tables}


def open_tags(history: DataFrame) -> list[str]:
    """Tags some person holds now (an open history row)."""
    return [r["tag"] for r in history.where(F.col("valid_to").isNull()).select("tag").distinct().collect()]


def last_evaluated(sizes: DataFrame) -> dict[str, date]:
    rows = sizes.where(F.col("source") == RULE_SOURCE).groupBy("tag").agg(F.max("as_of").alias("last"))
    return {r["tag"]: r["last"] for r in rows.collect()}


def write_history(
    lake: Lake, current: DataFrame, evaluated: list[str], run_date: date, run_id: str
) -> WriteResult:
    """Replace the open part of ``member_tags`` for the ``evaluated`` tags with its SCD-2
    update from ``current``; refuses a date earlier than a run already recorded."""
    history = lake.read(MEMBER_TAGS)
    later = filter_after(history.where(F.col("tag").isin(*evaluated)), run_date).limit(1).collect()
    if later:
        raise ValueError(
            f"{MEMBER_TAGS.qualified_name} already holds runs after {run_date} (e.g. tag "
            f"{later[0]['tag']} as of {later[0]['as_of']}); tag history only moves forward"
        )
    scope = filter_history_scope(history, run_date, evaluated)
    update = history_update(scope, current, run_date, run_id).localCheckpoint()
    return lake.replace_where(MEMBER_TAGS, update, history_scope(run_date, evaluated))


def run(job: Job) -> None:
    lake, ctx = job.lake, job.ctx
    config = load_tags()
    sources, pending = rule_sources(lake, ctx.run_date)
    compiled = compile_rules(
        job.spark, config, sources, ctx.run_date, pending=pending, hidden=protected_columns()
    )
    due = [
        t
        for t in due_tags(config, ctx.run_date, last_evaluated(lake.read(TAG_SIZES)), ctx.full)
        if t in compiled.frames
    ]
    log.info("tags %s: %d rule tags due, %d skipped", ctx.run_date, len(due), len(compiled.skipped))

    parts = []
    rules = rule_tags(config, {t: compiled.frames[t] for t in due})
    if rules is not None:
        parts.append(rules)
    evaluated = list(due)
    if config.third_party is not None:
        dmp = sources[silver_tables(load_sources().sources)[DMP_TABLE].qualified_name]
        parts.append(third_party_tags(dmp, config.third_party, ctx.run_date))
        evaluated += list(config.third_party.tag_names())
    # Tags removed from conf/tags.yaml are closed: nothing holds them any more.
    retired = sorted(set(open_tags(lake.read(MEMBER_TAGS))) - set(config.tag_names()))
    if retired:
        log.warning("tags %s: closing tags no longer configured: %s", ctx.run_date, ", ".join(retired))
        job.run.detail("tags.retired", ",".join(retired))
        evaluated += retired
    if not parts:
        log.warning("tags %s: nothing to evaluate", ctx.run_date)
        release(sources)
        return
    current = parts[0]
    for part in parts[1:]:
        current = current.unionByName(part)
    current = current.localCheckpoint()
    release(sources)
    check_unique(current)
    job.run.read("tags.current", current.count())

    job.run.wrote(write_history(lake, current, evaluated, ctx.run_date, ctx.run_id))

    sizes = tag_sizes(current, {t: config.tags[t].category for t in due}, ctx.run_date, ctx.run_id)
    names = ", ".join(f"'{t}'" for t in sorted(evaluated))
    sizes_where = f"as_of = DATE'{ctx.run_date.isoformat()}' AND tag IN ({names})"
    job.run.wrote(lake.replace_where(TAG_SIZES, sizes.localCheckpoint(), sizes_where))

    job.run.detail("tags.evaluated", len(due))
    job.run.detail("tags.third_party", config.third_party is not None)
    for name, why in sorted(compiled.skipped.items()):
        job.run.detail(f"tags.skipped.{name}", why)
