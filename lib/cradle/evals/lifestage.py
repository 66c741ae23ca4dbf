"""Life stage and journey stage against the generator's truth: ``cradle eval lifestage --json``.

Each one_id of ``cradle_gold.member_profile`` is mapped to the person holding most of its
silver records (records matched to ``_truth/record_person.parquet`` by lineage, as the
identity evaluator does; ties go to the smaller person id). Every person is scored once,
on her main one_id (the one holding most of her records; fragments such as a lone ad
device are identity's failure, reported there). The truth is her life stage and journey
stage on the profile's ``as_of`` date.

The figures cannot be raised by abstaining:
- ``accuracy`` counts an unknown (null) stage as wrong, and ``coverage`` (the share with
  a stage) stands beside it; separately for persons whose main one_id has a stated date
  and for those whose stage is only inferred;
- ``inferred.baseline_accuracy``: a naive rule on the same persons, the band the latest
  behavioural signal points at (moved forward to the run date), unknown when there is no
  signal; the engine must beat it by ``inferred_margin`` (0.10);
- ``calibration``: persons with an inferred stage by decile of stated confidence, with
  the mean stated confidence, the observed accuracy and n; every decile holding at least
  ``calibration_min_n`` persons must be within ``calibration_tolerance`` (0.05);
- ``journey.accuracy`` on each person's main one_id.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cradle.catalog import IDENTITY_MAP, MEMBER_PROFILE, silver_tables
from cradle.config import EnvConfig
from cradle.evals.identity import labelled_records
from cradle.lake import Lake
from cradle.profile import lifestage, signals
from cradle.profile.settings import LifeStageRules, load_profile

TARGETS: dict[str, float] = {
    "stated_accuracy": 0.95,
    "inferred_margin": 0.10,
    "inferred_coverage": 0.90,
    "calibration_tolerance": 0.05,
    "calibration_min_n": 50,
    "journey_accuracy": 0.90,
}


def person_of_one_id(labelled: DataFrame) -> DataFrame:
    """(one_id, person_id, records, is_main): the majority person of each one_id."""
    counts = (
        labelled.where(F.col("one_id").isNotNull() & F.col("person_id").isNotNull())
        .groupBy("one_id", "person_id")
        .agg(F.count("*").alias("records"))
    )
    top = Window.partitionBy("one_id").orderBy(F.col("records").desc(), "person_id")
    majority = counts.withColumn("_r", F.row_number().over(top)).where(F.col("_r") == 1).drop("_r")
    main = Window.partitionBy("person_id").orderBy(F.col("records").desc(), "one_id")
    return majority.withColumn("is_main", F.row_number().over(main) == 1)


def current(truth: DataFrame, as_of: Any) -> DataFrame:
    """Truth intervals holding ``as_of`` (valid_to inclusive, null = open)."""
    d = F.lit(as_of)
    return truth.where((F.col("valid_from") <= d) & (F.col("valid_to").isNull() | (F.col("valid_to") >= d)))


def latest_signal_stage(life_signals: DataFrame, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(one_id, baseline_stage): the naive rule, the band of each member's latest signal.

    The latest signal's age interval (from ``life_stage.inference.signals``; bound-only
    readings are skipped) is read at its midpoint and moved forward to ``as_of``; on a
    day with several signals the narrowest interval wins.
    """
    bound_only = {s.name for s in rules.inference.signals if s.youngest_bound_only}
    intervals = lifestage.signal_intervals(
        life_signals.where(~F.col("signal").isin(*bound_only)) if bound_only else life_signals, as_of, rules
    )
    latest = Window.partitionBy("one_id").orderBy(
        F.col("d").desc(), (F.col("hi") - F.col("lo")).asc(), "signal", "lo"
    )
    mid = F.floor((F.col("lo") + F.col("hi") - 1) / 2).cast("int")
    return (
        intervals.withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") == 1)
        .select(
            "one_id",
            lifestage.stage_of_birth(F.date_add(F.lit(lifestage.EPOCH), mid), F.lit(as_of), rules).alias(
                "baseline_stage"
            ),
        )
    )


