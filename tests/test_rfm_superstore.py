"""RFM on a real orders feed that is not Cradle's: the public Superstore orders
(../shared/external/superstore/, 9,994 order lines of 793 US customers, 2014-2017).

The feed is described only by a column mapping (the same ``OrdersFeed`` conf/profile.yaml
uses for POS and e-commerce). The expected figures are computed independently from the raw
CSV with pandas, not with Cradle's code.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.profile.rfm import feed_orders, rfm_scores
from cradle.profile.settings import OrdersFeed

AS_OF = date(2017, 12, 31)
WINDOW = 365
# Dates are US month/day/year and not zero-padded ("6/12/2016" and "11/08/2016" both occur).
SUPERSTORE = OrdersFeed(
    table="superstore",
    customer="`Customer ID`",
    order_id="`Order ID`",
    order_date="to_date(`Order Date`, 'M/d/yyyy')",
    amount="Sales",
    channel="'online'",
    store_id="Region",
)


@pytest.fixture(scope="module")
def csv_path(shared: Path) -> Path:
    path = shared / "superstore" / "superstore_2014_2017.csv"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def raw(csv_path: Path) -> pd.DataFrame:
    df = pd.read_csv(csv_path, encoding="utf-8-sig", dtype={"Postal Code": str})
    df["date"] = pd.to_datetime(df["Order Date"], format="%m/%d/%Y")
    return df


def read_lines(spark: SparkSession, path: Path) -> DataFrame:
    """The CSV as delivered: RFC 4180 quoting (product names hold quotes doubled as "")."""
    lines = spark.read.option("header", True).option("escape", '"').option("multiLine", True).csv(str(path))
    return lines.withColumn("Sales", F.col("Sales").cast("double"))


@pytest.fixture(scope="module")
def scores(spark: SparkSession, csv_path: Path) -> pd.DataFrame:
    orders = feed_orders(read_lines(spark, csv_path), SUPERSTORE)
    return rfm_scores(orders, AS_OF, WINDOW).toPandas().set_index("customer_id")


def expected_rfm(raw: pd.DataFrame) -> pd.DataFrame:
    """RFM from the raw lines with pandas: orders in (as_of - 365 days, as_of]."""
    as_of = pd.Timestamp(AS_OF)
    window = raw[(raw["date"] <= as_of) & (raw["date"] > as_of - pd.Timedelta(days=WINDOW))]
    per = window.groupby("Customer ID").agg(
        last=("date", "max"), frequency=("Order ID", "nunique"), monetary=("Sales", "sum")
    )
    per["recency_days"] = (as_of - per["last"]).dt.days
    n = len(per)
    # Quintile of rank with ties at the lowest rank (SQL RANK), recency: fewer days ranks higher.
    for col, score, asc in (("recency_days", "r", False), ("frequency", "f", True), ("monetary", "m", True)):
        rank = per[col].round(2).rank(method="min", ascending=asc)
        per[f"{score}_score"] = (1 + np.floor(5 * (rank - 1) / n)).astype(int)
    return per


def test_superstore_customer_by_hand(raw: pd.DataFrame, scores: pd.DataFrame) -> None:
    # Claire Gute (CG-12520): in 2017 a single order, CA-2017-... on 26 Jan 2017, for $18.16.
    cg = raw[(raw["Customer ID"] == "CG-12520") & (raw["date"].dt.year == 2017)]
    assert cg["Order ID"].nunique() == 1
    row = scores.loc["CG-12520"]
    assert row["recency_days"] == (pd.Timestamp(AS_OF) - cg["date"].max()).days == 339
    assert row["frequency"] == 1
    assert row["monetary"] == pytest.approx(round(cg["Sales"].sum(), 2)) == pytest.approx(18.16)
    assert row["first_order_date"] == row["last_order_date"] == date(2017, 1, 26)


def test_superstore_rfm_matches_pandas(raw: pd.DataFrame, scores: pd.DataFrame) -> None:
    expected = expected_rfm(raw)
    assert len(scores) == len(expected) == 693
    joined = scores.join(expected, rsuffix="_pd", how="inner")
    assert len(joined) == len(expected)
    assert (joined["recency_days"] == joined["recency_days_pd"]).all()
    assert (joined["frequency"] == joined["frequency_pd"]).all()
    # Cradle rounds the sum to cents; the raw sum is within half a cent of it.
    assert np.allclose(joined["monetary"], joined["monetary_pd"], rtol=0, atol=0.0051)
    for s in ("r_score", "f_score", "m_score"):
        assert (joined[s] == joined[f"{s}_pd"]).all(), s


def test_superstore_score_distribution(spark: SparkSession, scores: pd.DataFrame) -> None:
    # Monetary has almost no ties: about a fifth of the 693 customers per score.
    m = scores["m_score"].value_counts().sort_index()
    assert list(m.index) == [1, 2, 3, 4, 5]
    assert m.max() - m.min() <= 2
    # Frequency has heavy ties (most customers ordered 1-3 times in a year): tied customers
    # share one score, so some scores are never given and the bins are uneven.
    f = scores.groupby("frequency")["f_score"].nunique()
    assert (f == 1).all()
    assert scores["f_score"].value_counts().max() > len(scores) / 5
    # The best customers by every measure get 555.
    top = scores[(scores["r_score"] == 5) & (scores["f_score"] == 5) & (scores["m_score"] == 5)]
    assert (top["rfm_code"] == "555").all() and len(top) > 0


def test_superstore_scores_do_not_depend_on_row_order(spark: SparkSession, csv_path: Path) -> None:
    lines = read_lines(spark, csv_path)

    def run(rows: DataFrame) -> DataFrame:
        return rfm_scores(feed_orders(rows, SUPERSTORE), AS_OF, WINDOW)

    assertDataFrameEqual(run(lines.orderBy(F.rand(1)).repartition(4)), run(lines.orderBy(F.rand(2))))
