"""The profile stage: ``cradle run profile --run-date D``.

Reads silver (attached to one_id through the current identity_map) and writes, as of the
run date, ``cradle_gold.member_profile`` (one row per current one_id) and the restricted
``cradle_gold.member_babies``. Both are rewritten whole each run, so a re-run for the
same date changes nothing.
"""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle import sqlguard
from cradle.catalog import IDENTITY_MAP, MEMBER_BABIES, MEMBER_PROFILE, Table, silver_tables
from cradle.identity.graph import source_key
from cradle.profile import attributes, journey, lifestage, rfm, signals
from cradle.profile.settings import ProfileConfig, load_profile
from cradle.runs import Job
from cradle.sources import load_sources

log = logging.getLogger(__name__)


def with_one_id(rows: DataFrame, source: str, table: Table, current_map: DataFrame) -> DataFrame:
    """``rows`` of silver ``table`` with their current one_id (rows identity has not seen are dropped)."""
    ids = current_map.where(F.col("source") == F.lit(source)).select("source_key", "one_id")
    return rows.withColumn("source_key", source_key(table.keys)).join(ids, on="source_key", how="inner")


def run(job: Job) -> None:
    cfg = load_profile()
    as_of = job.ctx.run_date
    lake = job.lake
    tables = silver_tables(load_sources().sources)
    current_map = lake.read(IDENTITY_MAP).where(F.col("valid_to").isNull()).localCheckpoint()
    job.run.read(IDENTITY_MAP, current_map.count())

    # Each silver table is joined to the identity map once per run and shared by every
    # part of the profile that reads it (life stage, journey, RFM feeds, interactions):
    # persisted on first use, released when the profile is written.
    joined: dict[str, DataFrame] = {}

    def silver(name: str, keyed: bool = True) -> DataFrame:
        if name not in joined:
            rows = lake.read(tables[name])
            if "event_date" in rows.columns:
                rows = rows.where(F.col("event_date") <= F.lit(as_of))
            joined[name] = (with_one_id(rows, name, tables[name], current_map) if keyed else rows).persist()
        return joined[name]

    members = current_map.select("one_id").distinct()
    profile, babies = build_profile(
        cfg,
        as_of,
        members=members,
        crm=silver("crm_members"),
        hospital=silver("hospital_signups"),
        pos=silver("pos_orders"),
        ecom=silver("ecom_orders"),
        wechat=silver("wechat_events"),
        app=silver("app_events"),
        dmp=silver("dmp_tags"),
        consent=silver("consent_events"),
        products=silver("products", keyed=False),
        interactions={i.table: silver(i.table) for i in cfg.state.interactions},
        feeds={f.table: silver(f.table) for f in cfg.orders},
    )
    profile = profile.localCheckpoint()
    counts = profile.groupBy("life_stage_source").count().collect()
    for row in counts:
        job.run.detail(f"life_stage_source.{row['life_stage_source']}", row["count"])
    for rows in joined.values():
        rows.unpersist()
    job.run.wrote(lake.overwrite(MEMBER_BABIES, babies))
    job.run.wrote(lake.overwrite(MEMBER_PROFILE, profile))
    log.info("profile %s: %d members", as_of, sum(r["count"] for r in counts))


