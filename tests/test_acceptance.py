"""Acceptance: the whole pipeline on a small generated dataset, judged by the evaluators
against the generator's truth (issue #11.4). A regression in ingestion or identity fails
here, in ``make test``, not only in the demo.

The module fixture generates ``MEMBERS`` x ``DAYS`` (small, to keep generation plus the
pipeline within a few minutes on two quiet cores; not yet timed on a quiet machine: on the
shared machine, load 25-37, 400 x 30 took 45 minutes for its first run), then runs
``STAGES`` as the demo
does: a catch-up run to the day before the last, then the last day as a daily run. The
pipeline runs in its own process: it needs a lake (and metastore) of its own, which the
test session's Spark cannot switch to. The evaluators then read that lake by path.

To add assertions for another capability, evaluate it from ``evaluated`` (results are
cached per evaluator) and assert its thresholds in a new test below; e.g. life stage:
``evaluated("lifestage")["inferred"]["accuracy"]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from cradle.config import PROJECT_ROOT
from cradle.generate.engine import generate
from cradle.generate.settings import Params, load_settings
from cradle.graph import resolve_engine
from cradle.lake import Lake

# 21 days from 5 February span the CRM's added column (from 15 February, conf/generator.yaml)
# and the product launch on day 20, so every file-level defect kind is injected.
MEMBERS, DAYS, START, SEED = 300, 21, date(2026, 2, 5), 5
STAGES = ("ingest", "identity", "profile")
LAST = START + timedelta(days=DAYS - 1)

# Runs every stage for the catch-up date, then the daily date, in one process.
RUNNER = """
import sys
from datetime import date
from cradle.config import load_env
from cradle.pipeline import make_context, run_stages
from cradle.spark import build_spark

lake, landing, stages, *days = sys.argv[1:]
env = load_env("local", lake=lake, landing=landing)
small = {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "3g"}
env = env.model_copy(update={"spark": env.spark.model_copy(update=small)})
spark = build_spark(env, app_name="cradle-acceptance")
for day in days:
    run_stages(spark, env, stages.split(","), make_context(env, date.fromisoformat(day), None))
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(landing, lake) after generating the data and running the pipeline on it."""
    root = tmp_path_factory.mktemp("acceptance")
    landing, lake = root / "landing", root / "lake"
    generate(load_settings(), Params(members=MEMBERS, days=DAYS, start=START, seed=SEED, out=str(landing)))
    days = [(LAST - timedelta(days=1)).isoformat(), LAST.isoformat()]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(lake), str(landing), ",".join(STAGES), *days],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return landing, lake


@pytest.fixture(scope="module")
def evaluated(spark: SparkSession, env, pipeline: tuple[Path, Path]) -> Callable[[str], dict[str, Any]]:
    """``evaluated(name)``: that evaluator's result on the acceptance lake (computed once)."""
    from cradle.evals import identity, ingest, lifestage

    landing, lake_root = pipeline
    lake = Lake(spark, str(lake_root))
    cache: dict[str, dict[str, Any]] = {}

    def run(name: str) -> dict[str, Any]:
        if name not in cache:
            if name == "identity":
                engine = resolve_engine(spark, env.graph.engine)
                cache[name] = identity.measure(spark, lake, landing / "_truth", engine, env.graph.algorithm)
            elif name == "ingest":
                cache[name] = ingest.measure(spark, lake, str(landing), landing / "_truth")
            elif name == "lifestage":
                on_lake = env.model_copy(update={"lake_root": str(lake_root)})
                cache[name] = lifestage.evaluate(on_lake, argparse.Namespace(data=str(landing)))
            else:
                raise KeyError(f"no acceptance hook for evaluator {name!r}")
            print(json.dumps({name: cache[name]}, indent=1, default=str))
        return cache[name]

    return run


def test_identity_precision_over_all_records(evaluated):
    result = evaluated("identity")
    assert result["records_without_one_id"] == 0
    assert result["precision"] >= 0.995, result


def test_identity_recall_as_share_of_the_ideal_linking_ceiling(evaluated):
    result = evaluated("identity")
    assert result["recall_of_ceiling"] >= 0.97, result
    # The guards must beat linking every shared value blindly.
    assert result["f1"] > result["baseline_exact_identifier_linking"]["f1"], result


def test_identity_largest_cluster_and_churn(evaluated):
    result = evaluated("identity")
    assert result["largest_predicted"] <= 2 * result["largest_true"], result
    churn = result["churn"]
    assert churn["changed"] == churn.get("changed_explained_by_true_merge", 0), churn


def test_ingest_records_every_delivered_file_in_the_manifest(evaluated):
    result = evaluated("ingest")
    assert result["files"]["not_in_manifest"] == 0, result["files"]


def test_ingest_catches_every_defect_kind_and_quarantines_no_clean_row(evaluated):
    result = evaluated("ingest")
    assert result["accounting"]["unbalanced_files"] == 0
    assert result["clean_quarantined"] == 0
    assert result["kinds_not_caught"] == [], result["defects"]
    missed = {k: v for k, v in result["defects"].items() if v["missed"]}
    assert missed == {}


def test_life_stage_with_abstentions_counted_as_wrong(evaluated):
    """Regression floors at this size, abstentions counted as wrong. The issue's targets
    (stated >= 0.95, inferred >= baseline + 0.10, journey >= 0.90, calibration per decile)
    are judged at demo size (3,000 x 90, docs/benchmarks.md): with 21 days of behaviour
    most inferred members have one or two signals and journeys have barely begun, so
    here the run measured stated 0.932, inferred 0.524 against the baseline's 0.500
    (coverage 1.0 against 0.747), journey 0.682. The floors sit just under those."""
    result = evaluated("lifestage")
    stated, inferred = result["stated"], result["inferred"]
    assert stated["coverage"] == 1.0 and stated["accuracy"] >= 0.92, stated
    assert inferred["coverage"] >= 0.90, inferred
    # Abstaining would score 0 here; the learned engine must at least match the naive one.
    assert inferred["accuracy"] >= inferred["baseline_accuracy"], inferred
    assert result["journey"]["accuracy"] >= 0.65, result["journey"]
