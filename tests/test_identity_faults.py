"""Crash safety of the identity stage: ``cradle run identity`` killed with SIGKILL during
its writes, then re-run, leaves exactly the tables an uninterrupted run leaves.

A base lake (day 1 ingested and resolved, day 2 ingested) is built once in a subprocess
and copied twice. On one copy identity runs for day 2 without faults; on the other it is
killed at two points in turn (``CRADLE_FAULT``; the second attempt first recovers the
first), then re-run. Every identity table is compared row for row, ignoring only run ids
and timings; no staging data or journal is left, and both killed attempts are recorded as
``abandoned``. Each subprocess has its own lake, metastore and JVM, so the data is tiny.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import JOB_RUNS
from cradle.config import conf_dir
from cradle.lake import Lake
from test_identity_stage import DAYS, IDENTITY_TABLES, LANDING

PROJECT = Path(__file__).resolve().parents[1]
FAULTS = ("identity.after_map", "identity.before_stats")
# Columns that name the attempt or time it, not what it computed.
VOLATILE = ("run_id", "seconds")
BASE_SCRIPT = """
import sys
from cradle.cli import main
lake, landing, d1, d2 = sys.argv[1:]
common = ["--lake", lake, "--landing", landing]
assert main(["run", "ingest", "identity", "--run-date", d1, "--run-id", "base-d1", *common]) == 0
assert main(["run", "ingest", "--run-date", d2, "--run-id", "base-d2", *common]) == 0
"""


@pytest.fixture(scope="module")
def small_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's configuration with a small local Spark: each subprocess is its own
    JVM, and the data is a few rows (``CRADLE_CONF_DIR``)."""
    conf = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(conf_dir(), conf)
    local = conf / "env" / "local.yaml"
    data = yaml.safe_load(local.read_text(encoding="utf-8"))
    data["lake_root"] = str(PROJECT / "lakehouse")  # relative paths resolve against the project
    data["jars_dir"] = str(PROJECT / ".jars")
    data["spark"].update({"master": "local[2]", "driver_memory": "1g", "shuffle_partitions": 2})
    local.write_text(yaml.safe_dump(data), encoding="utf-8")
    return conf


def cradle(
    conf: Path, lake: Path, landing: Path, *args: str, fault: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CRADLE_FAULT"}
    env["CRADLE_CONF_DIR"] = str(conf)
    if fault:
        env["CRADLE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "cradle", "run", *args, "--lake", str(lake), "--landing", str(landing)],
        check=False,
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )


def copy_lake(base: Path, to: Path) -> Path:
    # The copy gets its own metastore (it registers the copied tables at their new paths).
    shutil.copytree(base, to, ignore=shutil.ignore_patterns("_metastore", "_logs"))
    return to


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, small_conf: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("identity_faults")
    landing = root / "landing"
    for day in DAYS[:2]:
        for source, text in LANDING[day].items():
            path = landing / source / day.isoformat() / f"{source}_{day:%Y%m%d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    lake = root / "base"
    done = subprocess.run(
        [sys.executable, "-c", BASE_SCRIPT, str(lake), str(landing), str(DAYS[0]), str(DAYS[1])],
        check=False,
        cwd=PROJECT,
        env={**os.environ, "CRADLE_CONF_DIR": str(small_conf)},
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return lake, landing


def test_identity_killed_during_its_writes_recovers_to_the_clean_result(
    spark: SparkSession, base: tuple[Path, Path], small_conf: Path, tmp_path: Path
) -> None:
    base_lake, landing = base
    clean = copy_lake(base_lake, tmp_path / "clean")
    faulted = copy_lake(base_lake, tmp_path / "faulted")
    day = str(DAYS[1])

    done = cradle(small_conf, clean, landing, "identity", "--run-date", day, "--run-id", "clean")
    assert done.returncode == 0, done.stderr[-3000:]
    for i, fault in enumerate(FAULTS):
        killed = cradle(
            small_conf, faulted, landing, "identity", "--run-date", day, "--run-id", f"killed{i}", fault=fault
        )
        assert killed.returncode == -9, (
            f"{fault}: expected SIGKILL, got {killed.returncode}\n{killed.stderr[-3000:]}"
        )
    done = cradle(small_conf, faulted, landing, "identity", "--run-date", day, "--run-id", "rerun")
    assert done.returncode == 0, done.stderr[-3000:]

    clean_lake, faulted_lake = Lake(spark, str(clean)), Lake(spark, str(faulted))
    for table in IDENTITY_TABLES:
        keep = [f.name for f in table.schema if f.name not in VOLATILE]
        expected = clean_lake.read(table).select(*keep)
        assert expected.count() > 0, table.name
        assertDataFrameEqual(faulted_lake.read(table).select(*keep), expected)

    runs = faulted_lake.read(JOB_RUNS).where("job = 'identity' AND run_date = DATE'" + day + "'")
    assert sorted((r["run_id"], r["status"]) for r in runs.collect()) == [
        ("killed0", "abandoned"),
        ("killed1", "abandoned"),
        ("rerun", "succeeded"),
    ]
    for folder in ("_staging", "_ops/journal"):
        left = faulted / folder
        assert not left.exists() or not any(p.is_file() for p in left.rglob("*")), f"{folder} left behind"
