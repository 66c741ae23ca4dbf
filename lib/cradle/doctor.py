"""`cradle doctor`: prove that this machine can run Cradle, step by step."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cradle.catalog import DOCTOR_PROBE
from cradle.config import EnvConfig
from cradle.graph import connected_components, resolve_engine
from cradle.lake import Lake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        return f"unavailable ({err})"
    return out.stderr.splitlines()[0] if out.stderr else "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def version_report() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "java": java_version(),
        "pyspark": package_version("pyspark"),
        "delta-spark": package_version("delta-spark"),
        "graphframes-py": package_version("graphframes-py"),
        "cradle": package_version("cradle"),
    }


def check_delta(spark: SparkSession, lake: Lake) -> str:
    rows = [(1, "written"), (2, "read back")]
    lake.overwrite(DOCTOR_PROBE, spark.createDataFrame(rows, DOCTOR_PROBE.schema))
    back = sorted(tuple(r) for r in spark.table(DOCTOR_PROBE.qualified_name).collect())
    if back != rows:
        raise AssertionError(f"read back {back}, wrote {rows}")
    return f"wrote and read {DOCTOR_PROBE.qualified_name} at {lake.path(DOCTOR_PROBE)}"


def check_graph(spark: SparkSession, env: EnvConfig) -> str:
    edge_schema = T.StructType([T.StructField("src", T.LongType()), T.StructField("dst", T.LongType())])
    edges = spark.createDataFrame([(1, 2), (2, 3), (10, 11), (20, 20)], edge_schema)
    vertices = spark.createDataFrame([(i,) for i in (1, 2, 3, 10, 11, 20, 30)], "id long")
    engine = resolve_engine(spark, env.graph.engine)
    labels = connected_components(vertices, edges, engine=engine, algorithm=env.graph.algorithm)
    got = sorted(tuple(r) for r in labels.collect())
    want = [(1, 1), (2, 1), (3, 1), (10, 10), (11, 10), (20, 20), (30, 30)]
    if got != want:
        raise AssertionError(f"components {got}, expected {want}")
    note = "" if engine == "graphframes" else " (GraphFrames JVM jar not on the classpath)"
    return f"engine {engine}{note}: 7 vertices -> 4 components, as expected"


def run_checks(spark_factory: Callable[[], SparkSession], env: EnvConfig) -> list[Check]:
    checks: list[Check] = []

    def attempt(name: str, func: Callable[[], str]) -> bool:
        try:
            checks.append(Check(name, True, func()))
        except Exception as err:
            log.debug("doctor check %s failed", name, exc_info=True)
            checks.append(Check(name, False, f"{type(err).__name__}: {err}"))
            return False
        return True

    holder: dict[str, SparkSession] = {}

    def start() -> str:
        holder["spark"] = spark_factory()
        return f"Spark {holder['spark'].version}, master {holder['spark'].sparkContext.master}"

    if not attempt("spark session", start):
        return checks
    spark = holder["spark"]
    lake = Lake(spark, env.lake_root)
    attempt("delta write/read", lambda: check_delta(spark, lake))
    attempt("connected components", lambda: check_graph(spark, env))
    return checks


def report(env: EnvConfig) -> int:
    """Print the versions and every check (what `cradle doctor` shows); 0 when all pass."""
    from cradle.spark import build_spark

    print("Cradle doctor")
    for name, value in version_report().items():
        print(f"  {name:<15} {value}")
    print(f"  {'env':<15} {env.name}, lake {env.lake_root}")
    checks = run_checks(lambda: build_spark(env, app_name="cradle-doctor"), env)
    for check in checks:
        print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    if failed or len(checks) < 3:
        print(f"doctor: {len(failed) or 'some'} check(s) failed", file=sys.stderr)
        return 1
    print("doctor: all checks passed")
    return 0
