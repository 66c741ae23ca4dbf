"""`cradle maintain`: OPTIMIZE and VACUUM with a retention never below the floor or the
longest job, dry run by default."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import DATE, LONG, STR, Table, schema
from cradle.lake import Lake
from cradle.maintain import FLOOR_DAYS, maintain, retention_hours, run_maintain
from cradle.runs import RunContext

TABLE = Table(
    name="scratch_maintain",
    layer="gold",
    description="test table",
    schema=schema(("k", STR, False), ("day", DATE, False), ("n", LONG)),
    keys=("k",),
)
D1 = date(2026, 3, 1)


def test_retention_is_the_floor_or_the_longest_job() -> None:
    assert retention_hours(7, None).hours == 168.0
    assert retention_hours(7, 2 * 3600).hours == 168.0
    assert retention_hours(7, 8 * 86400).hours == 8 * 24 + 1  # the job, plus an hour's margin
    assert retention_hours(30, 8 * 86400).hours == 720.0


@pytest.fixture()
def fragmented(lake: Lake, spark: SparkSession) -> Lake:
    """A table written in three appends (three small files) with a 30-day-old orphan file
    in its folder, as a killed writer leaves behind."""
    spark.sql(f"DROP TABLE IF EXISTS {TABLE.qualified_name}")
    shutil.rmtree(lake.path(TABLE), ignore_errors=True)
    lake._ensured.discard(TABLE.qualified_name)
    for i in range(3):
        lake.append(TABLE, spark.createDataFrame([(f"k{i}", D1, i)], TABLE.schema).coalesce(1))
    orphan = Path(lake.path(TABLE)) / "part-00000-orphan-from-a-killed-writer.c000.snappy.parquet"
    orphan.write_bytes(b"not referenced by any version")
    old = time.time() - 30 * 86400
    os.utime(orphan, (old, old))
    return lake


def test_dry_run_changes_nothing_and_apply_compacts_and_vacuums(
    fragmented: Lake, spark: SparkSession
) -> None:
    rows = fragmented.read(TABLE).collect()
    version = fragmented.version(TABLE)
    orphan = Path(fragmented.path(TABLE)) / "part-00000-orphan-from-a-killed-writer.c000.snappy.parquet"

    retention, plans = maintain(fragmented, [TABLE], FLOOR_DAYS, apply=False)
    assert retention.hours >= FLOOR_DAYS * 24
    [plan] = plans
    assert (plan.table, plan.files, plan.compacted) == (TABLE.qualified_name, 3, None)
    assert [Path(p.removeprefix("file:")).name for p in plan.vacuumed] == [orphan.name]
    assert fragmented.version(TABLE) == version and orphan.exists()

    lines = run_maintain(fragmented, [TABLE], RunContext("test", D1, "maint-1"), FLOOR_DAYS, apply=True)
    assert lines[1] == (
        f"{TABLE.qualified_name}: OPTIMIZE compacted 3 file(s) into 1; VACUUM deleted 1 unreferenced file(s)"
    )
    assert fragmented.files(TABLE)[0] == 1
    assert not orphan.exists()
    assertDataFrameEqual(fragmented.read(TABLE), rows)
    # The files of the versions before OPTIMIZE are younger than the retention: kept, so
    # a rollback to them still works.
    fragmented.restore(TABLE, version)
    assertDataFrameEqual(fragmented.read(TABLE), rows)


def test_the_floor_cannot_be_lowered(fragmented: Lake) -> None:
    with pytest.raises(ValueError, match="below the minimum of 7 days"):
        maintain(fragmented, [TABLE], 1, apply=False)
