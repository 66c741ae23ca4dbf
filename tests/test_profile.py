"""Member profiles on small literal frames: life-stage boundaries, stated and inferred
stages, journey, RFM ties, dormancy, consent, and the whole profile on a tiny lake's rows.

Rules come from the shipped conf/profile.yaml (the tests pin the behaviour marketers rely
on: 6 months exactly is 6-12m, 365 days without interaction is dormant, ...).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import MEMBER_BABIES, MEMBER_PROFILE
from cradle.config import ConfigError
from cradle.profile import attributes, journey, lifestage, rfm
from cradle.profile.calibration import apply_calibration, fit_isotonic
from cradle.profile.settings import OrdersFeed, ProfileConfig, load_profile
from cradle.profile.stage import build_profile

CFG = load_profile()
LS = CFG.life_stage
AS_OF = date(2026, 3, 31)


def frame(spark: SparkSession, ddl: str, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, ddl)


# --- life stage from a birth date -------------------------------------------------------------


def stages_on(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    births = frame(spark, "case string, b date, as_of date", rows)
    return births.select(
        "case",
        lifestage.stage_of_birth(F.col("b"), F.col("as_of"), LS).alias("life_stage"),
        lifestage.formula_stage_of_birth(F.col("b"), F.col("as_of"), LS).alias("formula_stage"),
        lifestage.next_stage_date(F.col("b"), F.col("as_of"), LS).alias("next_stage_date"),
    )


def test_stage_boundaries_are_calendar_months(spark: SparkSession) -> None:
    d = date(2026, 3, 15)
    rows = [
        ("born today", d, d),
        ("one day short of 6 months", date(2025, 9, 16), d),
        ("exactly 6 months", date(2025, 9, 15), d),
        ("one day short of 12 months", date(2025, 3, 16), d),
        ("exactly 12 months", date(2025, 3, 15), d),
        ("exactly 3 years", date(2023, 3, 15), d),
        ("exactly 6 years", date(2020, 3, 15), d),
        ("due tomorrow", d + timedelta(days=1), d),
        ("due in 280 days", d + timedelta(days=280), d),
        ("due in 281 days", d + timedelta(days=281), d),
        ("leap day, day before 6 months", date(2024, 2, 29), date(2024, 8, 28)),
        ("leap day, 6 months", date(2024, 2, 29), date(2024, 8, 29)),
        ("leap day, day before 12 months", date(2024, 2, 29), date(2025, 2, 27)),
        ("leap day, 12 months on 28 Feb", date(2024, 2, 29), date(2025, 2, 28)),
        ("unknown", None, d),
    ]
    expected = frame(
        spark,
        "case string, life_stage string, formula_stage int, next_stage_date date",
        [
            ("born today", "0-6m", 1, date(2026, 9, 15)),
            ("one day short of 6 months", "0-6m", 1, date(2026, 3, 16)),
            ("exactly 6 months", "6-12m", 2, date(2026, 9, 15)),
            ("one day short of 12 months", "6-12m", 2, date(2026, 3, 16)),
            ("exactly 12 months", "1-2y", 3, date(2028, 3, 15)),
            ("exactly 3 years", "3-4y", 4, None),
            ("exactly 6 years", "6y+", None, None),
            ("due tomorrow", "pregnant", 0, d + timedelta(days=1)),
            ("due in 280 days", "pregnant", 0, d + timedelta(days=280)),
            ("due in 281 days", "preparing", None, None),
            ("leap day, day before 6 months", "0-6m", 1, date(2024, 8, 29)),
            ("leap day, 6 months", "6-12m", 2, date(2025, 2, 28)),
            ("leap day, day before 12 months", "6-12m", 2, date(2025, 2, 28)),
            ("leap day, 12 months on 28 Feb", "1-2y", 3, date(2027, 2, 28)),
            ("unknown", None, None, None),
        ],
    )
    assertDataFrameEqual(stages_on(spark, rows), expected)


# --- stated dates ------------------------------------------------------------------------------

CRM_DDL = "one_id string, baby_birth_date date, due_date date"
HOSPITAL_DDL = "one_id string, due_date date"


def test_stated_babies_twins_second_child_and_due_dates(spark: SparkSession) -> None:
    crm = frame(
        spark,
        CRM_DDL,
        [
            # Twins: two member records (re-registration) stating the same birth date.
            ("twins", date(2025, 12, 1), None),
            ("twins", date(2025, 12, 1), None),
            # A second child: the youngest decides.
            ("second", date(2021, 5, 1), None),
            ("second", date(2025, 8, 10), None),
            # The due date of the child already born is not a new baby.
            ("born", date(2025, 11, 20), date(2025, 11, 25)),
            # A due date that has passed: the baby is born (0-6m), the due date stands in.
            ("due passed", None, date(2026, 3, 1)),
            # Pregnant again: a due date long after the stated child.
            ("again", date(2023, 6, 1), date(2026, 7, 1)),
            ("nothing", None, None),
        ],
    )
    hospital = frame(spark, HOSPITAL_DDL, [("hospital", date(2026, 5, 20))])
    babies = lifestage.stated_babies(crm, hospital, AS_OF, LS)
    assertDataFrameEqual(
        babies,
        frame(
            spark,
            "one_id string, baby_no int, birth_date date, due_date date, source string, as_of date",
            [
                ("twins", 1, date(2025, 12, 1), None, "crm_members.baby_birth_date", AS_OF),
                ("second", 1, date(2021, 5, 1), None, "crm_members.baby_birth_date", AS_OF),
                ("second", 2, date(2025, 8, 10), None, "crm_members.baby_birth_date", AS_OF),
                ("born", 1, date(2025, 11, 20), None, "crm_members.baby_birth_date", AS_OF),
                ("due passed", 1, None, date(2026, 3, 1), "crm_members.due_date", AS_OF),
                ("again", 1, date(2023, 6, 1), None, "crm_members.baby_birth_date", AS_OF),
                ("again", 2, None, date(2026, 7, 1), "crm_members.due_date", AS_OF),
                ("hospital", 1, None, date(2026, 5, 20), "hospital_signups.due_date", AS_OF),
            ],
        ),
    )
    conf = LS.stated.confidence
    assertDataFrameEqual(
        lifestage.stated_life_stage(babies, AS_OF, LS),
        frame(
            spark,
            "one_id string, youngest_birth date, life_stage string, life_stage_source string, "
            "life_stage_confidence double",
            [
                ("twins", date(2025, 12, 1), "0-6m", "stated_birth_date", conf["stated_birth_date"]),
                ("second", date(2025, 8, 10), "6-12m", "stated_birth_date", conf["stated_birth_date"]),
                ("born", date(2025, 11, 20), "0-6m", "stated_birth_date", conf["stated_birth_date"]),
                ("due passed", date(2026, 3, 1), "0-6m", "stated_due_date", conf["stated_due_date_passed"]),
                ("again", date(2026, 7, 1), "pregnant", "stated_due_date", conf["stated_due_date"]),
                ("hospital", date(2026, 5, 20), "pregnant", "stated_due_date", conf["stated_due_date"]),
            ],
        ),
    )


def test_member_babies_is_restricted_and_profile_has_no_exact_dates() -> None:
    assert MEMBER_BABIES.restricted
    assert not MEMBER_PROFILE.restricted
    names = set(MEMBER_PROFILE.schema.fieldNames())
    assert not names & {"birth_date", "due_date", "youngest_birth", "mother_birth_date", "baby_birth_date"}


# --- inference from behaviour ----------------------------------------------------------------

SIGNAL_DDL = "one_id string, signal string, cls string, event_date date"


def test_inferred_stage_follows_the_child_forward(spark: SparkSession) -> None:
    signals = frame(
        spark,
        SIGNAL_DDL,
        [
            # Newborn articles a week ago, and newborn diapers: a 0-6m baby.
            ("newborn", "inferred_interest", "newborn_care", date(2026, 3, 24)),
            ("newborn", "inferred_purchase", "DP-NB", date(2026, 3, 20)),
            # Weaning articles 80 days ago, toddler articles in the last weeks: moved on to 1-2y.
            ("grew", "inferred_interest", "weaning", date(2026, 1, 10)),
            ("grew", "inferred_interest", "toddler_nutrition", date(2026, 3, 1)),
            ("grew", "inferred_interest", "toddler_nutrition", date(2026, 3, 30)),
            # Maternal formula twice and a hospital course: pregnant.
            ("expecting", "inferred_maternal_formula", "0", date(2026, 3, 2)),
            ("expecting", "inferred_maternal_formula", "0", date(2026, 3, 28)),
            ("expecting", "inferred_hospital", "signup", date(2026, 3, 15)),
            # Pregnancy-preparation articles only: preparing.
            ("preparing", "inferred_interest", "pregnancy_prep", date(2026, 3, 10)),
            ("preparing", "inferred_interest", "pregnancy_prep", date(2026, 3, 29)),
            # Stage 2 for the baby and stage 4 for an older sibling: the youngest decides.
            ("siblings", "inferred_formula_stage", "2", date(2026, 3, 20)),
            ("siblings", "inferred_formula_youngest", "2", date(2026, 3, 20)),
            ("siblings", "inferred_formula_stage", "4", date(2026, 3, 21)),
            ("siblings", "inferred_formula_youngest", "4", date(2026, 3, 21)),
            ("siblings", "inferred_interest", "weaning", date(2026, 3, 25)),
            # Too old to count (outside the lookback window) and an unknown class: no stage.
            ("stale", "inferred_interest", "newborn_care", date(2025, 10, 1)),
            ("stale", "inferred_interest", "astrology", date(2026, 3, 30)),
        ],
    )
    inferred = lifestage.infer_life_stage(signals, AS_OF, LS)
    assertDataFrameEqual(
        inferred.select("one_id", "life_stage", "life_stage_source"),
        frame(
            spark,
            "one_id string, life_stage string, life_stage_source string",
            [
                ("newborn", "0-6m", "inferred_interest"),
                ("grew", "1-2y", "inferred_interest"),
                ("expecting", "pregnant", "inferred_maternal_formula"),
                ("preparing", "preparing", "inferred_interest"),
                ("siblings", "6-12m", "inferred_interest"),
            ],
        ),
    )
    confidence = {r["one_id"]: r["life_stage_confidence"] for r in inferred.collect()}
    # Signals that pin the birth date to one stage give a high confidence; "grew" keeps some
    # doubt (one weaning article against a 2-year toddler window), as does pregnancy-prep
    # reading (it cannot tell preparing from an early pregnancy).
    assert min(confidence["newborn"], confidence["expecting"], confidence["siblings"]) >= 0.9
    assert 0.6 <= confidence["grew"] < 0.9
    assert 0.6 <= confidence["preparing"] < 0.9


def test_stated_wins_unless_behaviour_shows_a_younger_child(spark: SparkSession) -> None:
    ddl = (
        "one_id string, youngest_birth date, life_stage string, life_stage_source string, "
        "life_stage_confidence double"
    )
    stated = frame(
        spark,
        ddl,
        [
            ("new baby", date(2022, 11, 1), "3-4y", "stated_birth_date", 0.98),
            ("boundary", date(2025, 3, 25), "1-2y", "stated_birth_date", 0.98),
            ("older", date(2025, 12, 1), "0-6m", "stated_birth_date", 0.98),
            ("unsure", date(2022, 11, 1), "3-4y", "stated_birth_date", 0.98),
            ("stated only", date(2024, 1, 1), "2-3y", "stated_birth_date", 0.98),
        ],
    )
    inferred = frame(
        spark,
        ddl,
        [
            ("new baby", date(2025, 11, 20), "0-6m", "inferred_interest", 0.97),
            # Behaviour reads the same child a week younger (6-12m): the stated date stays.
            ("boundary", date(2025, 4, 5), "6-12m", "inferred_interest", 0.95),
            ("older", date(2024, 1, 1), "2-3y", "inferred_dmp", 0.95),
            ("unsure", date(2025, 11, 20), "0-6m", "inferred_dmp", 0.6),
            ("inferred only", date(2025, 11, 20), "0-6m", "inferred_interest", 0.9),
        ],
    )
    combined = lifestage.combine_life_stage(stated, inferred, LS)
    assertDataFrameEqual(
        combined.select("one_id", "life_stage", "life_stage_source", "has_stated_date"),
        frame(
            spark,
            "one_id string, life_stage string, life_stage_source string, has_stated_date boolean",
            [
                ("new baby", "0-6m", "inferred_interest", True),
                ("boundary", "1-2y", "stated_birth_date", True),
                ("older", "0-6m", "stated_birth_date", True),
                ("unsure", "3-4y", "stated_birth_date", True),
                ("stated only", "2-3y", "stated_birth_date", True),
                ("inferred only", "0-6m", "inferred_interest", False),
            ],
        ),
    )


# --- journey -----------------------------------------------------------------------------------


def test_journey_stages_and_tiers(spark: SparkSession) -> None:
    members = frame(
        spark, "one_id string", [("edu",), ("trial",), ("new",), ("loyal",), ("switched",), ("gone",)]
    )
    orders = frame(
        spark,
        "one_id string, order_id string, order_date date, is_own boolean",
        [
            ("new", "o1", date(2026, 3, 1), True),
            ("loyal", "o2", date(2026, 2, 1), True),
            ("loyal", "o3", date(2026, 3, 1), True),
            ("switched", "o4", date(2026, 2, 1), True),
            ("switched", "o5", date(2026, 3, 1), False),
            # Bought the brand twice, long ago: lost after lost_after_days.
            ("gone", "o6", date(2025, 6, 1), True),
            ("gone", "o7", date(2025, 7, 1), True),
            # After the run date: not seen yet.
            ("edu", "o8", date(2026, 4, 2), True),
        ],
    )
    trials = frame(
        spark, "one_id string, event_date date", [("trial", date(2026, 3, 5)), ("new", date(2026, 2, 1))]
    )
    tier = CFG.journey.member_tier
    expected = [
        ("edu", "education"),
        ("trial", "trial"),
        ("new", "new_customer"),
        ("loyal", "loyal"),
        ("switched", "lost"),
        ("gone", "lost"),
    ]
    assertDataFrameEqual(
        journey.journey_stage(members, orders, trials, AS_OF, CFG.journey),
        frame(
            spark,
            "one_id string, journey_stage string, member_tier string",
            [(m, s, tier[s]) for m, s in expected],
        ),
    )


# --- RFM ---------------------------------------------------------------------------------------


def test_feed_orders_sums_lines_and_filters(spark: SparkSession) -> None:
    lines = frame(
        spark,
        "cust string, ord string, ts timestamp, amt double, shop string",
        [
            ("a", "1", datetime(2026, 3, 1, 10), 10.0, "S1"),
            ("a", "1", datetime(2026, 3, 1, 10), 5.5, "S1"),
            ("a", "2", datetime(2026, 3, 5, 9), 0.0, "S1"),  # a free sample: filtered out
            (None, "3", datetime(2026, 3, 6, 9), 8.0, "S2"),  # no customer: dropped
        ],
    )
    feed = OrdersFeed(
        table="t",
        customer="cust",
        order_id="ord",
        order_date="to_date(ts)",
        amount="amt",
        channel="'store'",
        store_id="shop",
        where="amt > 0",
    )
    assertDataFrameEqual(
        rfm.feed_orders(lines, feed),
        frame(
            spark,
            "customer_id string, order_id string, order_date date, amount double, channel string, "
            "store_id string",
            [("a", "1", date(2026, 3, 1), 15.5, "store", "S1")],
        ),
    )


def test_rfm_quintiles_tie_deterministically(spark: SparkSession) -> None:
    # Five customers: frequency 1, 2, 2, 3, 5 -> ranks 1, 2, 2, 4, 5 -> f_score 1, 2, 2, 4, 5.
    orders = []
    spec = {
        "c1": (1, 30.0, 5),
        "c2": (2, 20.0, 5),
        "c3": (2, 20.0, 5),
        "c4": (3, 10.0, 1),
        "c5": (5, 50.0, 0),
    }
    for cust, (n, amount, days_ago) in spec.items():
        for k in range(n):
            orders.append(
                (cust, f"{cust}-{k}", date.fromordinal(AS_OF.toordinal() - days_ago - 7 * k), amount / n)
            )
    # An order outside the 365-day window and one after the run date do not count.
    orders.append(("c1", "old", date(2025, 3, 31), 999.0))
    orders.append(("c1", "future", date(2026, 4, 1), 999.0))
    df = frame(spark, "customer_id string, order_id string, order_date date, amount double", orders)
    scores = rfm.rfm_scores(df, AS_OF, window_days=365, quintiles=5)
    expected = frame(
        spark,
        "customer_id string, recency_days int, frequency long, monetary double, r_score int, f_score int, "
        "m_score int, rfm_code string",
        [
            # c1-c3 tie on recency: all share the lowest rank (1), so all score 1.
            ("c1", 5, 1, 30.0, 1, 1, 4, "114"),
            ("c2", 5, 2, 20.0, 1, 2, 2, "122"),
            ("c3", 5, 2, 20.0, 1, 2, 2, "122"),
            ("c4", 1, 3, 10.0, 4, 4, 1, "441"),
            ("c5", 0, 5, 50.0, 5, 5, 5, "555"),
        ],
    )
    cols = expected.columns
    assertDataFrameEqual(scores.select(*cols), expected)
    # Row order does not matter: the same scores from shuffled input.
    shuffled = rfm.rfm_scores(df.orderBy(F.rand(7)).repartition(3), AS_OF, window_days=365, quintiles=5)
    assertDataFrameEqual(shuffled.select(*cols), expected)
    tiers = scores.select(
        "customer_id", rfm.value_tier(F.col("r_score"), F.col("f_score"), F.col("m_score"), CFG.rfm)
    )
    assertDataFrameEqual(
        tiers.toDF("customer_id", "value_tier"),
        frame(
            spark,
            "customer_id string, value_tier string",
            [("c1", "low"), ("c2", "low"), ("c3", "low"), ("c4", "medium"), ("c5", "high")],
        ),
    )


@pytest.mark.parametrize("n", [1, 7, 1000, 2003])
def test_rfm_cut_point_scores_equal_rank_quintiles(spark: SparkSession, n: int) -> None:
    """Scores from cut points equal SQL-RANK quintiles (the definition) computed with
    pandas, on random customers with heavy ties, for sizes that divide by 5 and do not."""
    rng = np.random.default_rng(n)
    per = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "days_ago": rng.integers(0, 40, n),
            "frequency": rng.geometric(0.5, n),
            "amount": rng.choice([9.9, 19.9, 49.5, 100.0, 268.0], n) * rng.integers(1, 4, n),
        }
    )
    orders = [
        (
            r.customer_id,
            f"{r.customer_id}-{k}",
            AS_OF - timedelta(days=int(r.days_ago) + k),
            r.amount / r.frequency,
        )
        for r in per.itertuples()
        for k in range(int(r.frequency))
    ]
    df = frame(spark, "customer_id string, order_id string, order_date date, amount double", orders)
    got = rfm.rfm_scores(df, AS_OF, window_days=365, quintiles=5).toPandas().set_index("customer_id")
    got = got.loc[per["customer_id"]]
    for col, score, asc in (("recency_days", "r", False), ("frequency", "f", True), ("monetary", "m", True)):
        rank = got[col].rank(method="min", ascending=asc)
        expected = (1 + np.floor(5 * (rank - 1) / n)).astype(int)
        assert (got[f"{score}_score"] == expected).all(), col


# --- state, demographics, consent ----------------------------------------------------------------


def test_dormant_boundary_and_churn_risk(spark: SparkSession) -> None:
    rows = frame(
        spark,
        "one_id string, last_interaction_date date, last_purchase_date date",
        [
            ("364 days", date(2025, 4, 1), None),
            ("365 days", date(2025, 3, 31), None),
            ("366 days", date(2025, 3, 30), None),
            ("buyer, 44 days", date(2026, 3, 30), date(2026, 2, 15)),
            ("buyer, 45 days", date(2026, 3, 30), date(2026, 2, 14)),
            ("buyer, 90 days", date(2026, 3, 30), date(2025, 12, 31)),
            ("never seen", None, None),
        ],
    )
    out = attributes.with_state(rows, AS_OF, CFG.state)
    assertDataFrameEqual(
        out.select("one_id", "days_since_interaction", "is_dormant", "churn_risk"),
        frame(
            spark,
            "one_id string, days_since_interaction int, is_dormant boolean, churn_risk string",
            [
                ("364 days", 364, False, "high"),
                ("365 days", 365, True, "high"),
                ("366 days", 366, True, "high"),
                ("buyer, 44 days", 1, False, "low"),
                ("buyer, 45 days", 1, False, "medium"),
                ("buyer, 90 days", 1, False, "high"),
                ("never seen", None, True, "high"),
            ],
        ),
    )


def test_age_bands_and_regions(spark: SparkSession) -> None:
    rows = frame(
        spark,
        "one_id string, mother_birth_date date, province_code string",
        [
            ("24", date(2001, 4, 1), "110000"),
            ("25 today", date(2001, 3, 31), "440000"),
            ("29", date(1996, 4, 1), "510000"),
            ("30", date(1996, 3, 31), "230000"),
            ("40", date(1986, 3, 31), "650000"),
            ("unknown", None, None),
        ],
    )
    regions = {p: r for r, ps in CFG.demographics.regions.items() for p in ps}
    region_map = F.create_map(*[F.lit(x) for kv in regions.items() for x in kv])
    out = rows.select(
        "one_id",
        attributes.age_band(F.col("mother_birth_date"), AS_OF, CFG.demographics).alias("band"),
        region_map[F.substring("province_code", 1, 2)].alias("region"),
    )
    assertDataFrameEqual(
        out,
        frame(
            spark,
            "one_id string, band string, region string",
            [
                ("24", "<25", "north"),
                ("25 today", "25-29", "south"),
                ("29", "25-29", "southwest"),
                ("30", "30-34", "northeast"),
                ("40", "40+", "northwest"),
                ("unknown", None, None),
            ],
        ),
    )


def test_consent_is_the_latest_event_per_purpose(spark: SparkSession) -> None:
    events = frame(
        spark,
        "one_id string, event_id string, purpose string, action string, event_time timestamp",
        [
            ("m1", "e1", "marketing_sms", "grant", datetime(2026, 1, 5, 9)),
            ("m1", "e2", "marketing_sms", "withdraw", datetime(2026, 3, 1, 9)),
            ("m1", "e3", "ad_targeting", "grant", datetime(2026, 2, 1, 9)),
            # Same instant: the larger event id is the later event.
            ("m2", "e4", "marketing_wechat", "withdraw", datetime(2026, 2, 1, 9)),
            ("m2", "e5", "marketing_wechat", "grant", datetime(2026, 2, 1, 9)),
            # After the run date: not yet.
            ("m2", "e6", "marketing_wechat", "withdraw", datetime(2026, 4, 2, 9)),
            ("m3", "e7", "not_a_purpose", "grant", datetime(2026, 2, 1, 9)),
        ],
    )
    assertDataFrameEqual(
        attributes.consent_state(events, AS_OF, CFG.consent_purposes),
        frame(
            spark,
            "one_id string, consent map<string,boolean>",
            [("m1", {"ad_targeting": True, "marketing_sms": False}), ("m2", {"marketing_wechat": True})],
        ),
    )


# --- configuration -----------------------------------------------------------------------------


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "conf" / "profile.yaml").read_text(encoding="utf-8")
    (tmp_path / "profile.yaml").write_text(
        text.replace("dormant_days: 365", "dormant_dayz: 365"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"profile.yaml: unknown key 'state.dormant_dayz'"):
        load_profile(tmp_path)
    (tmp_path / "profile.yaml").write_text(
        text.replace('{name: 1-2y, from: "12m", to: "24m"}', '{name: 1-2y, from: "13m", to: "24m"}'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="must start where"):
        load_profile(tmp_path)
    (tmp_path / "profile.yaml").write_text(text.replace('to: "6m"}', 'to: "6 months"}', 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="expected '<n>m'"):
        load_profile(tmp_path)
    assert isinstance(load_profile(), ProfileConfig)


# --- the whole profile on tiny silver rows ------------------------------------------------------


def test_build_profile_end_to_end(spark: SparkSession) -> None:
    """Three people through every part of the profile: a stated member, an inferred
    non-member buyer and a member with no signal at all. (Times are mid-day so that the
    session time zone, Asia/Shanghai, keeps them on the same date.)"""
    crm = frame(
        spark,
        "one_id string, member_id string, registered_at timestamp, updated_at timestamp, "
        "baby_birth_date date, due_date date, mother_birth_date date, province string, "
        "province_code string, city string, city_code string, city_tier int",
        [
            ("A", "M1", datetime(2025, 1, 5, 9), datetime(2025, 11, 1, 9), date(2025, 10, 20), None,
             date(1994, 6, 1), "浙江省", "330000", "杭州市", "330100", 2),
            ("C", "M3", datetime(2024, 1, 5, 9), datetime(2024, 1, 5, 9), None, None, None, None, None, None,
             None, None),
        ],
    )  # fmt: skip
    hospital = frame(spark, "one_id string, due_date date, signed_up_at timestamp", [])
    pos = frame(
        spark,
        "one_id string, order_no string, line_no int, paid_at timestamp, sku string, amount double, "
        "store_id string",
        [
            ("A", "P1", 1, datetime(2026, 3, 1, 10), "ZH1-800", 338.0, "S1"),
            ("A", "P1", 2, datetime(2026, 3, 1, 10), "DP-NB", 90.0, "S1"),
            ("A", "P2", 1, datetime(2026, 3, 20, 10), "ZH1-800", 676.0, "S1"),
            ("B", "P3", 1, datetime(2026, 3, 25, 11), "XF2-800", 308.0, "S2"),
            ("B", "P4", 1, datetime(2026, 3, 26, 11), "SMP-ZH2", 0.0, "S2"),
        ],
    )
    ecom = frame(
        spark,
        "one_id string, platform string, order_id string, status string, pay_time timestamp, "
        "items array<struct<sku:string,qty:int,price:double>>, receiver_province string, "
        "receiver_province_code string, receiver_city string, receiver_city_code string, "
        "receiver_city_tier int",
        [
            ("B", "jd", "J1", "paid", datetime(2026, 3, 10, 11), [("CF-RICE", 2, 58.0)], "四川省", "510000",
             "绵阳市", "510700", 3),
            ("B", "jd", "J2", "refunded", datetime(2026, 3, 12, 11), [("ZH2-800", 1, 328.0)], "四川省",
             "510000", "绵阳市", "510700", 3),
        ],
    )  # fmt: skip
    wechat = frame(
        spark,
        "one_id string, event string, page string, event_time timestamp",
        [("B", "page_view", "pages/article/weaning", datetime(2026, 3, 28, 11))],
    )
    app = frame(
        spark,
        "one_id string, article_topic string, event_time timestamp",
        [("B", "weaning", datetime(2026, 3, 15, 11))],
    )
    dmp = frame(spark, "one_id string, tag string, score double, tag_date date", [])
    consent = frame(
        spark,
        "one_id string, event_id string, purpose string, action string, event_time timestamp",
        [("A", "E1", "marketing_sms", "grant", datetime(2025, 1, 5, 9))],
    )
    products = frame(
        spark,
        "sku string, category string, stage int, series string",
        [
            ("ZH1-800", "formula", 1, "臻护/Zhenhu"),
            ("ZH2-800", "formula", 2, "臻护/Zhenhu"),
            ("XF2-800", "formula", 2, "星飞/Xingfei"),
            ("SMP-ZH2", "sample", 2, "臻护/Zhenhu"),
            ("DP-NB", "diapers", None, ""),
            ("CF-RICE", "complementary_food", None, ""),
        ],
    )
    members = frame(spark, "one_id string", [("A",), ("B",), ("C",)])
    interactions = {
        "crm_members": crm,
        "pos_orders": pos,
        "ecom_orders": ecom,
        "wechat_events": wechat,
        "app_events": app,
        "hospital_signups": hospital,
        "consent_events": consent,
        "ad_events": frame(spark, "one_id string, event_type string, event_time timestamp", []),
    }
    profile, babies = build_profile(
        CFG,
        AS_OF,
        members=members,
        crm=crm,
        hospital=hospital,
        pos=pos,
        ecom=ecom,
        wechat=wechat,
        app=app,
        dmp=dmp,
        consent=consent,
        products=products,
        interactions=interactions,
        feeds={"pos_orders": pos, "ecom_orders": ecom},
    )
    assert profile.columns == MEMBER_PROFILE.schema.fieldNames()
    cols = [
        "one_id", "is_member", "member_since", "province_code", "city_tier", "region", "mother_age_band",
        "life_stage", "life_stage_source", "has_stated_date", "formula_stage", "next_stage_date",
        "days_to_next_stage", "journey_stage", "member_tier", "first_purchase_date", "last_purchase_date",
        "orders_365d", "spend_365d", "last_interaction_date", "is_dormant", "preferred_channel",
        "preferred_store_id", "consent",
    ]  # fmt: skip
    expected = frame(
        spark,
        "one_id string, is_member boolean, member_since date, province_code string, city_tier int, "
        "region string, mother_age_band string, life_stage string, life_stage_source string, "
        "has_stated_date boolean, "
        "formula_stage int, next_stage_date date, days_to_next_stage int, journey_stage string, "
        "member_tier string, first_purchase_date date, last_purchase_date date, orders_365d long, "
        "spend_365d double, last_interaction_date date, is_dormant boolean, preferred_channel string, "
        "preferred_store_id string, consent map<string,boolean>",
        [
            ("A", True, date(2025, 1, 5), "330000", 2, "east", "30-34", "0-6m", "stated_birth_date", True, 1,
             date(2026, 4, 20), 20, "loyal", "loyal", date(2026, 3, 1), date(2026, 3, 20), 2, 1104.0,
             date(2026, 3, 20), False, "store", "S1", {"marketing_sms": True}),
            ("B", False, None, "510000", 3, "southwest", None, "6-12m", "inferred_interest", False, 2, None,
             None, "trial", "interest", date(2026, 3, 10), date(2026, 3, 25), 2, 424.0, date(2026, 3, 28),
             False, "store", "S2", None),
            # C shows no behaviour: the prior's most common stage (A's 0-6m).
            ("C", True, date(2024, 1, 5), None, None, None, None, "0-6m", "prior", False, 1, None, None,
             "education", "interest", None, None, 0, 0.0, date(2024, 1, 5), True, None, None, None),
        ],
    )  # fmt: skip
    # B, C: next_stage_date depends on the estimated birth date, so B's is checked as a range below.
    got = profile.select(*cols)
    stated_only = F.col("one_id") == "A"
    assertDataFrameEqual(
        got.withColumn("next_stage_date", F.when(stated_only, F.col("next_stage_date"))).withColumn(
            "days_to_next_stage", F.when(stated_only, F.col("days_to_next_stage"))
        ),
        expected,
    )
    # one labelled member (A) is all calibration has here: every confidence is a share of it
    assert {r["life_stage_confidence"] for r in profile.collect()} <= {0.0, 0.98, 1.0}
    b = profile.where(F.col("one_id") == "B").first()
    assert date(2026, 4, 1) <= b["next_stage_date"] <= date(2026, 9, 30)
    assert b["r_score"] is not None and b["value_tier"] != "none"
    assertDataFrameEqual(
        babies.select("one_id", "baby_no", "birth_date", "due_date"),
        frame(
            spark,
            "one_id string, baby_no int, birth_date date, due_date date",
            [("A", 1, date(2025, 10, 20), None)],
        ),
    )


# --- learning from members with a stated date -------------------------------------------------


def test_signal_weights_are_learned_from_stated_members(spark: SparkSession) -> None:
    stated = frame(
        spark,
        "one_id string, youngest_birth date",
        [("s1", date(2026, 1, 1)), ("s2", date(2025, 1, 1)), ("s3", date(2025, 12, 1)), ("s4", None)],
    )
    signals = frame(
        spark,
        SIGNAL_DDL,
        [
            ("s1", "inferred_interest", "newborn_care", date(2026, 3, 20)),  # fits (2.5 months)
            ("s2", "inferred_interest", "newborn_care", date(2026, 3, 20)),  # an older child: 14 months
            ("s3", "inferred_interest", "newborn_care", date(2026, 3, 25)),  # fits (4 months)
            ("x", "inferred_interest", "newborn_care", date(2026, 3, 25)),  # no stated date: not counted
        ],
    )
    intervals = lifestage.signal_intervals(signals, AS_OF, LS)
    weights = lifestage.learn_signal_weights(intervals, stated, AS_OF, LS)
    row = weights.where("signal = 'inferred_interest' and cls = 'newborn_care'").first()
    m = LS.inference.learning.prior_weight
    # 2 of 3 agree, shrunk towards the configured 1 - 0.03 with m pseudo-events.
    agree = (2 + m * 0.97) / (3 + m)
    # 2 of the 3 stated birth dates lie in the newborn window read today (add-one smoothed).
    base = (2 + 1) / (3 + 2)
    assert row["n"] == 3
    assert row["agree"] == pytest.approx(agree)
    assert row["base_rate"] == pytest.approx(base)
    assert row["w_in"] == pytest.approx(math.log(agree) - math.log(base))
    assert row["w_out"] == pytest.approx(math.log(1 - agree) - math.log(1 - base))
    # A class no stated member showed keeps its configured rate.
    unseen = weights.where("signal = 'inferred_interest' and cls = 'weaning'").first()
    assert unseen["n"] == 0 and unseen["agree"] == pytest.approx(0.97)


def test_isotonic_calibration_pools_violations_and_maps_scores(spark: SparkSession) -> None:
    table = fit_isotonic([(0.5, 10, 6), (0.25, 4, 1), (0.75, 10, 5), (1.0, 20, 19), (0.9, 0, 0)])
    # 0.6 then 0.5 falls: the two bins pool to 11/20; an empty bin is dropped.
    assert table == [(0.25, 0.25), (0.5, 0.55), (0.75, 0.55), (1.0, 0.95)]
    scores = frame(
        spark, "k string, share double", [("a", 0.1), ("b", 0.5), ("c", 0.51), ("d", 0.99), ("e", None)]
    )
    assertDataFrameEqual(
        scores.select("k", apply_calibration(F.col("share"), table).alias("confidence")),
        frame(
            spark,
            "k string, confidence double",
            [("a", 0.25), ("b", 0.55), ("c", 0.55), ("d", 0.95), ("e", None)],
        ),
    )
