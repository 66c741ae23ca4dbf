"""Behaviour observations for the life-stage engine and the journey, from one_id-keyed silver rows.

Each builder is a pure transform; the stage attaches one_id and hands the frames in.
Observations are (one_id, kind, cls, event_date): ``kind`` matches a signal's ``kind`` in
conf/profile.yaml and ``cls`` one of its classes (a formula stage, an article topic, a DMP
tag, a SKU or category). Classes no signal declares are dropped when the signals are built.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.profile.settings import JourneyRules, LifeStageRules


def order_lines(pos: DataFrame, ecom: DataFrame, products: DataFrame) -> DataFrame:
    """(one_id, order_id, channel, order_date, sku, amount, category, stage, series) for every
    POS line and every item of a paid e-commerce order, with the product's attributes."""
    store = pos.select(
        "one_id",
        F.concat(F.lit("pos:"), F.col("order_no")).alias("order_id"),
        F.lit("store").alias("channel"),
        F.to_date("paid_at").alias("order_date"),
        "sku",
        F.col("amount").cast("double").alias("amount"),
    )
    online = (
        ecom.where(F.col("status") == F.lit("paid"))
        .select(
            "one_id",
            F.concat(F.lit("ecom:"), F.col("platform"), F.lit(":"), F.col("order_id")).alias("order_id"),
            F.lit("ecom").alias("channel"),
            F.to_date("pay_time").alias("order_date"),
            F.explode("items").alias("i"),
        )
        .select(
            "one_id",
            "order_id",
            "channel",
            "order_date",
            F.col("i.sku").alias("sku"),
            (F.col("i.qty") * F.col("i.price")).cast("double").alias("amount"),
        )
    )
    catalogue = products.select("sku", "category", F.col("stage").cast("int").alias("stage"), "series")
    return store.unionByName(online).join(F.broadcast(catalogue), on="sku", how="left")


def observations(
    lines: DataFrame,
    wechat: DataFrame,
    app: DataFrame,
    dmp: DataFrame,
    hospital: DataFrame,
    products: DataFrame,
    journey: JourneyRules,
    dmp_min_score: float | None,
) -> DataFrame:
    """(one_id, kind, cls, event_date) behaviour observations for life-stage inference."""
    paid = lines.where(F.col("amount") > 0)
    formula = paid.where(
        F.col("category").isin(*journey.formula_categories) & F.col("stage").isNotNull()
    ).select(
        "one_id", F.lit("formula").alias("kind"), F.col("stage").cast("string").alias("cls"), "order_date"
    )
    wechat_samples = sample_claims(wechat, journey).join(
        F.broadcast(products.select("sku", F.col("stage").cast("string").alias("cls"))), on="sku", how="inner"
    )
    samples = (
        lines.where(F.col("category").isin(*journey.sample_categories) & F.col("stage").isNotNull())
        .select("one_id", F.col("stage").cast("string").alias("cls"), "order_date")
        .unionByName(wechat_samples.select("one_id", "cls", F.col("event_date").alias("order_date")))
        .select("one_id", F.lit("sample").alias("kind"), "cls", "order_date")
    )
    by_sku = paid.select(
        "one_id", F.lit("category_sku").alias("kind"), F.col("sku").alias("cls"), "order_date"
    )
    by_category = paid.select(
        "one_id", F.lit("category_sku").alias("kind"), F.col("category").alias("cls"), "order_date"
    )
    topics = app.where(F.col("article_topic").isNotNull()).select(
        "one_id", F.col("article_topic").alias("cls"), F.to_date("event_time").alias("order_date")
    )
    pages = wechat.where(F.col("page").startswith("pages/article/")).select(
        "one_id",
        F.regexp_extract("page", r"^pages/article/(.+)$", 1).alias("cls"),
        F.to_date("event_time").alias("order_date"),
    )
    articles = topics.unionByName(pages).select(
        "one_id", F.lit("article_topic").alias("kind"), "cls", "order_date"
    )
    tags = dmp if dmp_min_score is None else dmp.where(F.col("score") >= dmp_min_score)
    dmp_obs = tags.select(
        "one_id", F.lit("dmp_tag").alias("kind"), F.col("tag").alias("cls"), F.col("tag_date")
    )
    signups = hospital.select(
        "one_id", F.lit("hospital").alias("kind"), F.lit("signup").alias("cls"), F.to_date("signed_up_at")
    )
    parts = [formula, samples, by_sku, by_category, articles, dmp_obs, signups]
    out = parts[0].toDF("one_id", "kind", "cls", "event_date")
    for part in parts[1:]:
        out = out.unionByName(part.toDF("one_id", "kind", "cls", "event_date"))
    return out.where(F.col("cls").isNotNull() & F.col("event_date").isNotNull())


def life_stage_signals(obs: DataFrame, rules: LifeStageRules) -> DataFrame:
    """(one_id, signal, cls, event_date): observations routed to every signal of their kind."""
    spark = obs.sparkSession
    kinds = spark.createDataFrame(
        [(s.name, s.kind) for s in rules.inference.signals], "signal string, kind string"
    )
    return obs.join(F.broadcast(kinds), on="kind", how="inner").select(
        "one_id", "signal", "cls", "event_date"
    )


def sample_claims(wechat: DataFrame, journey: JourneyRules) -> DataFrame:
    """(one_id, sku, event_date) of WeChat sample claims (the page names the SKU)."""
    return wechat.where(F.col("event").isin(*journey.sample_events)).select(
        "one_id",
        F.regexp_extract("page", r"([^/]+)$", 1).alias("sku"),
        F.to_date("event_time").alias("event_date"),
    )


def formula_orders(lines: DataFrame, journey: JourneyRules) -> DataFrame:
    """(one_id, order_id, order_date, is_own): paid formula orders per brand (own or not).

    An order holding both the brand's and a competitor's formula is one row per brand.
    """
    return (
        lines.where((F.col("amount") > 0) & F.col("category").isin(*journey.formula_categories))
        .select("one_id", "order_id", "order_date", F.col("series").isin(*journey.own_series).alias("is_own"))
        .distinct()
    )


def trials(lines: DataFrame, wechat: DataFrame, journey: JourneyRules) -> DataFrame:
    """(one_id, event_date) of samples and trial packs: sample lines and WeChat sample claims."""
    picked = lines.where(F.col("category").isin(*journey.sample_categories)).select(
        "one_id", F.col("order_date").alias("event_date")
    )
    return picked.unionByName(sample_claims(wechat, journey).select("one_id", "event_date"))
