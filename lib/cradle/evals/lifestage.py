"""Life stage and journey stage against the generator's truth: ``cradle eval lifestage --json``.

Each one_id of ``cradle_gold.member_profile`` is mapped to the person holding most of its
silver records (records matched to ``_truth/record_person.parquet`` by lineage, as the
identity evaluator does; ties go to the smaller person id). The truth is the person's
life stage and journey stage on the profile's ``as_of`` date.

Figures, each over one_ids that map to a person:
- accuracy of the current life stage for one_ids with a stated date (target >= 0.95) and
  for one_ids whose stage is only inferred (target >= 0.85), with confusion matrices
  (truth -> predicted -> count); unknown (null) stages are not in the accuracy but in the
  coverage, reported for all one_ids and for each person's main one_id (the one holding
  most of her records: fragments such as a lone ad device carry no life-stage signal);
- accuracy of the journey stage, with its confusion matrix;
- accuracy by life-stage source.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cradle.catalog import MEMBER_PROFILE
from cradle.config import EnvConfig
from cradle.evals.identity import labelled_records
from cradle.lake import Lake

TARGETS = {"stated_accuracy": 0.95, "inferred_accuracy": 0.85}


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


def confusion(rows: DataFrame, truth_col: str, pred_col: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows.groupBy(truth_col, pred_col).count().collect():
        out.setdefault(str(r[truth_col]), {})[str(r[pred_col])] = int(r["count"])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def accuracy(rows: DataFrame, truth_col: str, pred_col: str) -> tuple[float | None, int]:
    r = rows.agg(
        F.count("*").alias("n"), F.sum((F.col(truth_col) == F.col(pred_col)).cast("int")).alias("ok")
    )
    row = r.first()
    n = int(row["n"])
    return (round(int(row["ok"] or 0) / n, 4) if n else None), n


def by_bucket(rows: DataFrame) -> dict[str, dict[str, Any]]:
    """Accuracy per confidence band (0.1 wide): is the confidence honest?"""
    band = (F.floor(F.col("life_stage_confidence") * 10) / 10).cast("string")
    out = {}
    for r in (
        rows.groupBy(band.alias("band"))
        .agg(
            F.count("*").alias("n"),
            F.avg((F.col("true_life_stage") == F.col("life_stage")).cast("int")).alias("a"),
        )
        .collect()
    ):
        out[str(r["band"])] = {"n": int(r["n"]), "accuracy": round(float(r["a"]), 4)}
    return dict(sorted(out.items()))


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.spark import build_spark

    landing = Path(args.data) if getattr(args, "data", None) else Path(env.landing_root)
    spark = build_spark(env, app_name="cradle-eval-lifestage")
    lake = Lake(spark, env.lake_root)
    profile = lake.read(MEMBER_PROFILE).cache()
    as_of = profile.agg(F.max("as_of")).first()[0]
    if as_of is None:
        return {"passed": False, "error": "cradle_gold.member_profile is empty: run the profile stage first"}
    truth_dir = landing / "_truth"
    records = spark.read.parquet(str(truth_dir / "record_person.parquet"))
    people = person_of_one_id(labelled_records(lake, records)).cache()
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
        .cache()
    )
    known = rows.where(F.col("life_stage").isNotNull())
    stated = known.where(F.col("has_stated_date"))
    inferred = known.where(~F.col("has_stated_date"))
    stated_acc, stated_n = accuracy(stated, "true_life_stage", "life_stage")
    inferred_acc, inferred_n = accuracy(inferred, "true_life_stage", "life_stage")
    overall_acc, overall_n = accuracy(known, "true_life_stage", "life_stage")
    main = rows.where(F.col("is_main"))
    total, main_total = rows.count(), main.count()
    main_known = main.where(F.col("life_stage").isNotNull())
    by_source = {}
    for r in (
        known.groupBy("life_stage_source")
        .agg(
            F.count("*").alias("n"),
            F.avg((F.col("true_life_stage") == F.col("life_stage")).cast("int")).alias("a"),
        )
        .collect()
    ):
        by_source[str(r["life_stage_source"])] = {"n": int(r["n"]), "accuracy": round(float(r["a"]), 4)}
    journey_acc, journey_n = accuracy(
        rows.where(F.col("true_journey_stage").isNotNull()), "true_journey_stage", "journey_stage"
    )
    main_journey_acc, _ = accuracy(
        main.where(F.col("true_journey_stage").isNotNull()), "true_journey_stage", "journey_stage"
    )
    result: dict[str, Any] = {
        "as_of": str(as_of),
        "one_ids_in_profile": profile.count(),
        "one_ids_with_person": total,
        "persons": main_total,
        "stated": {
            "accuracy": stated_acc,
            "n": stated_n,
            "confusion": confusion(stated, "true_life_stage", "life_stage"),
        },
        "inferred": {
            "accuracy": inferred_acc,
            "n": inferred_n,
            "confusion": confusion(inferred, "true_life_stage", "life_stage"),
        },
        "inferred_by_confidence": by_bucket(inferred),
        "inferred_main_one_id": dict(
            zip(
                ("accuracy", "n"),
                accuracy(inferred.where(F.col("is_main")), "true_life_stage", "life_stage"),
                strict=False,
            )
        ),
        "overall": {"accuracy": overall_acc, "n": overall_n},
        "main_one_id": {
            "accuracy": accuracy(main_known, "true_life_stage", "life_stage")[0],
            "coverage": round(main_known.count() / main_total, 4) if main_total else None,
            "unknown": main_total - main_known.count(),
            "unknown_by_true_stage": {
                str(r["true_life_stage"]): int(r["count"])
                for r in main.where(F.col("life_stage").isNull()).groupBy("true_life_stage").count().collect()
            },
        },
        "coverage_all_one_ids": round(known.count() / total, 4) if total else None,
        "unknown_all_one_ids": total - known.count(),
        "by_source": dict(sorted(by_source.items())),
        "journey": {
            "accuracy": journey_acc,
            "n": journey_n,
            "main_one_id_accuracy": main_journey_acc,
            "confusion": confusion(main, "true_journey_stage", "journey_stage"),
        },
        "targets": TARGETS,
    }
    result["passed"] = bool(
        stated_acc is not None
        and inferred_acc is not None
        and stated_acc >= TARGETS["stated_accuracy"]
        and inferred_acc >= TARGETS["inferred_accuracy"]
    )
    return result
