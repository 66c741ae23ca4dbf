"""The segments stage: ``cradle run segments --run-date D``.

Parses every expression of ``conf/segments.yaml`` (unknown names, tags or functions fail
the run before anything is written), builds the wide frame of profile fields and tags as
of the run date, and replaces this date's rows of ``cradle_gold.segment_members`` and
``cradle_gold.segment_sizes``: re-running a date gives the same rows.

While ``cradle_gold.member_profile`` does not exist, segments naming profile fields are
skipped (logged, and recorded in the run's details); tag-only segments still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame

from cradle.catalog import MEMBER_PROFILE, MEMBER_TAGS, SEGMENT_MEMBERS, SEGMENT_SIZES
from cradle.lake import Lake, WriteResult
from cradle.runs import Job
from cradle.segments.expressions import Expression
from cradle.segments.members import check_expressions, segment_members, segment_sizes, wide_frame
from cradle.segments.settings import load_segments, parse_segments, profile_fields
from cradle.tags.engine import latest_snapshot, tags_as_of
from cradle.tags.settings import load_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    wide: DataFrame
    has_profile: bool


def read_inputs(lake: Lake, run_date: date, tag_names: tuple[str, ...]) -> Inputs:
    """The wide frame as of ``run_date``. Reads only tables that exist, so that a preview
    on a lake without tags or a profile creates nothing."""
    spark = lake.spark
    if lake.exists(MEMBER_TAGS):
        tags = tags_as_of(lake.read(MEMBER_TAGS), run_date)
    else:
        tags = spark.createDataFrame(
            [], "one_id string, tag string, value string, source string, category string"
        )
    profile = None
    if lake.exists(MEMBER_PROFILE):
        profile = latest_snapshot(lake.read(MEMBER_PROFILE), run_date)
    return Inputs(wide_frame(profile, tags, tag_names), profile is not None)


def runnable(
    expressions: dict[str, Expression], has_profile: bool
) -> tuple[dict[str, Expression], dict[str, str]]:
    """Segments that can run, and why the others cannot (they need the profile)."""
    if has_profile:
        return dict(expressions), {}
    ready = {n: e for n, e in expressions.items() if not e.fields}
    skipped = {
        n: f"uses profile fields {', '.join(sorted(e.fields))} and "
        f"{MEMBER_PROFILE.qualified_name} does not exist yet"
        for n, e in expressions.items()
        if e.fields
    }
    return ready, skipped


def write_segments(lake: Lake, members: DataFrame, sizes: DataFrame, run_date: date) -> list[WriteResult]:
    """Replace the run date's members and sizes (idempotent per date)."""
    day = f"as_of = DATE'{run_date.isoformat()}'"
    return [lake.replace_where(SEGMENT_MEMBERS, members, day), lake.replace_where(SEGMENT_SIZES, sizes, day)]


def run(job: Job) -> None:
    lake, ctx = job.lake, job.ctx
    tag_names = load_tags().tag_names()
    config = load_segments()
    expressions = parse_segments(config, profile_fields(), tag_names)
    inputs = read_inputs(lake, ctx.run_date, tag_names)
    ready, skipped = runnable(expressions, inputs.has_profile)
    for name, why in sorted(skipped.items()):
        log.warning("segment %s skipped: %s", name, why)
        job.run.detail(f"segments.skipped.{name}", why)
    wide = inputs.wide.localCheckpoint()
    check_expressions(wide, ready, ctx.run_date)
    job.run.read("segments.people", wide.count())

    members = segment_members(wide, ready, ctx.run_date, ctx.run_id).localCheckpoint()
    sizes = segment_sizes(members, list(ready), ctx.run_date, ctx.run_id).localCheckpoint()
    for result in write_segments(lake, members, sizes, ctx.run_date):
        job.run.wrote(result)
    for row in sizes.collect():
        job.run.detail(f"segments.size.{row['segment']}", row["members"])
    log.info("segments %s: %d evaluated, %d skipped", ctx.run_date, len(ready), len(skipped))
