"""One Spark session for the whole test run (local[2], 2 shuffle partitions, UI off),
configured exactly like a job's but on a temporary lake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cradle.config import load_env
from cradle.lake import Lake
from cradle.spark import build_spark

# pandas-on-Spark (imported by assertDataFrameEqual) wants this before a session starts.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


@pytest.fixture(scope="session")
def env(lake_root: Path):
    base = load_env("local", lake=str(lake_root))
    return base.model_copy(
        update={
            "spark": base.spark.model_copy(
                update={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "4g"}
            ),
            "landing_root": str(lake_root / "_landing"),
        }
    )


@pytest.fixture(scope="session")
def spark(env) -> Iterator[SparkSession]:
    session = build_spark(env, app_name="cradle-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lake(spark: SparkSession, env) -> Lake:
    return Lake(spark, env.lake_root)


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "external").is_dir():
        pytest.fail(f"../shared/external not found at {SHARED}: tests read the public datasets there")
    return SHARED / "external"
