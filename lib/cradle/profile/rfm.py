"""RFM on any orders feed: map a table's columns to the order contract, then score.

    >>> orders = feed_orders(superstore, OrdersFeed(table="superstore", customer="`Customer ID`",
    ...     order_id="`Order ID`", order_date="to_date(`Order Date`, 'MM/dd/yyyy')", amount="Sales"))
    >>> scores = rfm_scores(orders, date(2017, 12, 31), window_days=365, quintiles=5)

Scores are quintiles of rank: ``1 + floor(q * (rank - 1) / n)`` where ``rank`` is SQL
``RANK()`` (ties share the lowest rank), so equal values always get the same score and the
result never depends on row order. Recency ranks fewer days higher.

They are computed without ranking, which would need every customer in one partition: the
score is one plus the number of cut points a value exceeds, where cut point ``s`` is the
value at sorted position ``ceil(s * n / q)`` (1-based). That is the same score (a value's
rank exceeds ``s * n / q`` exactly when it is above the value at that position), and the
``q - 1`` cut points come from one distributed aggregate (``percentile_approx``, whose
summary is exact while it holds fewer than ``CUT_ACCURACY / 2`` customers and within
``n / CUT_ACCURACY`` positions beyond). The one-row result is broadcast to score.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cradle import sqlguard
from cradle.profile.settings import OrdersFeed, RfmRules

ORDER_COLUMNS = ("customer_id", "order_id", "order_date", "amount", "channel", "store_id")


def feed_orders(rows: DataFrame, feed: OrdersFeed) -> DataFrame:
    """One row per order (customer_id, order_id, order_date, amount, channel, store_id).

    Lines of one order (same customer and order id) are summed; the order's date is its
    earliest line's. Rows with no customer, order id or date are dropped.
    """
    spark = rows.sparkSession

    def mapping(key: str) -> Column:  # user SQL: checked by sqlguard before it is used
        origin = f"profile.yaml: orders feed {feed.table!r}, {key}"
        return sqlguard.expression(spark, getattr(feed, key), origin)

    if feed.where:
        rows = rows.where(mapping("where"))
    mapped = rows.select(
        mapping("customer").cast("string").alias("customer_id"),
        mapping("order_id").cast("string").alias("order_id"),
        mapping("order_date").cast("date").alias("order_date"),
        mapping("amount").cast("double").alias("amount"),
        mapping("channel").cast("string").alias("channel"),
        mapping("store_id").cast("string").alias("store_id"),
    ).where(
        F.col("customer_id").isNotNull() & F.col("order_id").isNotNull() & F.col("order_date").isNotNull()
    )
    return mapped.groupBy("customer_id", "order_id").agg(
        F.min("order_date").alias("order_date"),
        F.sum("amount").alias("amount"),
        F.min("channel").alias("channel"),
        F.min("store_id").alias("store_id"),
    )


CUT_ACCURACY = 1_000_000  # percentile_approx accuracy: relative rank error 1e-6
# Cut percentages sit just below s/q so that float rounding of (s/q)*n can never push an
# exact position up by one; the shift is far smaller than the 1/q gap between positions.
CUT_SHIFT = 1e-10


def cut_points(value: Column, quintiles: int) -> Column:
    """Aggregate: the ``quintiles - 1`` cut points of ``value`` (an array, ascending)."""
    percentages = [s / quintiles - CUT_SHIFT for s in range(1, quintiles)]
    return F.percentile_approx(value, percentages, CUT_ACCURACY)


def quantile_score(value: Column, cuts: Column) -> Column:
    """Score 1..len(cuts)+1: one plus the number of cut points ``value`` is above."""
    return (F.size(F.filter(cuts, lambda c: value > c)) + 1).cast("int")


def rfm_scores(orders: DataFrame, as_of: date, window_days: int, quintiles: int = 5) -> DataFrame:
    """(customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_code,
    first_order_date, last_order_date) for customers with an order in (as_of - window, as_of].

    ``orders`` has the order contract columns (see :func:`feed_orders`).
    """
    day = F.lit(as_of)
    window = orders.where((F.col("order_date") <= day) & (F.col("order_date") > F.date_sub(day, window_days)))
    per = window.groupBy("customer_id").agg(
        F.datediff(day, F.max("order_date")).alias("recency_days"),
        F.countDistinct("order_id").cast("long").alias("frequency"),
        F.round(F.sum("amount"), 2).alias("monetary"),
        F.min("order_date").alias("first_order_date"),
        F.max("order_date").alias("last_order_date"),
    )
    # Recency ranks fewer days higher: its cut points are over the negated days.
    cuts = per.agg(
        cut_points(-F.col("recency_days"), quintiles).alias("_r_cuts"),
        cut_points(F.col("frequency"), quintiles).alias("_f_cuts"),
        cut_points(F.col("monetary"), quintiles).alias("_m_cuts"),
    )
    scored = (
        per.crossJoin(F.broadcast(cuts))
        .withColumn("r_score", quantile_score(-F.col("recency_days"), F.col("_r_cuts")))
        .withColumn("f_score", quantile_score(F.col("frequency"), F.col("_f_cuts")))
        .withColumn("m_score", quantile_score(F.col("monetary"), F.col("_m_cuts")))
    )
    return scored.select(
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "r_score",
        "f_score",
        "m_score",
        F.concat(
            F.col("r_score").cast("string"), F.col("f_score").cast("string"), F.col("m_score").cast("string")
        ).alias("rfm_code"),
        "first_order_date",
        "last_order_date",
    )


def value_tier(r: Column, f: Column, m: Column, rules: RfmRules) -> Column:
    """high / medium / low by R + F + M; none without scores (no order in the window)."""
    total = r + f + m
    t = rules.value_tiers
    return (
        F.when(r.isNull(), F.lit("none"))
        .when(total >= t["high"], F.lit("high"))
        .when(total >= t["medium"], F.lit("medium"))
        .otherwise(F.lit("low"))
    )
