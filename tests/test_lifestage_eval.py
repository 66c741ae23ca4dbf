"""The life-stage evaluator on literal frames: abstaining and overconfidence score badly.

Every figure is computed by hand from the rows written here, so a change to how the
evaluator counts shows up as a wrong number, not as a quietly better score.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.evals.lifestage import TARGETS, calibration, group_scores, latest_signal_stage, score
from cradle.profile.settings import load_profile

LS = load_profile().life_stage
AS_OF = date(2026, 3, 31)
ROW_DDL = (
    "one_id string, true_life_stage string, life_stage string, life_stage_confidence double, "
    "has_stated_date boolean, baseline_stage string, true_journey_stage string, journey_stage string"
)


def rows(spark: SparkSession, data: list[tuple]) -> DataFrame:
    return spark.createDataFrame(data, ROW_DDL)


def test_an_abstention_is_a_miss_and_coverage_says_how_many(spark: SparkSession) -> None:
    data = rows(
        spark,
        [
            ("a", "0-6m", "0-6m", 0.9, False, "0-6m", "loyal", "loyal"),
            ("b", "1-2y", None, None, False, "1-2y", "trial", "trial"),
            ("c", "2-3y", None, None, False, None, "education", "education"),
            ("d", "pregnant", "0-6m", 0.6, False, "pregnant", None, "trial"),
        ],
    )
    # One right out of four: the two unknown stages count as wrong, not as absent.
    assert group_scores(data) == {"n": 4, "accuracy": 0.25, "coverage": 0.5}
    assert group_scores(data, pred="baseline_stage") == {"n": 4, "accuracy": 0.75, "coverage": 0.75}
    # Abstaining on everyone but the one sure row would score 1.0 if nulls were skipped.
    only_sure = data.where("one_id = 'a'").unionByName(
        data.where("one_id != 'a'").selectExpr(
            *[c if c != "life_stage" else "null as life_stage" for c in data.columns]
        )
    )
    assert group_scores(only_sure) == {"n": 4, "accuracy": 0.25, "coverage": 0.25}
    result = score(data)
    assert result["inferred"]["accuracy"] == 0.25
    assert result["inferred"]["baseline_accuracy"] == 0.75
    assert result["checks"]["inferred_beats_baseline"] is False
    assert result["checks"]["inferred_coverage"] is False
    # Journey: the person without a true journey stage is not scored; three of three right.
    assert result["journey"] == {"accuracy": 1.0, "n": 3}
    assert result["passed"] is False


def test_overconfidence_fails_calibration(spark: SparkSession) -> None:
    # 60 predictions stated at 0.95 of which 30 are right: an honest 0.5 wearing 0.95.
    overconfident = [
        (f"o{k}", "1-2y", "1-2y" if k % 2 else "2-3y", 0.95, False, "1-2y", "loyal", "loyal")
        for k in range(60)
    ]
    # 10 at 0.3 with 3 right: too few to be judged (under calibration_min_n).
    small = [
        (f"s{k}", "0-6m", "0-6m" if k < 3 else "6-12m", 0.3, False, None, "trial", "trial") for k in range(10)
    ]
    stated = [(f"t{k}", "0-6m", "0-6m", 0.98, True, None, "trial", "trial") for k in range(5)]
    data = rows(spark, overconfident + small + stated)
    assert calibration(data.where("not has_stated_date")) == [
        {"decile": 3, "n": 10, "stated_confidence": 0.3, "observed_accuracy": 0.3},
        {"decile": 9, "n": 60, "stated_confidence": 0.95, "observed_accuracy": 0.5},
    ]
    result = score(data)
    assert result["calibration_worst_gap"] == 0.45
    assert result["checks"]["calibrated"] is False
    assert result["checks"]["stated_accuracy"] is True
    assert result["stated"] == {"n": 5, "accuracy": 1.0, "coverage": 1.0}
    assert TARGETS["calibration_min_n"] == 50
    # The same predictions stated honestly pass calibration.
    honest = data.selectExpr(
        *[
            c
            if c != "life_stage_confidence"
            else "if(life_stage_confidence = 0.95, 0.52, 0.3) as life_stage_confidence"
            for c in data.columns
        ]
    )
    assert score(honest)["checks"]["calibrated"] is True


def test_baseline_is_the_band_of_the_latest_signal(spark: SparkSession) -> None:
    signals = spark.createDataFrame(
        [
            # Older weaning reading, then newborn care last week: the latest decides (0-6m).
            ("m1", "inferred_interest", "weaning", date(2026, 2, 1)),
            ("m1", "inferred_interest", "newborn_care", date(2026, 3, 24)),
            # Stage-2 formula 100 days ago, read at its middle (9 months) and moved on: 1-2y.
            ("m2", "inferred_formula_stage", "2", date(2025, 12, 21)),
            # Bound-only readings are not a band: no baseline.
            ("m3", "inferred_formula_youngest", "3", date(2026, 3, 30)),
        ],
        "one_id string, signal string, cls string, event_date date",
    )
    assertDataFrameEqual(
        latest_signal_stage(signals, AS_OF, LS),
        spark.createDataFrame([("m1", "0-6m"), ("m2", "1-2y")], "one_id string, baseline_stage string"),
    )
