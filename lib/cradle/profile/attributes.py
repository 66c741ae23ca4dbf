"""Profile attributes other than life stage and journey: where a member lives, the
mother's age band, membership, last interaction and dormancy, churn risk, preferred
channel and store, and consent per purpose. Pure transforms over one_id-keyed rows.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cradle.profile.settings import Demographics, StateRules

GEO_COLUMNS = ("province", "province_code", "city", "city_code", "city_tier")


def membership(crm: DataFrame, as_of: date) -> DataFrame:
    """(one_id, is_member, member_since, mother_birth_date, geography...) from CRM rows.

    ``crm``: one_id, registered_at, updated_at, member_id, mother_birth_date and the geo
    columns. A person with several member records (re-registration) is a member since the
    first; the latest updated record gives where she lives; the latest stated mother's
    birth date is kept (never shown: only its band reaches the profile).
    """
    current = crm.where(F.to_date("registered_at") <= F.lit(as_of))
    latest = F.struct(F.col("updated_at"), F.col("member_id"))
    return current.groupBy("one_id").agg(
        F.lit(True).alias("is_member"),
        F.to_date(F.min("registered_at")).alias("member_since"),
        F.max_by("mother_birth_date", F.when(F.col("mother_birth_date").isNotNull(), latest)).alias(
            "mother_birth_date"
        ),
        *[
            F.max_by(c, F.when(F.col("province_code").isNotNull(), latest)).alias(f"crm_{c}")
            for c in GEO_COLUMNS
        ],
    )


def receiver_geography(ecom: DataFrame) -> DataFrame:
    """(one_id, ecom_<geo>...) from the latest e-commerce order with a recognised province."""
    latest = F.struct(F.col("pay_time"), F.col("order_id"))
    ok = ecom.where(F.col("receiver_province_code").isNotNull())
    return ok.groupBy("one_id").agg(
        *[F.max_by(f"receiver_{c}", latest).alias(f"ecom_{c}") for c in GEO_COLUMNS]
    )


def with_geography(profile: DataFrame, demographics: Demographics) -> DataFrame:
    """Province/city from the CRM, else from e-commerce receivers; region from the province code."""
    regions = {p: region for region, prefixes in demographics.regions.items() for p in prefixes}
    region_map = F.create_map(*[F.lit(x) for kv in sorted(regions.items()) for x in kv])
    from_crm = F.col("crm_province_code").isNotNull()
    out = profile
    for c in GEO_COLUMNS:
        out = out.withColumn(c, F.when(from_crm, F.col(f"crm_{c}")).otherwise(F.col(f"ecom_{c}")))
    return out.withColumn("region", region_map[F.substring("province_code", 1, 2)])


def age_band(birth: Column, as_of: date, demographics: Demographics) -> Column:
    """The band of the whole years between ``birth`` and ``as_of`` (null when unknown)."""
    years = F.floor(F.months_between(F.lit(as_of), birth) / 12)
    out = None
    for band in demographics.age_bands:
        cond = F.lit(True)
        if band.from_ is not None:
            cond = cond & (years >= band.from_)
        if band.to is not None:
            cond = cond & (years < band.to)
        out = F.when(cond, F.lit(band.name)) if out is None else out.when(cond, F.lit(band.name))
    return F.when(birth.isNull(), F.lit(None).cast("string")).otherwise(out)


def last_interactions(events: DataFrame, as_of: date) -> DataFrame:
    """(one_id, last_interaction_date) from (one_id, event_date) rows on or before ``as_of``."""
    return (
        events.where(F.col("event_date") <= F.lit(as_of))
        .groupBy("one_id")
        .agg(F.max("event_date").alias("last_interaction_date"))
    )


def with_state(profile: DataFrame, as_of: date, rules: StateRules) -> DataFrame:
    """days_since_interaction, is_dormant and churn_risk.

    Dormant: no interaction for at least ``dormant_days`` (exactly 365 days is dormant).
    Churn risk: days since the last purchase (the last interaction for a member who
    never bought) against the medium/high thresholds. No interaction at all is dormant
    and high risk.
    """
    day = F.lit(as_of)
    since = F.datediff(day, F.col("last_interaction_date"))
    basis = F.datediff(day, F.coalesce(F.col("last_purchase_date"), F.col("last_interaction_date")))
    c = rules.churn_risk
    risk = (
        F.when(basis.isNull() | (basis >= c.high_after_days), F.lit("high"))
        .when(basis >= c.medium_after_days, F.lit("medium"))
        .otherwise(F.lit("low"))
    )
    return (
        profile.withColumn("days_since_interaction", since)
        .withColumn("is_dormant", F.coalesce(since >= rules.dormant_days, F.lit(True)))
        .withColumn("churn_risk", risk)
    )


def preferences(orders: DataFrame) -> DataFrame:
    """(one_id, preferred_channel, preferred_store_id): most orders; ties by latest order, then name.

    ``orders``: one_id, order_id, order_date, channel, store_id (already windowed).
    """

    def favourite(key: str) -> DataFrame:
        counts = (
            orders.where(F.col(key).isNotNull())
            .groupBy("one_id", key)
            .agg(F.countDistinct("order_id").alias("n"), F.max("order_date").alias("last"))
        )
        w = Window.partitionBy("one_id").orderBy(F.col("n").desc(), F.col("last").desc(), F.col(key))
        return counts.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1).select("one_id", key)

    channel = favourite("channel").withColumnRenamed("channel", "preferred_channel")
    store = favourite("store_id").withColumnRenamed("store_id", "preferred_store_id")
    return channel.join(store, on="one_id", how="full")


def consent_state(events: DataFrame, as_of: date, purposes: tuple[str, ...]) -> DataFrame:
    """(one_id, consent): purpose -> currently granted, from the latest event per purpose.

    Events at the same instant are ordered by event id, so the result is deterministic.
    Purposes with no event are absent from the map (unknown, which is not consent).
    """
    latest = (
        events.where(F.to_date("event_time") <= F.lit(as_of))
        .where(F.col("purpose").isin(*purposes))
        .groupBy("one_id", "purpose")
        .agg(F.max_by("action", F.struct("event_time", "event_id")).alias("action"))
    )
    return latest.groupBy("one_id").agg(
        F.map_from_entries(
            F.array_sort(F.collect_list(F.struct(F.col("purpose"), F.col("action") == F.lit("grant"))))
        ).alias("consent")
    )