def build_profile(
    cfg: ProfileConfig,
    as_of: date,
    *,
    members: DataFrame,
    crm: DataFrame,
    hospital: DataFrame,
    pos: DataFrame,
    ecom: DataFrame,
    wechat: DataFrame,
    app: DataFrame,
    dmp: DataFrame,
    consent: DataFrame,
    products: DataFrame,
    interactions: dict[str, DataFrame],
    feeds: dict[str, DataFrame],
) -> tuple[DataFrame, DataFrame]:
    """(member_profile rows, member_babies rows) from one_id-keyed silver frames; no I/O."""
    ls = cfg.life_stage
    day = F.lit(as_of)

    # Life stage: stated dates first, behaviour where they are missing or stale.
    babies = lifestage.stated_babies(crm, hospital, as_of, ls).localCheckpoint()
    stated = lifestage.stated_life_stage(babies, as_of, ls)
    lines = signals.order_lines(pos, ecom, products).localCheckpoint()
    dmp_spec = next((s for s in ls.inference.signals if s.kind == "dmp_tag"), None)
    obs = signals.observations(
        lines, wechat, app, dmp, hospital, products, cfg.journey, dmp_spec.min_score if dmp_spec else None
    )
    prior = lifestage.stage_prior(stated, as_of, ls) if ls.inference.prior.from_stated else None
    inferred = lifestage.infer_life_stage(
        signals.life_stage_signals(obs, ls), as_of, ls, prior, stated=stated, members=members
    )
    life = lifestage.with_formula_stage(lifestage.combine_life_stage(stated, inferred, ls), as_of, ls)

    # Journey and tier.
    journeys = journey.journey_stage(
        members,
        signals.formula_orders(lines, cfg.journey),
        signals.trials(lines, wechat, cfg.journey),
        as_of,
        cfg.journey,
    )

    # Value: RFM over every configured orders feed.
    orders = None
    for feed in cfg.orders:
        part = rfm.feed_orders(feeds[feed.table], feed)
        orders = part if orders is None else orders.unionByName(part)
    assert orders is not None
    orders = (
        orders.where(F.col("order_date") <= day).withColumnRenamed("customer_id", "one_id").localCheckpoint()
    )
    scores = rfm.rfm_scores(orders.withColumnRenamed("one_id", "customer_id"), as_of, cfg.rfm.window_days)
    scores = scores.withColumnRenamed("customer_id", "one_id")
    ever = orders.groupBy("one_id").agg(
        F.min("order_date").alias("first_purchase_date"), F.max("order_date").alias("last_purchase_date")
    )
    recent = orders.where(F.col("order_date") > F.date_sub(day, cfg.rfm.window_days))
    prefs = attributes.preferences(recent)

    # Who they are, where they live, consent.
    member_rows = attributes.membership(crm, as_of)
    geo = attributes.receiver_geography(ecom)
    consent_map = attributes.consent_state(consent, as_of, cfg.consent_purposes)

    events = None
    for spec in cfg.state.interactions:
        rows = interactions[spec.table]
        origin = f"profile.yaml: interaction {spec.table!r}"
        if spec.where:
            rows = rows.where(sqlguard.expression(rows.sparkSession, spec.where, f"{origin}, where"))
        date_col = sqlguard.expression(rows.sparkSession, spec.date, f"{origin}, date")
        part = rows.select("one_id", date_col.cast("date").alias("event_date"))
        events = part if events is None else events.unionByName(part)
    assert events is not None
    last_seen = attributes.last_interactions(events, as_of)

    profile = (
        members.join(member_rows, on="one_id", how="left")
        .join(geo, on="one_id", how="left")
        .join(life, on="one_id", how="left")
        .join(journeys, on="one_id", how="left")
        .join(scores, on="one_id", how="left")
        .join(ever, on="one_id", how="left")
        .join(prefs, on="one_id", how="left")
        .join(last_seen, on="one_id", how="left")
        .join(consent_map, on="one_id", how="left")
    )
    profile = attributes.with_geography(profile, cfg.demographics)
    profile = attributes.with_state(profile, as_of, cfg.state)
    profile = profile.select(
        "one_id",
        day.alias("as_of"),
        F.coalesce("is_member", F.lit(False)).alias("is_member"),
        "member_since",
        *attributes.GEO_COLUMNS,
        "region",
        attributes.age_band(F.col("mother_birth_date"), as_of, cfg.demographics).alias("mother_age_band"),
        "life_stage",
        "life_stage_source",
        "life_stage_confidence",
        F.coalesce("has_stated_date", F.lit(False)).alias("has_stated_date"),
        "formula_stage",
        "next_stage_date",
        "days_to_next_stage",
        "journey_stage",
        "member_tier",
        "first_purchase_date",
        "last_purchase_date",
        F.coalesce("frequency", F.lit(0)).cast("long").alias("orders_365d"),
        F.coalesce("monetary", F.lit(0.0)).alias("spend_365d"),
        "r_score",
        "f_score",
        "m_score",
        "rfm_code",
        rfm.value_tier(F.col("r_score"), F.col("f_score"), F.col("m_score"), cfg.rfm).alias("value_tier"),
        "last_interaction_date",
        "days_since_interaction",
        "is_dormant",
        "churn_risk",
        "preferred_channel",
        "preferred_store_id",
        "consent",
    )
    return profile, babies
