from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import DATE, JOB_RUNS, LONG, STR, Table, schema
from cradle.doctor import run_checks
from cradle.lake import Lake
from cradle.runs import RunContext, job_run

SCRATCH = Table(
    name="scratch_orders",
    layer="silver",
    description="test table",
    schema=schema(("order_id", STR, False), ("day", DATE, False), ("amount", LONG)),
    keys=("order_id",),
    partition_by=("day",),
)
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


@pytest.fixture()
def fresh(lake: Lake, spark: SparkSession) -> Lake:
    spark.sql(f"DROP TABLE IF EXISTS {SCRATCH.qualified_name}")
    import shutil

    shutil.rmtree(lake.path(SCRATCH), ignore_errors=True)
    lake._ensured.discard(SCRATCH.qualified_name)
    return lake


def frame(spark: SparkSession, rows: list[tuple]):
    return spark.createDataFrame(rows, SCRATCH.schema)


def test_round_trip_through_catalogue(fresh: Lake, spark: SparkSession) -> None:
    rows = [("a", D1, 10), ("b", D1, None), ("c", D2, 30)]
    result = fresh.overwrite(SCRATCH, frame(spark, rows))
    assert result.rows_written == 3
    assertDataFrameEqual(spark.table("cradle_silver.scratch_orders"), frame(spark, rows))
    # Overwrite replaces everything.
    fresh.overwrite(SCRATCH, frame(spark, [("z", D2, 1)]))
    assertDataFrameEqual(fresh.read(SCRATCH), frame(spark, [("z", D2, 1)]))
    detail = spark.sql(f"DESCRIBE DETAIL {SCRATCH.qualified_name}").first()
    assert detail["format"] == "delta" and detail["partitionColumns"] == ["day"]


def test_merge_is_idempotent_and_upserts(fresh: Lake, spark: SparkSession) -> None:
    fresh.overwrite(SCRATCH, frame(spark, [("a", D1, 10), ("b", D1, 20)]))
    update = frame(spark, [("b", D1, 21), ("c", D2, 30)])
    first = fresh.merge(SCRATCH, update)
    fresh.merge(SCRATCH, update)
    assert first.rows_written == 2
    assertDataFrameEqual(fresh.read(SCRATCH), frame(spark, [("a", D1, 10), ("b", D1, 21), ("c", D2, 30)]))


def test_a_write_that_changes_nothing_reports_zero_rows(
    fresh: Lake, spark: SparkSession
) -> None:
    fresh.overwrite(SCRATCH, frame(spark, [("a", D1, 10), ("b", D1, 20)]))
    before = fresh.version(SCRATCH)
    result = fresh.merge(SCRATCH, frame(spark, [("a", D1, 11)]), update_when="s.amount > t.amount + 5")
    assert result.rows_written == 0
    assert before is not None
    # The previous commit wrote 2 rows; a later no-op write must not report them.
    appended = fresh.append(SCRATCH, frame(spark, []))
    assert appended.rows_written == 0


def test_reading_a_missing_table_creates_nothing(fresh: Lake, spark: SparkSession) -> None:
    assert fresh.read(SCRATCH).schema == SCRATCH.schema
    assert fresh.read(SCRATCH).count() == 0
    assert not fresh.exists(SCRATCH)
    assert not spark.catalog.tableExists(SCRATCH.qualified_name)


def test_replace_where_touches_only_its_partition(fresh: Lake, spark: SparkSession) -> None:
    fresh.overwrite(SCRATCH, frame(spark, [("a", D1, 10), ("c", D2, 30)]))
    for _ in range(2):  # re-running the same day changes nothing
        fresh.replace_where(SCRATCH, frame(spark, [("d", D2, 40)]), "day = '2026-03-02'")
    assertDataFrameEqual(fresh.read(SCRATCH), frame(spark, [("a", D1, 10), ("d", D2, 40)]))


def test_conform_rejects_missing_columns(fresh: Lake, spark: SparkSession) -> None:
    with pytest.raises(ValueError, match=r"lack columns \['amount'\]"):
        fresh.overwrite(SCRATCH, spark.createDataFrame([("a", D1)], "order_id string, day date"))


def test_job_runs_record_success_and_failure(lake: Lake, spark: SparkSession) -> None:
    ctx = RunContext(env="test", run_date=D1, run_id="run-ok")
    with job_run(lake, "unit", ctx) as run:
        run.read("cradle_silver.x", 5)
        run.detail("note", "hello")
    with pytest.raises(RuntimeError, match="boom"), job_run(lake, "unit", RunContext("test", D1, "run-bad")):
        raise RuntimeError("boom")
    runs = {r["run_id"]: r for r in lake.read(JOB_RUNS).where("job = 'unit'").collect()}
    assert runs["run-ok"]["status"] == "succeeded"
    assert runs["run-ok"]["rows_read"] == {"cradle_silver.x": 5}
    assert runs["run-ok"]["details"] == {"note": "hello"}
    assert runs["run-ok"]["versions"]["spark"] == spark.version
    assert runs["run-bad"]["status"] == "failed"
    assert runs["run-bad"]["error"] == "RuntimeError: boom"
    assert runs["run-bad"]["run_date"] == D1


def test_doctor_checks_pass(spark: SparkSession, env) -> None:
    checks = run_checks(lambda: spark, env)
    assert [(c.name, c.ok) for c in checks] == [
        ("spark session", True),
        ("delta write/read", True),
        ("connected components", True),
    ], checks


def test_doctor_reports_a_failure(env) -> None:
    def broken() -> SparkSession:
        raise RuntimeError("no JVM here")

    checks = run_checks(broken, env)
    assert [(c.name, c.ok, c.detail) for c in checks] == [
        ("spark session", False, "RuntimeError: no JVM here")
    ]