def _hit(truth: str, pred: str) -> Column:
    """1 when the prediction equals the truth; an unknown prediction is a miss (0), never skipped."""
    return F.coalesce((F.col(truth) == F.col(pred)).cast("int"), F.lit(0))


def group_scores(rows: DataFrame, pred: str = "life_stage", truth: str = "true_life_stage") -> dict[str, Any]:
    """n, accuracy (unknown counted as wrong) and coverage of ``pred`` against ``truth``."""
    r = rows.agg(
        F.count("*").alias("n"),
        F.sum(_hit(truth, pred)).alias("ok"),
        F.sum(F.col(pred).isNotNull().cast("int")).alias("known"),
    ).first()
    n = int(r["n"])
    return {
        "n": n,
        "accuracy": round(int(r["ok"] or 0) / n, 4) if n else None,
        "coverage": round(int(r["known"] or 0) / n, 4) if n else None,
    }


def calibration(rows: DataFrame) -> list[dict[str, Any]]:
    """Per confidence decile of the known predictions: n, mean stated confidence, observed accuracy."""
    known = rows.where(F.col("life_stage").isNotNull() & F.col("life_stage_confidence").isNotNull())
    decile = F.least(F.floor(F.col("life_stage_confidence") * 10), F.lit(9)).cast("int")
    out = []
    for r in (
        known.groupBy(decile.alias("decile"))
        .agg(
            F.count("*").alias("n"),
            F.avg("life_stage_confidence").alias("c"),
            F.avg(_hit("true_life_stage", "life_stage")).alias("a"),
        )
        .orderBy("decile")
        .collect()
    ):
        out.append(
            {
                "decile": int(r["decile"]),
                "n": int(r["n"]),
                "stated_confidence": round(float(r["c"]), 4),
                "observed_accuracy": round(float(r["a"]), 4),
            }
        )
    return out


