"""The tag engine on literal frames: rule evaluation and validation, DMP merge, SCD-2
history across runs (through the real Delta write), and as-of queries."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import IDENTITY_MAP, MEMBER_TAGS
from cradle.config import ConfigError, parse_model
from cradle.lake import Lake
from cradle.tags.engine import (
    CURRENT_COLUMNS,
    HISTORY_COLUMNS,
    check_unique,
    compile_rules,
    rule_tags,
    tags_as_of,
    third_party_tags,
    with_one_id,
)
from cradle.tags.settings import TagsConfig, load_tags
from cradle.tags.stage import write_history

RUN = date(2026, 3, 31)
CURRENT_SCHEMA = "one_id string, tag string, value string, source string, category string, source_date date"
HISTORY_SCHEMA = (
    "one_id string, tag string, value string, source string, category string, source_date date, "
    "valid_from date, valid_to date, as_of date, run_id string"
)


def config(**tags: dict) -> TagsConfig:
    base = {"description": "d", "category": "app", "owner": "test"}
    return TagsConfig.model_validate({"tags": {n: {**base, **spec} for n, spec in tags.items()}})


@pytest.fixture()
def sources(spark: SparkSession) -> dict[str, DataFrame]:
    app_events = spark.createDataFrame(
        [
            ("P1", "view_article", "weaning", date(2026, 3, 31)),
            ("P1", "view_article", "weaning", date(2026, 3, 25)),  # first day of a 7-day window
            ("P2", "view_article", "weaning", date(2026, 3, 24)),  # one day before the window
            ("P3", "view_article", "weaning", date(2026, 4, 1)),  # after the run date
            ("P4", "view_article", "newborn_care", date(2026, 3, 30)),
            ("P5", "open", None, date(2026, 3, 30)),
            (None, "view_article", "weaning", date(2026, 3, 30)),  # unresolved row
        ],
        "one_id string, event string, article_topic string, event_date date",
    )
    products = spark.createDataFrame(
        [("F2", "formula", 2), ("D1", "diapers", None)], "sku string, category string, stage int"
    )
    return {"cradle_silver.app_events": app_events, "cradle_silver.products": products}


WEANING = {
    "window_days": 7,
    "rule": (
        "SELECT one_id, CASE WHEN count(*) >= 2 THEN 'frequent' ELSE 'occasional' END AS value "
        "FROM cradle_silver.app_events WHERE article_topic = 'weaning' "
        "AND event_date BETWEEN {window_start} AND {run_date} GROUP BY one_id"
    ),
}


def test_rule_is_evaluated_over_its_window(spark, sources):
    cfg = config(
        weaning=WEANING,
        opener={
            "category": "app",
            "rule": "SELECT DISTINCT one_id, true AS value FROM cradle_silver.app_events WHERE event='open'",
        },
    )
    compiled = compile_rules(spark, cfg, sources, RUN)
    assert compiled.skipped == {}
    expected = spark.createDataFrame(
        [("P1", "weaning", "frequent", "rule", "app", None), ("P5", "opener", "true", "rule", "app", None)],
        CURRENT_SCHEMA,
    )
    assertDataFrameEqual(rule_tags(cfg, compiled.frames), expected)


def test_rule_with_unknown_column_fails_naming_the_tag(spark, sources):
    cfg = config(bad_column={"rule": "SELECT one_id, topic AS value FROM cradle_silver.app_events"})
    with pytest.raises(ConfigError, match=r"tag 'bad_column'.*topic"):
        compile_rules(spark, cfg, sources, RUN)


def test_rule_with_unknown_table_fails_naming_the_tag(spark, sources):
    cfg = config(bad_table={"rule": "SELECT one_id, 'x' AS value FROM cradle_silver.nowhere"})
    with pytest.raises(ConfigError, match=r"tag 'bad_table': reads unknown table cradle_silver.nowhere;"):
        compile_rules(spark, cfg, sources, RUN)
    unqualified = config(unqualified={"rule": "SELECT one_id, 'x' AS value FROM app_events_nowhere"})
    with pytest.raises(ConfigError, match=r"tag 'unqualified'.*app_events_nowhere"):
        compile_rules(spark, unqualified, sources, RUN)


def test_rule_syntax_error_names_the_tag(spark, sources):
    cfg = config(broken={"rule": "SELECT one_id, FROM WHERE"})
    with pytest.raises(ConfigError, match=r"tag 'broken'"):
        compile_rules(spark, cfg, sources, RUN)


@pytest.mark.parametrize(
    "rule",
    [
        "SELECT one_id FROM cradle_silver.app_events",
        "SELECT one_id, event AS value, event_date FROM cradle_silver.app_events",
        "SELECT one_id AS person, event AS value FROM cradle_silver.app_events",
        "SELECT one_id, array(event) AS value FROM cradle_silver.app_events",
    ],
)
def test_rule_must_return_one_id_and_a_plain_value(spark, sources, rule):
    with pytest.raises(ConfigError, match=r"tag 'shape'"):
        compile_rules(spark, config(shape={"rule": rule}), sources, RUN)


def test_rule_returning_a_person_twice_fails_naming_the_tag(spark, sources):
    cfg = config(
        twice={"rule": "SELECT one_id, event AS value FROM cradle_silver.app_events WHERE one_id = 'P1'"}
    )
    current = rule_tags(cfg, compile_rules(spark, cfg, sources, RUN).frames)
    with pytest.raises(ConfigError, match=r"tag 'twice': rule returns one_id P1 more than once"):
        check_unique(current)


def test_rules_reading_a_table_not_built_yet_are_skipped(spark, sources):
    cfg = config(
        stage={
            "category": "lifecycle",
            "rule": "SELECT one_id, life_stage AS value FROM cradle_gold.member_profile",
        },
        weaning=WEANING,
    )
    compiled = compile_rules(spark, cfg, sources, RUN, pending=frozenset({"cradle_gold.member_profile"}))
    assert sorted(compiled.frames) == ["weaning"]
    assert compiled.skipped == {"stage": "reads cradle_gold.member_profile, which does not exist yet"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"rule": "SELECT one_id, 1 AS value FROM t WHERE d = {today}"}, "unknown placeholder"),
        ({"rule": "SELECT one_id, 1 AS value FROM t WHERE d >= {window_start}"}, "no window_days"),
        ({"rule": "x", "category": "gossip"}, "category"),
        ({"rule": "x", "refresh": "hourly"}, "refresh"),
    ],
)
def test_tag_settings_are_checked_at_load(spec, message, tmp_path):
    data = {"tags": {"t": {"description": "d", "category": "app", "owner": "o", **spec}}}
    with pytest.raises(ConfigError, match=message):
        parse_model(TagsConfig, data, tmp_path / "tags.yaml")


def test_shipped_tags_load():
    tags = load_tags()
    assert {
        "buyer_formula",
        "lbs_maternity_hospital",
        "lbs_store_visitor",
        "life_stage",
        "dmp_diapers",
    } <= set(tags.tag_names())
    assert {t.category for t in tags.tags.values()} >= {
        "app",
        "media",
        "social",
        "commerce",
        "lbs",
        "lifecycle",
        "value",
    }


def test_silver_rows_get_the_current_one_id(spark):
    rows = spark.createDataFrame(
        [
            ("qiyun", "tokA", "diapers", 0.9),
            ("qiyun", "tokB", "diapers", 0.7),
            ("qiyun", "tokC", "diapers", None),
        ],
        "dmp string, mobile_md5_token string, tag string, score double",
    )
    identity_map = spark.createDataFrame(
        [
            ("dmp_tags", "qiyun|tokA|diapers", 1, "OLD", date(2026, 1, 1), date(2026, 2, 1), "r"),
            ("dmp_tags", "qiyun|tokA|diapers", 1, "P1", date(2026, 2, 1), None, "r"),
            ("dmp_tags", "qiyun|tokB|diapers", 2, "P2", date(2026, 1, 1), None, "r"),
            ("app_events", "qiyun|tokC|diapers", 3, "P3", date(2026, 1, 1), None, "r"),  # another source
        ],
        IDENTITY_MAP.schema,
    )
    expected = spark.createDataFrame(
        [("qiyun", "tokA", "diapers", 0.9, "P1"), ("qiyun", "tokB", "diapers", 0.7, "P2")],
        "dmp string, mobile_md5_token string, tag string, score double, one_id string",
    )
    got = with_one_id(rows, identity_map, "dmp_tags", ("dmp", "mobile_md5_token", "tag"))
    assertDataFrameEqual(got, expected)


def test_dmp_tags_merge_with_source_and_date(spark):
    spec = TagsConfig.model_validate(
        {
            "tags": {},
            "third_party": {
                "owner": "o",
                "window_days": 30,
                "min_score": 0.5,
                "high_score": 0.8,
                "tags": {"diapers": "d", "cartoons": "c"},
            },
        }
    ).third_party
    dmp = spark.createDataFrame(
        [
            ("P1", "qiyun", "diapers", 0.9, date(2026, 3, 10)),
            ("P1", "qiyun", "diapers", 0.6, date(2026, 3, 20)),  # latest report, best score kept
            ("P1", "tagsky", "diapers", 0.55, date(2026, 3, 2)),  # first day of the window
            ("P2", "qiyun", "diapers", 0.95, date(2026, 3, 1)),  # outside the window
            ("P2", "qiyun", "cartoons", 0.4, date(2026, 3, 30)),  # under min_score
            ("P3", "qiyun", "cartoons", None, date(2026, 3, 30)),  # no score
            ("P3", "qiyun", "luxury_cars", 0.99, date(2026, 3, 30)),  # not a listed tag
            ("P4", "tagsky", "cartoons", 0.8, date(2026, 3, 31)),
            (None, "tagsky", "cartoons", 0.9, date(2026, 3, 31)),  # unresolved
        ],
        "one_id string, dmp string, tag string, score double, tag_date date",
    )
    expected = spark.createDataFrame(
        [
            ("P1", "dmp_diapers", "high", "dmp:qiyun", "third_party", date(2026, 3, 20)),
            ("P1", "dmp_diapers", "medium", "dmp:tagsky", "third_party", date(2026, 3, 2)),
            ("P4", "dmp_cartoons", "high", "dmp:tagsky", "third_party", date(2026, 3, 31)),
        ],
        CURRENT_SCHEMA,
    )
    assertDataFrameEqual(third_party_tags(dmp, spec, RUN), expected)


# --- history -------------------------------------------------------------------------------

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def current(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame([(o, t, v, s, "app", None) for o, t, v, s in rows], CURRENT_SCHEMA).select(
        *CURRENT_COLUMNS
    )


def history(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(
        [(o, t, v, s, "app", None, *rest) for o, t, v, s, *rest in rows], HISTORY_SCHEMA
    )


@pytest.fixture()
def empty_tags(spark: SparkSession, lake: Lake) -> Lake:
    lake.overwrite(MEMBER_TAGS, spark.createDataFrame([], HISTORY_SCHEMA))
    return lake


def test_history_over_three_runs_and_a_rerun(spark, empty_tags):
    lake = empty_tags
    tags = ["reader", "buyer"]
    # run 1: P1 reader (occasional), P2 reader, P1 buyer from a DMP too
    write_history(
        lake,
        current(
            spark,
            [
                ("P1", "reader", "occasional", "rule"),
                ("P2", "reader", "occasional", "rule"),
                ("P1", "buyer", "true", "rule"),
                ("P1", "buyer", "high", "dmp:qiyun"),
            ],
        ),
        tags,
        D1,
        "run1",
    )
    # run 2: P1's value changes, P2 no longer reads, P1 buyer confirmed, the DMP stops reporting
    write_history(
        lake,
        current(spark, [("P1", "reader", "frequent", "rule"), ("P1", "buyer", "true", "rule")]),
        tags,
        D2,
        "run2",
    )
    # run 3: P2 is back, P1 unchanged, P1 stops buying
    run3 = current(spark, [("P1", "reader", "frequent", "rule"), ("P2", "reader", "occasional", "rule")])
    write_history(lake, run3, tags, D3, "run3")
    # run_id is the run that last wrote the row: closing a row is a change
    expected = history(
        spark,
        [
            ("P1", "reader", "occasional", "rule", D1, D2, D1, "run2"),
            ("P1", "reader", "frequent", "rule", D2, None, D3, "run3"),
            ("P2", "reader", "occasional", "rule", D1, D2, D1, "run2"),
            ("P2", "reader", "occasional", "rule", D3, None, D3, "run3"),
            ("P1", "buyer", "true", "rule", D1, D3, D2, "run3"),
            ("P1", "buyer", "high", "dmp:qiyun", D1, D2, D1, "run2"),
        ],
    )
    assertDataFrameEqual(lake.read(MEMBER_TAGS), expected)

    # re-running the same date with the same inputs changes nothing, not even run ids
    write_history(lake, run3, tags, D3, "run3-again")
    assertDataFrameEqual(lake.read(MEMBER_TAGS), expected)

    # a re-run of the same date that finds different data replaces that date's changes
    write_history(lake, current(spark, [("P1", "reader", "frequent", "rule")]), tags, D3, "run3-late")
    corrected = expected.where("NOT (one_id = 'P2' AND valid_from = DATE'2026-03-03')")
    assertDataFrameEqual(lake.read(MEMBER_TAGS), corrected)

    with pytest.raises(ValueError, match="already holds runs after 2026-03-02"):
        write_history(lake, run3, tags, D2, "backfill")


def test_tags_not_evaluated_keep_their_history(spark, empty_tags):
    lake = empty_tags
    write_history(
        lake,
        current(spark, [("P1", "weekly_tag", "x", "rule"), ("P1", "daily_tag", "y", "rule")]),
        ["weekly_tag", "daily_tag"],
        D1,
        "run1",
    )
    write_history(lake, current(spark, []), ["daily_tag"], D2, "run2")
    expected = history(
        spark,
        [
            ("P1", "weekly_tag", "x", "rule", D1, None, D1, "run1"),
            ("P1", "daily_tag", "y", "rule", D1, D2, D1, "run2"),
        ],
    )
    assertDataFrameEqual(lake.read(MEMBER_TAGS), expected)


def test_tags_as_of_a_date(spark):
    rows = history(
        spark,
        [
            ("P1", "reader", "occasional", "rule", D1, D2, D1, "r1"),
            ("P1", "reader", "frequent", "rule", D2, None, D3, "r3"),
            ("P2", "reader", "occasional", "rule", D1, D2, D1, "r1"),
            ("P2", "reader", "occasional", "rule", D3, None, D3, "r3"),
        ],
    )
    schema = "one_id string, tag string, value string, source string, category string"
    assertDataFrameEqual(
        tags_as_of(rows, D1),
        spark.createDataFrame(
            [("P1", "reader", "occasional", "rule", "app"), ("P2", "reader", "occasional", "rule", "app")],
            schema,
        ),
    )
    assertDataFrameEqual(
        tags_as_of(rows, D2), spark.createDataFrame([("P1", "reader", "frequent", "rule", "app")], schema)
    )
    assertDataFrameEqual(
        tags_as_of(rows, date(2026, 4, 30)),
        spark.createDataFrame(
            [("P1", "reader", "frequent", "rule", "app"), ("P2", "reader", "occasional", "rule", "app")],
            schema,
        ),
    )
    assert tags_as_of(rows, date(2026, 2, 28)).count() == 0


def test_history_columns_match_the_catalogue():
    assert tuple(MEMBER_TAGS.schema.fieldNames()) == HISTORY_COLUMNS
