"""`cradle demo`: generate a brand's data, run the pipeline on it, and show what it produced.

Steps (each printed as it runs): doctor; generate (skipped when ``landing/`` already holds
the same demo dataset); ingest in a catch-up run for all days but the last, then the last
day as a daily run; then the catalogue with row counts, ingestion accounting, quarantine
reasons, data health and the evaluators' results.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cradle.config import EnvConfig

log = logging.getLogger(__name__)

DEMO_MEMBERS, DEMO_DAYS, DEMO_START, DEMO_SEED = 3000, 90, date(2026, 1, 1), 7


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def demo_data_present(landing: Path) -> bool:
    """The landing folder holds the demo dataset made with today's generator settings."""
    from cradle.generate.settings import load_settings

    manifest = landing / "_truth" / "manifest.json"
    if not manifest.is_file():
        return False
    made = json.loads(manifest.read_text(encoding="utf-8"))
    wanted = {"members": DEMO_MEMBERS, "days": DEMO_DAYS, "start": DEMO_START.isoformat(), "seed": DEMO_SEED}
    same_run = all(str(made.get(k)) == str(v) for k, v in wanted.items())
    return same_run and made.get("settings") == load_settings().model_dump(mode="json")


def run_demo(env: EnvConfig, args: argparse.Namespace) -> int:
    from cradle.doctor import report
    from cradle.generate.cli import run_generate
    from cradle.pipeline import make_context, run_stages
    from cradle.spark import build_spark

    landing = Path(env.landing_root)
    reuse = demo_data_present(landing)
    if not reuse:  # before any Spark session opens the lake's metastore
        set_aside_old_lake(Path(env.lake_root))

    banner("1. doctor")
    if report(env) != 0:
        return 1

    banner(f"2. generate {DEMO_MEMBERS} members x {DEMO_DAYS} days into {landing}")
    if reuse:
        print("demo data already generated (same members, days, start, seed and settings): reusing it")
    else:
        gen_args = argparse.Namespace(
            members=DEMO_MEMBERS,
            days=DEMO_DAYS,
            start=DEMO_START,
            seed=DEMO_SEED,
            out=str(landing),
            config=None,
            workers=1,
        )
        if run_generate(gen_args, env) != 0:
            return 1

    spark = build_spark(env, app_name="cradle-demo")
    last_day = DEMO_START + timedelta(days=DEMO_DAYS - 1)
    stages = ["ingest", *[s for s in available_stages() if s != "ingest"]]
    catch_up = last_day - timedelta(days=1)
    banner(f"3. run {', '.join(stages)}: catch-up to {catch_up}, then {last_day} as a daily run")
    for day in (catch_up, last_day):
        t0 = time.monotonic()
        run_stages(spark, env, stages, make_context(env, day, None))
        print(f"run date {day}: {time.monotonic() - t0:.0f} s")

    banner("4. what it produced")
    show(spark, env)
    return 0


def set_aside_old_lake(lake: Path) -> None:
    """A lake built from an earlier dataset would mix with the new one (its manifest has
    seen files of the same names); move it aside rather than delete anything."""
    if lake.is_dir() and any(lake.iterdir()):
        aside = lake.with_name(f"{lake.name}.previous-{time.strftime('%Y%m%d%H%M%S')}")
        lake.rename(aside)
        print(f"the lake at {lake} was built from other data: moved it to {aside}")


def available_stages() -> list[str]:
    from cradle.pipeline import STAGES

    return [s.name for s in STAGES]


def show(spark: SparkSession, env: EnvConfig) -> None:
    from cradle.catalog import INGEST_MANIFEST, JOB_RUNS, QUARANTINE, all_tables, silver_tables
    from cradle.evals import EVALUATORS, evaluate
    from cradle.lake import Lake
    from cradle.sources import load_sources

    lake = Lake(spark, env.lake_root)
    sources = load_sources().sources
    tables = all_tables(sources)
    print("Tables (rows):")
    for name in sorted(tables):
        if lake.exists(tables[name]):
            print(f"  {name:<40} {lake.read(tables[name]).count():>10,}")
    print("\nLanding files by status:")
    lake.read(INGEST_MANIFEST).groupBy("source").pivot("status").count().orderBy("source").show(20, False)
    print("Top quarantine reasons:")
    reason = F.regexp_replace(F.regexp_replace("reason", r": '.*'$", ""), r" at column \d+$", "")
    lake.read(QUARANTINE).groupBy("source", reason.alias("reason")).count().orderBy(F.desc("count")).show(
        12, False
    )
    print("Sample of silver POS orders (mobiles only as tokens, ciphertext and masks):")
    pos = silver_tables(sources)["pos_orders"]
    lake.read(pos).select(
        "order_no",
        "store_id",
        "mobile_masked",
        "mobile_status",
        F.substring("mobile_token", 1, 16).alias("token…"),
        "sku",
        "qty",
        "amount",
        "event_date",
    ).orderBy("order_no").show(5, False)
    print("Recent job runs:")
    lake.read(JOB_RUNS).orderBy(F.desc("started_at")).select(
        "job", "run_date", "status", "duration_s", "error"
    ).show(8, False)
    show_profiles(lake)
    for what in ("ingest", "identity", "lifestage"):
        if what in EVALUATORS:
            banner(f"cradle eval {what}")
            print(json.dumps(evaluate(what, env, argparse.Namespace(data=None)), indent=2, default=str))


def show_profiles(lake) -> None:  # lake: cradle.lake.Lake
    from cradle.catalog import MEMBER_PROFILE, MEMBER_TAGS, SEGMENT_SIZES

    if not lake.exists(MEMBER_PROFILE):
        return
    profile = lake.read(MEMBER_PROFILE).where(F.col("is_member"))
    print("Members by life stage and journey stage (cradle_gold.member_profile):")
    profile.groupBy("life_stage").pivot("journey_stage").count().orderBy("life_stage").show(12, False)
    print("Members by value tier and churn risk:")
    profile.groupBy("value_tier").pivot("churn_risk").count().orderBy("value_tier").show(6, False)
    if lake.exists(MEMBER_TAGS):
        print("Tags held now (cradle_gold.member_tags, open rows), top 15:")
        lake.read(MEMBER_TAGS).where(F.col("valid_to").isNull()).groupBy("tag", "category").agg(
            F.countDistinct("one_id").alias("people")
        ).orderBy(F.desc("people")).show(15, False)
    if lake.exists(SEGMENT_SIZES):
        sizes = lake.read(SEGMENT_SIZES)
        last = sizes.agg(F.max("as_of")).first()[0]
        print(f"Segment sizes on {last} (cradle_gold.segment_sizes):")
        sizes.where(F.col("as_of") == F.lit(last)).select("segment", "members").orderBy("segment").show(
            30, False
        )
