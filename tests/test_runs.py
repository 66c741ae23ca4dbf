"""The runner's safety: one writer per lake, atomic stage attempts, recovery after a kill."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import DATE, JOB_RUNS, LONG, STR, Table, schema
from cradle.lake import Lake
from cradle.runs import LakeLocked, RunContext, job_run, lake_lock, open_journal, recover

TABLE = Table(
    name="scratch_runs",
    layer="gold",
    description="test table",
    schema=schema(("k", STR, False), ("day", DATE, False), ("n", LONG)),
    keys=("k",),
)
D1 = date(2026, 3, 1)


@pytest.fixture()
def fresh(lake: Lake, spark: SparkSession) -> Lake:
    spark.sql(f"DROP TABLE IF EXISTS {TABLE.qualified_name}")
    shutil.rmtree(lake.path(TABLE), ignore_errors=True)
    shutil.rmtree(Path(lake.root) / "_ops", ignore_errors=True)
    lake._ensured.discard(TABLE.qualified_name)
    lake.overwrite(TABLE, spark.createDataFrame([("a", D1, 1), ("b", D1, 2)], TABLE.schema))
    return lake


def attempts(lake: Lake, run_id: str) -> list[tuple[str, str]]:
    rows = lake.read(JOB_RUNS).where(f"run_id = '{run_id}'").collect()
    return sorted((r["job"], r["status"]) for r in rows)


def test_a_failed_attempt_is_rolled_back(fresh: Lake, spark: SparkSession) -> None:
    before = fresh.read(TABLE).collect()
    ctx = RunContext("test", D1, "rb-1")
    with pytest.raises(RuntimeError, match="half way"), job_run(fresh, "unit", ctx, [TABLE]):
        fresh.merge(TABLE, spark.createDataFrame([("a", D1, 10), ("c", D1, 3)], TABLE.schema))
        fresh.delete_where(TABLE, "k = 'b'")
        raise RuntimeError("half way")
    assertDataFrameEqual(fresh.read(TABLE), before)
    assert attempts(fresh, "rb-1") == [("unit", "failed")]
    run = fresh.read(JOB_RUNS).where("run_id = 'rb-1'").first()
    assert run["details"]["restored"] == TABLE.qualified_name
    assert not (Path(fresh.root) / "_ops" / "journal").exists() or not any(
        (Path(fresh.root) / "_ops" / "journal").iterdir()
    )


def test_a_killed_attempt_is_recovered_by_the_next_run(fresh: Lake, spark: SparkSession) -> None:
    """A journal left behind (the process died mid-stage) is rolled back, its staging data
    removed, and the attempt recorded as abandoned; an attempt that had finished is not."""
    before = fresh.read(TABLE).collect()
    ctx = RunContext("test", D1, "killed-1")
    open_journal(fresh, "unit", ctx, [TABLE], started=__import__("datetime").datetime.now())
    fresh.merge(TABLE, spark.createDataFrame([("a", D1, 99)], TABLE.schema))
    staging = Path(fresh.root) / "_staging" / "unit" / "killed-1"
    staging.mkdir(parents=True)
    (staging / "part.parquet").write_text("x")

    assert recover(fresh, [TABLE]) == ["killed-1.unit"]
    assertDataFrameEqual(fresh.read(TABLE), before)
    assert not staging.exists()
    assert attempts(fresh, "killed-1") == [("unit", "abandoned")]
    assert recover(fresh, [TABLE]) == []  # nothing left to do

    # An attempt killed after its run row was written finished: nothing is rolled back.
    done = RunContext("test", D1, "done-1")
    with job_run(fresh, "unit", done, [TABLE]):
        fresh.merge(TABLE, spark.createDataFrame([("z", D1, 26)], TABLE.schema))
    after = fresh.read(TABLE).collect()
    started = fresh.read(JOB_RUNS).where("run_id = 'done-1'").first()["started_at"]
    open_journal(fresh, "unit", done, [TABLE], started=started)  # as if the kill came just then
    assert recover(fresh, [TABLE]) == []
    assertDataFrameEqual(fresh.read(TABLE), after)


def test_one_writer_per_lake(fresh: Lake) -> None:
    ctx = RunContext("test", D1, "holder-1")
    with lake_lock(fresh, ctx, "run ingest"):
        with pytest.raises(LakeLocked) as err, lake_lock(fresh, RunContext("test", D1, "second"), "run all"):
            pass
        message = str(err.value)
        assert "holder-1" in message and "run ingest" in message and f"pid {os.getpid()}" in message
        assert "\n" not in message
    # Released: the next writer gets it.
    with lake_lock(fresh, RunContext("test", D1, "third"), "run all"):
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(fresh: Lake) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    lock = Path(fresh.root) / "_ops" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = {
        "run_id": "gone",
        "command": "run ingest",
        "host": socket.gethostname(),
        "pid": int(dead.stdout),
    }
    lock.write_text(json.dumps(holder))
    with lake_lock(fresh, RunContext("test", D1, "next"), "run all"):
        assert json.loads(lock.read_text())["run_id"] == "next"
    assert not lock.exists()
    # A live holder on another host cannot be checked: refused.
    lock.write_text(json.dumps({**holder, "host": "elsewhere", "pid": 1}))
    with pytest.raises(LakeLocked, match="elsewhere"), lake_lock(fresh, RunContext("test", D1, "x"), "run"):
        pass
    lock.unlink()