def confusion(rows: DataFrame, truth_col: str, pred_col: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows.groupBy(truth_col, pred_col).count().collect():
        out.setdefault(str(r[truth_col]), {})[str(r[pred_col])] = int(r["count"])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def score(rows: DataFrame) -> dict[str, Any]:
    """Every figure and check from one row per person (her main one_id).

    ``rows``: true_life_stage, life_stage, life_stage_confidence, has_stated_date,
    baseline_stage, true_journey_stage, journey_stage.
    """
    stated = rows.where(F.col("has_stated_date"))
    inferred = rows.where(~F.col("has_stated_date"))
    s = group_scores(stated)
    i = group_scores(inferred)
    b = group_scores(inferred, pred="baseline_stage")
    i["baseline_accuracy"] = b["accuracy"]
    i["baseline_coverage"] = b["coverage"]
    cal = calibration(inferred)
    j = group_scores(
        rows.where(F.col("true_journey_stage").isNotNull()), "journey_stage", "true_journey_stage"
    )
    t = TARGETS
    worst = [
        round(abs(d["observed_accuracy"] - d["stated_confidence"]), 4)
        for d in cal
        if d["n"] >= t["calibration_min_n"]
    ]
    checks = {
        "stated_accuracy": s["accuracy"] is not None and s["accuracy"] >= t["stated_accuracy"],
        "inferred_beats_baseline": i["accuracy"] is not None
        and i["accuracy"] >= (b["accuracy"] or 0.0) + t["inferred_margin"],
        "inferred_coverage": i["coverage"] is not None and i["coverage"] >= t["inferred_coverage"],
        "calibrated": all(w <= t["calibration_tolerance"] for w in worst),
        "journey_accuracy": j["accuracy"] is not None and j["accuracy"] >= t["journey_accuracy"],
    }
    return {
        "stated": s,
        "inferred": i,
        "calibration": cal,
        "calibration_worst_gap": max(worst) if worst else None,
        "journey": {"accuracy": j["accuracy"], "n": j["n"]},
        "checks": checks,
        "targets": t,
        "passed": all(checks.values()),
    }


def baseline_for(lake: Lake, as_of: date, rules: LifeStageRules) -> DataFrame:
    """(one_id, baseline_stage) from the same silver behaviour the profile stage reads."""
    from cradle.profile.stage import with_one_id
    from cradle.sources import load_sources

    cfg = load_profile()
    tables = silver_tables(load_sources().sources)
    current_map = lake.read(IDENTITY_MAP).where(F.col("valid_to").isNull())

    def silver(name: str) -> DataFrame:
        rows = lake.read(tables[name])
        if "event_date" in rows.columns:
            rows = rows.where(F.col("event_date") <= F.lit(as_of))
        return with_one_id(rows, name, tables[name], current_map)

    products = lake.read(tables["products"])
    lines = signals.order_lines(silver("pos_orders"), silver("ecom_orders"), products)
    dmp_spec = next((s for s in rules.inference.signals if s.kind == "dmp_tag"), None)
    obs = signals.observations(
        lines,
        silver("wechat_events"),
        silver("app_events"),
        silver("dmp_tags"),
        silver("hospital_signups"),
        products,
        cfg.journey,
        dmp_spec.min_score if dmp_spec else None,
    )
    return latest_signal_stage(signals.life_stage_signals(obs, rules), as_of, rules)


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.spark import build_spark

    landing = Path(args.data) if getattr(args, "data", None) else Path(env.landing_root)
    spark = build_spark(env, app_name="cradle-eval-lifestage")
    lake = Lake(spark, env.lake_root)
    profile = lake.read(MEMBER_PROFILE).cache()
    as_of = profile.agg(F.max("as_of")).first()[0]
    if as_of is None:
        return {"passed": False, "error": "cradle_gold.member_profile is empty: run the profile stage first"}
    rules = load_profile().life_stage
    truth_dir = landing / "_truth"
    records = spark.read.parquet(str(truth_dir / "record_person.parquet"))
    people = person_of_one_id(labelled_records(lake, records)).where(F.col("is_main"))
    stage_truth = current(spark.read.parquet(str(truth_dir / "life_stage.parquet")), as_of).select(
        "person_id", F.col("life_stage").alias("true_life_stage")
    )
    journey_truth = current(spark.read.parquet(str(truth_dir / "journey.parquet")), as_of).select(
        "person_id", F.col("journey_stage").alias("true_journey_stage")
    )
    rows = (
        profile.where(F.col("as_of") == F.lit(as_of))
        .join(people, on="one_id", how="inner")
        .join(stage_truth, on="person_id", how="inner")
        .join(journey_truth, on="person_id", how="left")
        .join(baseline_for(lake, as_of, rules), on="one_id", how="left")
        .localCheckpoint()
    )
    result: dict[str, Any] = {"as_of": str(as_of), "persons": rows.count(), **score(rows)}
    by_source = {}
    for r in (
        rows.groupBy("life_stage_source")
        .agg(F.count("*").alias("n"), F.avg(_hit("true_life_stage", "life_stage")).alias("a"))
        .collect()
    ):
        by_source[str(r["life_stage_source"])] = {"n": int(r["n"]), "accuracy": round(float(r["a"]), 4)}
    result["by_source"] = dict(sorted(by_source.items()))
    result["stated"]["confusion"] = confusion(
        rows.where(F.col("has_stated_date")), "true_life_stage", "life_stage"
    )
    result["inferred"]["confusion"] = confusion(
        rows.where(~F.col("has_stated_date")), "true_life_stage", "life_stage"
    )
    result["journey"]["confusion"] = confusion(rows, "true_journey_stage", "journey_stage")
    return result
