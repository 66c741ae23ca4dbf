"""The evaluators on literal frames: figures that cannot be passed by abstaining or by
quarantining everything (issue #11.3)."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.evals.identity import figures, unattributable_merges
from cradle.evals.ingest import judge_rows

LABELLED = "record_id long, one_id string, person_id string, unattributable boolean"
# Person A holds records 1-3, person B record 4; record 5 has no true person.
TRUTH = [(1, "A", False), (2, "A", False), (3, "A", False), (4, "B", False), (5, None, True)]


def predicted(spark: SparkSession, one_ids: list[str]) -> DataFrame:
    rows = [(r, one_ids[i], p, u) for i, (r, p, u) in enumerate(TRUTH)]
    return spark.createDataFrame(rows, LABELLED)


def core(result: dict) -> dict:
    keys = (
        "precision",
        "recall",
        "f1",
        "bcubed_precision",
        "bcubed_recall",
        "people_in_one_one_id",
        "largest_predicted",
        "largest_true",
        "largest_ratio",
        "wrong_pairs",
        "clusters_wrongly_merged",
    )
    return {k: result[k] for k in keys}


def test_the_true_clustering_scores_one_everywhere(spark: SparkSession):
    assert core(figures(predicted(spark, ["x", "x", "x", "y", "z"]))) == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "bcubed_precision": 1.0,
        "bcubed_recall": 1.0,
        "people_in_one_one_id": 1.0,
        "largest_predicted": 3,
        "largest_true": 3,
        "largest_ratio": 1.0,
        "wrong_pairs": 0,
        "clusters_wrongly_merged": 0,
    }


def test_abstaining_scores_zero_f1_and_splits_people(spark: SparkSession):
    # Every record alone: no wrong pair, but nothing found; only the one-record person is whole.
    assert core(figures(predicted(spark, ["a", "b", "c", "d", "e"]))) == {
        "precision": 1.0,
        "recall": 0.0,
        "f1": 0.0,
        "bcubed_precision": 1.0,
        "bcubed_recall": 0.6,
        "people_in_one_one_id": 0.5,
        "largest_predicted": 1,
        "largest_true": 3,
        "largest_ratio": 0.333,
        "wrong_pairs": 0,
        "clusters_wrongly_merged": 0,
    }


def test_one_cluster_for_everything_scores_low_precision(spark: SparkSession):
    assert core(figures(predicted(spark, ["x"] * 5))) == {
        "precision": 0.3,
        "recall": 1.0,
        "f1": 0.461538,
        "bcubed_precision": 0.44,
        "bcubed_recall": 1.0,
        "people_in_one_one_id": 1.0,
        "largest_predicted": 5,
        "largest_true": 3,
        "largest_ratio": 1.667,
        "wrong_pairs": 7,
        "clusters_wrongly_merged": 1,
    }


def test_wrong_merges_of_unattributable_records_are_reported_apart(spark: SparkSession):
    # Record 5 (no person) glued to B: the only wrong pair involves an unattributable record.
    labelled = predicted(spark, ["x", "x", "x", "y", "y"])
    overall = figures(labelled)
    assert overall["precision"] == 0.75
    assert unattributable_merges(labelled, overall) == {
        "records": 1,
        "wrong_pairs": 1,
        "clusters": 1,
        "precision_attributable_only": 1.0,
    }


DEFECTS = "kind string, source string, file string, line long, field string, detail string, withdrawn boolean"
JUDGED = "kind string, caught boolean, hidden boolean, hidden_by string"


@pytest.fixture
def ingest_frames(spark: SparkSession) -> dict[str, DataFrame]:
    defects = spark.createDataFrame(
        [
            ("impossible_date", "pos", "f1", 2, "paid_at", "2026-02-30", False),
            ("mobile_format", "pos", "f1", 2, "mobile", "86", False),  # hidden by the bad date
            ("mobile_format", "pos", "f1", 3, "mobile", "86", False),  # vanished: missed
            ("mobile_format", "pos", "f1", 4, "mobile", "86", False),  # a later update won
            ("mobile_format", "pos", "f1", 5, "mobile", "86", False),  # normalised: caught
            ("mobile_format", "pos", "f1", 6, "mobile", "86", False),  # quarantined clean line
            ("late_event", "pos", "f1", 7, "paid_at", "3 days", False),  # withdrawn by a correction
        ],
        DEFECTS,
    )
    return {
        "defects": defects,
        "quarantined": spark.createDataFrame([("f1", 2), ("f1", 6)], "file string, line long"),
        "silver": spark.createDataFrame(
            [("f1", 5, None, None), ("f2", 1, None, None)],
            "file string, line long, event_date date, _delivery_date date",
        ),
        "mobiles": spark.createDataFrame(
            [("f1", 5, "mobile", "valid"), ("f2", 1, "mobile", "valid")],
            "file string, line long, field string, status string",
        ),
        "record_person": spark.createDataFrame(
            [("f1", i, "pos", f"k{i}") for i in range(2, 8)] + [("f2", 1, "pos", "k4")],
            "file string, line long, source string, record_key string",
        ),
    }


def test_hidden_only_where_a_named_cause_explains_it(spark: SparkSession, ingest_frames):
    f = ingest_frames
    f["defects"] = f["defects"].withColumn(
        "withdrawn", (f["defects"]["line"] == 7) & (f["defects"]["kind"] == "late_event")
    )
    judged = judge_rows(f["defects"], f["quarantined"], f["silver"], f["mobiles"], f["record_person"])
    assertDataFrameEqual(
        judged,
        spark.createDataFrame(
            [
                ("impossible_date", True, False, None),
                ("mobile_format", False, True, "impossible_date"),
                ("mobile_format", False, False, None),
                ("mobile_format", False, True, "newer_version"),
                ("mobile_format", True, False, None),
                ("mobile_format", False, False, None),
                ("late_event", False, True, "withdrawn"),
            ],
            JUDGED,
        ),
    )


def test_quarantining_everything_hides_nothing(spark: SparkSession, ingest_frames):
    f = ingest_frames
    every_line = f["record_person"].select("file", "line")
    nothing = f["silver"].limit(0)
    judged = judge_rows(f["defects"], every_line, nothing, f["mobiles"].limit(0), f["record_person"])
    assertDataFrameEqual(
        judged,
        spark.createDataFrame(
            [
                ("impossible_date", True, False, None),
                ("mobile_format", False, True, "impossible_date"),
                ("mobile_format", False, False, None),
                ("mobile_format", False, False, None),
                ("mobile_format", False, False, None),
                ("mobile_format", False, False, None),
                ("late_event", False, False, None),
            ],
            JUDGED,
        ),
    )
