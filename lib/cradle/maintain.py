"""``cradle maintain``: compact every lake table's small files (OPTIMIZE) and delete the
files no recent version needs (VACUUM). Dry run by default: it prints what it would do.

Policy: VACUUM keeps every file a version younger than the retention needs, and the
retention is never below ``FLOOR_DAYS`` nor below the longest job attempt recorded in
``cradle_ops.job_runs`` (plus an hour): a stage rolled back after a failure restores the
versions it recorded when it started (``cradle.runs``), so their files must still exist
for as long as any stage may run. ``--apply`` holds the lake's write lock (no stage runs
meanwhile) and first recovers any killed attempt, whose rollback needs old files too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import functions as F

from cradle.catalog import JOB_RUNS, Table
from cradle.lake import Lake, list_names
from cradle.runs import RunContext, journal_dir, lake_lock, recover

log = logging.getLogger(__name__)

FLOOR_DAYS = 7.0  # Delta's own default retention, and a week of time travel for audits
MARGIN_HOURS = 1.0


@dataclass(frozen=True)
class Retention:
    hours: float
    reason: str


@dataclass(frozen=True)
class TablePlan:
    table: str
    files: int
    size_bytes: int
    compacted: tuple[int, int] | None  # (files removed, added) when applied
    vacuumed: list[str]

    def describe(self, apply: bool) -> str:
        mb = self.size_bytes / 1e6
        if self.compacted is not None:
            optimize = f"OPTIMIZE compacted {self.compacted[0]} file(s) into {self.compacted[1]}"
        else:
            optimize = f"OPTIMIZE would compact {self.files} file(s) ({mb:.1f} MB)"
        verb = "deleted" if apply else "would delete"
        return f"{self.table}: {optimize}; VACUUM {verb} {len(self.vacuumed)} unreferenced file(s)"


def retention_hours(floor_days: float, longest_job_s: float | None) -> Retention:
    """The VACUUM retention: the floor, or the longest job plus a margin when longer.

    >>> retention_hours(7, 3600).hours
    168.0
    >>> retention_hours(7, 10 * 86400).hours
    241.0
    """
    floor = floor_days * 24
    job = math.ceil((longest_job_s or 0) / 3600 + MARGIN_HOURS)
    if job > floor:
        return Retention(float(job), f"longest job {longest_job_s / 3600:.1f} h + {MARGIN_HOURS:g} h margin")
    return Retention(
        float(floor), f"floor {floor_days:g} days (longest job {(longest_job_s or 0) / 3600:.2f} h)"
    )


def longest_job_seconds(lake: Lake) -> float | None:
    row = lake.read(JOB_RUNS).agg(F.max("duration_s").alias("longest")).first()
    return float(row["longest"]) if row and row["longest"] is not None else None


def maintain(
    lake: Lake, tables: Iterable[Table], floor_days: float, apply: bool
) -> tuple[Retention, list[TablePlan]]:
    """OPTIMIZE and VACUUM every existing table in ``tables`` (only report unless ``apply``)."""
    if floor_days < FLOOR_DAYS:
        raise ValueError(f"retention floor {floor_days:g} days is below the minimum of {FLOOR_DAYS:g} days")
    retention = retention_hours(floor_days, longest_job_seconds(lake))
    plans = []
    for table in tables:
        if not lake.exists(table):
            continue
        files, size = lake.files(table)
        compacted = lake.optimize(table) if apply else None
        vacuumed = lake.vacuum(table, retention.hours, dry_run=not apply)
        plans.append(TablePlan(table.qualified_name, files, size, compacted, vacuumed))
    return retention, plans


def run_maintain(
    lake: Lake, tables: list[Table], ctx: RunContext, floor_days: float, apply: bool
) -> list[str]:
    """The command: returns the lines to print."""
    if not apply:
        pending = [n for n in list_names(lake.spark, journal_dir(lake)) if n.endswith(".json")]
        retention, plans = maintain(lake, tables, floor_days, apply=False)
        lines = [f"dry run (add --apply to act); VACUUM retention {retention.hours:g} h: {retention.reason}"]
        if pending:
            lines.append(
                f"{len(pending)} interrupted attempt(s) will be recovered first: {', '.join(pending)}"
            )
        return lines + [p.describe(apply=False) for p in plans]
    with lake_lock(lake, ctx, "maintain"):
        recovered = recover(lake, tables)
        retention, plans = maintain(lake, tables, floor_days, apply=True)
    lines = [f"VACUUM retention {retention.hours:g} h: {retention.reason}"]
    if recovered:
        lines.append(f"recovered interrupted attempt(s) first: {', '.join(recovered)}")
    return lines + [p.describe(apply=True) for p in plans]
