"""Segments on literal frames: the expression language (precedence, not, in-lists, time
windows, nulls), what it rejects, materialisation and the preview that writes nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import (
    IDENTITY_MAP,
    MEMBER_PROFILE,
    MEMBER_TAGS,
    SEGMENT_MEMBERS,
    SEGMENT_SIZES,
    Table,
    silver_tables,
)
from cradle.config import ConfigError
from cradle.lake import Lake
from cradle.segments.expressions import Between, Binary, Call, In, Interval, IsNull, Lit, Name, Unary, parse
from cradle.segments.members import segment_members, segment_sizes, wide_frame
from cradle.segments.preview import preview
from cradle.segments.settings import LimitsSpec, SegmentsConfig, load_segments, parse_segments, profile_fields
from cradle.segments.stage import write_segments
from cradle.sources import load_sources
from cradle.tags.settings import load_tags

RUN = date(2026, 3, 31)
FIELDS = {
    "life_stage",
    "formula_stage",
    "next_stage_date",
    "days_to_next_stage",
    "city_tier",
    "value_tier",
    "is_dormant",
    "consent",
}
TAGS = {"buyer_formula", "lbs_maternity_hospital", "app_pregnancy_reader"}


def p(text: str):
    return parse("s", text, FIELDS, TAGS).tree


def test_precedence_not_binds_tighter_than_and_than_or():
    a, b, c = (Binary("=", Name("city_tier"), Lit(n)) for n in (1, 2, 3))
    assert p("city_tier = 1 or city_tier = 2 and city_tier = 3") == Binary("or", a, Binary("and", b, c))
    assert p("(city_tier = 1 or city_tier = 2) and city_tier = 3") == Binary("and", Binary("or", a, b), c)
    assert p("not city_tier = 1 and city_tier = 2") == Binary("and", Unary("not", a), b)
    assert p("NOT (city_tier = 1 OR city_tier = 2)") == Unary("not", Binary("or", a, b))


def test_in_lists_between_nulls_and_time_windows_parse():
    assert p("city_tier not in (4, 5)") == In(Name("city_tier"), (Lit(4), Lit(5)), True)
    assert p("days_to_next_stage between 0 and 30") == Between(
        Name("days_to_next_stage"), Lit(0), Lit(30), False
    )
    assert p("next_stage_date <= run_date + 30 days") == Binary(
        "<=", Name("next_stage_date"), Binary("+", Name("run_date"), Interval(30))
    )
    assert p("life_stage is not null") == IsNull(Name("life_stage"), True)
    assert p("tag('buyer_formula') = 'it''s'") == Binary(
        "=", Call("tag", (Lit("buyer_formula"),)), Lit("it's")
    )
    assert p("next_stage_date > date '2026-04-01'") == Binary(
        ">", Name("next_stage_date"), Lit(date(2026, 4, 1))
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("baby_name = 'x'", "unknown name 'baby_name'"),
        ("exec('rm -rf /')", "function 'exec' is not allowed"),
        ("reflect('java.lang.Runtime', 'getRuntime')", "function 'reflect' is not allowed"),
        ("has_tag('no_such_tag')", "unknown tag 'no_such_tag'"),
        ("has_tag(life_stage)", "needs a quoted name"),
        ("consent = 'x'", "consent is per purpose"),
        ("consent('telepathy')", "unknown consent purpose"),
        ("city_tier > 30 days", "'N days' can only be added"),
        ("city_tier = 1 and", "expression ends too early"),
        ("city_tier = 1; drop table x", "unexpected character ';'"),
        ("city_tier in (1, 2", "expected ')'"),
        ("", "empty expression"),
    ],
)
def test_bad_expressions_fail_naming_the_segment(text, message):
    with pytest.raises(
        ConfigError, match=r"segment 'my_segment': .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        parse("my_segment", text, FIELDS, TAGS)


def test_shipped_segments_parse_against_profile_and_tags():
    config = load_segments()
    expressions = parse_segments(config, profile_fields(), load_tags().tag_names())
    assert {
        "stage2_transition_30d",
        "pregnant_hospital_no_purchase",
        "lapsed_loyal",
        "high_value_tier45_cities",
    } <= set(expressions)
    assert expressions["pregnant_hospital_no_purchase"].tags == {"lbs_maternity_hospital"}


PROFILE_SCHEMA = (
    "one_id string, life_stage string, formula_stage int, next_stage_date date, days_to_next_stage int, "
    "city_tier int, value_tier string, is_dormant boolean, consent map<string,boolean>"
)


@pytest.fixture()
def wide(spark: SparkSession) -> DataFrame:
    profile = spark.createDataFrame(
        [
            ("A", "0-6m", 1, date(2026, 4, 30), 30, 4, "high", False, {"marketing_sms": True}),
            ("B", "0-6m", 1, date(2026, 5, 1), 31, 5, "low", True, {"marketing_sms": False}),
            ("C", "pregnant", 0, date(2026, 4, 10), 10, 1, "high", False, None),
            ("D", None, None, None, None, None, None, None, None),
        ],
        PROFILE_SCHEMA,
    )
    tags = spark.createDataFrame(
        [
            ("C", "lbs_maternity_hospital", "true", "rule", "lbs"),
            ("A", "buyer_formula", "stage_1", "rule", "commerce"),
            ("E", "app_pregnancy_reader", "frequent", "rule", "app"),  # not in the profile
        ],
        "one_id string, tag string, value string, source string, category string",
    )
    return wide_frame(profile, tags, sorted(TAGS))


def members_of(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(
        [(s, o, RUN, "r1") for s, o in rows], "segment string, one_id string, as_of date, run_id string"
    )


def evaluate(wide: DataFrame, **segments: str) -> DataFrame:
    expressions = {n: parse(n, t, FIELDS, TAGS) for n, t in segments.items()}
    return segment_members(wide, expressions, RUN, "r1")


def test_wide_frame_has_profile_fields_and_one_column_per_tag(spark, wide):
    row = {r["one_id"]: r for r in wide.collect()}
    assert sorted(row) == ["A", "B", "C", "D", "E"]
    assert wide.columns[-3:] == [
        "tag__app_pregnancy_reader",
        "tag__buyer_formula",
        "tag__lbs_maternity_hospital",
    ]
    assert row["A"]["tag__buyer_formula"] == "stage_1" and row["E"]["life_stage"] is None


def test_segments_evaluate_with_windows_in_lists_tags_and_nulls(spark, wide):
    got = evaluate(
        wide,
        transition="formula_stage = 1 and next_stage_date between run_date and run_date + 30 days",
        transition_days="formula_stage = 1 and days_to_next_stage between 0 and 30",
        tier45="value_tier = 'high' and city_tier in (4, 5)",
        not_tier1="not city_tier = 1",  # a null city tier is "not tier 1"
        not_in="city_tier not in (4, 5)",
        hospital="life_stage = 'pregnant' and has_tag('lbs_maternity_hospital') "
        "and not has_tag('buyer_formula')",
        stage1_buyer="tag('buyer_formula') = 'stage_1' or has_tag('app_pregnancy_reader')",
        sms="consent('marketing_sms') and not is_dormant",
        unknown_stage="life_stage is null",
        soon="days_until(next_stage_date) < 15",
    )
    expected = members_of(
        spark,
        [
            ("transition", "A"),
            ("transition_days", "A"),
            ("tier45", "A"),
            ("not_tier1", "A"),
            ("not_tier1", "B"),
            ("not_tier1", "D"),
            ("not_tier1", "E"),
            ("not_in", "C"),
            ("not_in", "D"),
            ("not_in", "E"),
            ("hospital", "C"),
            ("stage1_buyer", "A"),
            ("stage1_buyer", "E"),
            ("sms", "A"),
            ("unknown_stage", "D"),
            ("unknown_stage", "E"),
            ("soon", "C"),
        ],
    )
    assertDataFrameEqual(got, expected)


def test_sizes_count_every_segment_including_empty_ones(spark, wide):
    members = evaluate(wide, tier45="value_tier = 'high' and city_tier in (4, 5)", nobody="city_tier = 9")
    expected = spark.createDataFrame(
        [("nobody", RUN, 0, "r1"), ("tier45", RUN, 1, "r1")],
        "segment string, as_of date, members long, run_id string",
    )
    assertDataFrameEqual(segment_sizes(members, ["tier45", "nobody"], RUN, "r1"), expected)


def test_oversized_expressions_are_refused_naming_the_segment_not_a_recursion_error():
    thousand_terms = " or ".join(["city_tier = 1"] * 1000)
    with pytest.raises(
        ConfigError, match=r"segment 's': expression has 3999 tokens, more than the limit of 2000"
    ):
        p(thousand_terms)
    nested = "(" * 150 + "city_tier = 1" + ")" * 150
    with pytest.raises(ConfigError, match=r"segment 's': expression is nested more than 32 levels deep"):
        p(nested)
    with pytest.raises(ConfigError, match=r"nested more than 32 levels deep"):
        p("not " * 200 + "is_dormant")
    with pytest.raises(ConfigError, match=r"nested more than 32 levels deep"):
        p(" + ".join(["1"] * 300) + " > city_tier")  # a left-deep sum is deep without parentheses
    with pytest.raises(ConfigError, match=r"nested more than 32 levels deep"):
        p("coalesce(" * 40 + "city_tier" + ", 1)" * 40 + " = 1")


def test_size_limits_are_configurable_within_ceilings():
    roomy = SegmentsConfig.model_validate(
        {
            "segments": {
                "big": {"description": "d", "owner": "o", "expression": " or ".join(["is_dormant"] * 1500)}
            },
            "limits": {"max_tokens": 5000},
        }
    )
    assert parse_segments(roomy, FIELDS, TAGS)["big"].fields == {"is_dormant"}
    with pytest.raises(ConfigError, match=r"segment 'big': expression has 2999 tokens"):
        parse_segments(roomy.model_copy(update={"limits": LimitsSpec()}), FIELDS, TAGS)
    with pytest.raises(ValidationError, match="max_depth"):
        LimitsSpec(max_depth=500)  # parsing recurses per level: the ceiling keeps it safe


def test_a_realistic_big_expression_of_200_terms_evaluates(spark, wide):
    # 200 alternatives (a long list of campaign tiers or codes) plus a nested clause.
    terms = [f"days_to_next_stage = {n}" for n in range(200)]
    text = "(" + " or ".join(terms) + ") and not (value_tier = 'low' or is_dormant)"
    expression = parse("big", text, FIELDS, TAGS)
    assert expression.fields == {"days_to_next_stage", "value_tier", "is_dormant"}
    got = segment_members(wide, {"big": expression}, RUN, "r1")
    # A (30 days, high, not dormant) and C (10 days, high): B is low and dormant, D and E unknown.
    assertDataFrameEqual(got, members_of(spark, [("big", "A"), ("big", "C")]))


def test_materialisation_is_idempotent_per_run_date(spark, lake: Lake):
    lake.overwrite(SEGMENT_MEMBERS, members_of(spark, []))
    lake.overwrite(SEGMENT_SIZES, spark.createDataFrame([], SEGMENT_SIZES.schema))
    earlier = spark.createDataFrame(
        [("tier45", "Z", date(2026, 3, 30), "r0")], "segment string, one_id string, as_of date, run_id string"
    )
    write_segments(
        lake,
        earlier,
        spark.createDataFrame([("tier45", date(2026, 3, 30), 1, "r0")], SEGMENT_SIZES.schema),
        date(2026, 3, 30),
    )
    first = members_of(spark, [("tier45", "A"), ("tier45", "B")])
    sizes = spark.createDataFrame([("tier45", RUN, 2, "r1")], SEGMENT_SIZES.schema)
    write_segments(lake, first, sizes, RUN)
    write_segments(lake, first, sizes, RUN)
    assertDataFrameEqual(lake.read(SEGMENT_MEMBERS), earlier.unionByName(first))
    # a re-run that finds fewer members replaces the date, leaving other dates alone
    second = members_of(spark, [("tier45", "A")])
    write_segments(lake, second, spark.createDataFrame([("tier45", RUN, 1, "r1")], SEGMENT_SIZES.schema), RUN)
    assertDataFrameEqual(lake.read(SEGMENT_MEMBERS), earlier.unionByName(second))
    assertDataFrameEqual(
        lake.read(SEGMENT_SIZES),
        spark.createDataFrame(
            [("tier45", date(2026, 3, 30), 1, "r0"), ("tier45", RUN, 1, "r1")], SEGMENT_SIZES.schema
        ),
    )


# --- preview --------------------------------------------------------------------------------


def table_rows(spark: SparkSession, table: Table, rows: list[dict]) -> DataFrame:
    """Rows of ``table`` with the given values and placeholders in required columns."""
    filler = {T.StringType: "x", T.IntegerType: 0, T.LongType: 0, T.DateType: RUN}
    full = []
    for values in rows:
        row = []
        for f in table.schema.fields:
            if f.name in values:
                row.append(values[f.name])
            elif not f.nullable:
                row.append(filler.get(type(f.dataType)))
            else:
                row.append(None)
        full.append(tuple(row))
    return spark.createDataFrame(full, table.schema)


def delta_state(root: str) -> dict[str, int]:
    """Every Delta table under the lake with the number of commits in its log."""
    return {
        str(log.parent.relative_to(root)): len(list(log.glob("*.json")))
        for log in Path(root).glob("*/*/_delta_log")
    }


def test_preview_prints_size_and_masked_sample_and_writes_nothing(spark, lake: Lake):
    crm = silver_tables(load_sources().sources)["crm_members"]
    lake.overwrite(
        crm,
        table_rows(
            spark,
            crm,
            [
                {"member_id": "M1", "mobile_masked": "138****0001", "mobile_token": "secret-token-1"},
                {"member_id": "M2", "mobile_masked": None},
            ],
        ),
    )
    lake.overwrite(
        IDENTITY_MAP,
        spark.createDataFrame(
            [("crm_members", "M1", 1, "P1", RUN, None, "r"), ("crm_members", "M2", 2, "P2", RUN, None, "r")],
            IDENTITY_MAP.schema,
        ),
    )
    lake.overwrite(
        MEMBER_TAGS,
        spark.createDataFrame(
            [
                ("P1", "buyer_diapers", "once", "rule", "commerce", None, date(2026, 3, 1), None, RUN, "r"),
                ("P2", "buyer_diapers", "once", "rule", "commerce", None, date(2026, 3, 1), None, RUN, "r"),
                ("P3", "buyer_diapers", "once", "rule", "commerce", None, date(2026, 3, 1), None, RUN, "r"),
                (
                    "P3",
                    "buyer_formula",
                    "stage_2",
                    "rule",
                    "commerce",
                    None,
                    date(2026, 3, 1),
                    None,
                    RUN,
                    "r",
                ),
                ("P4", "buyer_diapers", "once", "rule", "commerce", None, date(2026, 4, 1), None, RUN, "r"),
            ],
            MEMBER_TAGS.schema,
        ),
    )
    # An empty profile: the people are the tag holders.
    lake.overwrite(MEMBER_PROFILE, spark.createDataFrame([], MEMBER_PROFILE.schema))
    before = delta_state(lake.root)
    assert "gold/member_tags" in before and "silver/crm_members" in before

    result = preview(lake, "has_tag('buyer_diapers') and not has_tag('buyer_formula')", RUN, limit=5)

    assert (result.size, result.people, result.sample) == (2, 3, [("P1", "138****0001"), ("P2", None)])
    assert delta_state(lake.root) == before
    with pytest.raises(ConfigError, match="segment 'preview': unknown tag 'nope'"):
        preview(lake, "has_tag('nope')", RUN)
