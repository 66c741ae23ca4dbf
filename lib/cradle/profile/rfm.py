"""RFM on any orders feed: map a table's columns to the order contract, then score.

    >>> orders = feed_orders(superstore, OrdersFeed(table="superstore", customer="`Customer ID`",
    ...     order_id="`Order ID`", order_date="to_date(`Order Date`, 'MM/dd/yyyy')", amount="Sales"))
    >>> scores = rfm_scores(orders, date(2017, 12, 31), window_days=365, quintiles=5)

Scores are quintiles of rank: ``1 + floor(q * (rank - 1) / n)`` where ``rank`` is SQL
``RANK()`` (ties share the lowest rank), so equal values always get the same score and the
result never depends on row order. Recency ranks fewer days higher.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
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


def quantile_score(value: Column, n: Column, quintiles: int, ascending: bool = True) -> Column:
    """Score 1..quintiles by rank; ties share a score. Use over all customers at once."""
    order = value.asc() if ascending else value.desc()
    rank = F.rank().over(Window.orderBy(order))
    return (F.floor(F.lit(quintiles) * (rank - 1) / n) + 1).cast("int")


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
    n = F.count("*").over(Window.partitionBy())
    scored = (
        per.withColumn("_n", n)
        .withColumn("r_score", quantile_score(F.col("recency_days"), F.col("_n"), quintiles, ascending=False))
        .withColumn("f_score", quantile_score(F.col("frequency"), F.col("_n"), quintiles))
        .withColumn("m_score", quantile_score(F.col("monetary"), F.col("_n"), quintiles))
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
