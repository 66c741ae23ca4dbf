"""Benchmark profile, RFM and five representative tags against DuckDB on the same silver data.

    .venv/bin/python -m bench.bench_profile --members 3000 --days 30 --work /tmp/cradle-bench-profile

Steps, in one process (Spark local[2], DuckDB with 2 threads):

1. ``cradle generate`` (unless ``--skip-generate``), then ingest every delivery and resolve
   identity, one run each (unless ``--skip-pipeline``: the lake in ``--work`` is reused);
2. Spark: the profile stage, timed from ``job_runs`` (it computes far more than RFM: life
   stage, journey, state, consent); then the comparable part alone, as the stages run it:
   RFM over the configured orders feeds and five tag rules over silver x identity (each
   join shared, as in the tags stage), materialised;
3. the silver tables these read and the current identity map are exported to Parquet (not
   timed);
4. DuckDB reads those files and computes the same numbers: RFM as SQL ``RANK()`` quintiles
   (an independent implementation of the definition in ``cradle.profile.rfm``) and the
   five tag rules from ``conf/tags.yaml``, their SQL text unchanged but for table names;
5. the outputs are compared: RFM per one_id (frequency, monetary to the cent, r/f/m scores)
   from Spark, from the profile table and from DuckDB; tags as (tag, one_id, value) sets.

Prints the times, the Spark/DuckDB ratio and whether the outputs agree; exit 1 if not.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.bench_identity import machine
from cradle.catalog import IDENTITY_MAP, JOB_RUNS, MEMBER_PROFILE, silver_tables
from cradle.config import load_env
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.profile import rfm
from cradle.profile.settings import load_profile
from cradle.sources import load_sources
from cradle.spark import build_spark
from cradle.tags.engine import compile_rules, render_rule, rule_tags
from cradle.tags.settings import load_tags
from cradle.tags.stage import protected_columns, release, rule_sources

log = logging.getLogger("bench_profile")
START = date(2026, 1, 1)
# One rule per kind of work: app events (conditional aggregate), store and e-commerce orders
# (union, distinct count), orders x products (join, HAVING), Wi-Fi probes, hospital sign-ups (LIKE).
TAGS = ("app_shopper", "repeat_buyer", "sample_taker", "lbs_store_visitor", "lbs_maternity_hospital")
EXPORTED = ("pos_orders", "ecom_orders", "app_events", "wifi_probes", "hospital_signups", "products")
# The orders feeds of conf/profile.yaml written by hand in DuckDB's SQL (the bench fails if
# profile.yaml's feeds change, so the two cannot drift apart silently).
FEEDS_SQL = """
SELECT one_id AS customer_id, CAST(order_no AS VARCHAR) AS order_id,
       CAST(paid_at AS DATE) AS order_date, CAST(amount AS DOUBLE) AS amount
FROM pos_orders WHERE amount > 0 AND event_date <= DATE '{day}'
UNION ALL
SELECT one_id, concat(platform, ':', order_id), CAST(pay_time AS DATE),
       list_reduce(list_prepend(0.0::DOUBLE, list_transform(items, lambda i: i.qty * i.price)),
                   lambda a, b: a + b)
FROM ecom_orders WHERE status = 'paid' AND event_date <= DATE '{day}'
"""
FEED_TABLES = ("pos_orders", "ecom_orders")


def spark_part(lake: Lake, day: date) -> tuple[float, DataFrame, DataFrame]:
    """RFM and the five tags as the stages compute them; (seconds, rfm, tags)."""
    cfg, tags_cfg = load_profile(), load_tags()
    if tuple(f.table for f in cfg.orders) != FEED_TABLES:
        raise SystemExit(f"profile.yaml feeds changed ({[f.table for f in cfg.orders]}); update FEEDS_SQL")
    t0 = time.monotonic()
    sources, pending = rule_sources(lake, day)
    compiled = compile_rules(
        lake.spark, tags_cfg, sources, day, names=list(TAGS), pending=pending, hidden=protected_columns()
    )
    tags = rule_tags(tags_cfg, compiled.frames).localCheckpoint()
    tables = silver_tables(load_sources().sources)
    orders = None
    for feed in cfg.orders:
        rows = sources[tables[feed.table].qualified_name].where(F.col("event_date") <= F.lit(day))
        part = rfm.feed_orders(rows, feed)
        orders = part if orders is None else orders.unionByName(part)
    assert orders is not None
    orders = orders.where(F.col("order_date") <= F.lit(day))
    scores = rfm.rfm_scores(orders, day, cfg.rfm.window_days, cfg.rfm.quintiles).localCheckpoint()
    tags.count(), scores.count()
    seconds = time.monotonic() - t0
    release(sources)
    return seconds, scores, tags


def export(lake: Lake, folder: Path) -> None:
    # Instants as Parquet TIMESTAMP (UTC-adjusted), not INT96, so DuckDB reads them as
    # TIMESTAMPTZ and dates them in the session time zone as Spark does.
    lake.spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    tables = silver_tables(load_sources().sources)
    for name in EXPORTED:
        lake.read(tables[name]).write.mode("overwrite").parquet(str(folder / name))
    current = lake.read(IDENTITY_MAP).where(F.col("valid_to").isNull())
    current.select("source", "source_key", "one_id").write.mode("overwrite").parquet(
        str(folder / "identity_map")
    )


def duckdb_part(folder: Path, day: date, timezone: str, window_days: int, quintiles: int) -> dict[str, Any]:
    """The same numbers in DuckDB from the exported files; returns times and frames."""
    tables = silver_tables(load_sources().sources)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"SET TimeZone = '{timezone}'")  # Spark's session time zone: dates of timestamps
    t0 = time.monotonic()
    con.execute(f"CREATE VIEW current_map AS SELECT * FROM read_parquet('{folder}/identity_map/*.parquet')")
    for name in EXPORTED:
        files = f"read_parquet('{folder}/{name}/*.parquet')"
        keys = tables[name].keys
        if name == "products":
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {files}")
            continue
        key = "concat_ws('|', " + ", ".join(f"coalesce(CAST(s.{k} AS VARCHAR), '')" for k in keys) + ")"
        con.execute(
            f"CREATE VIEW {name} AS SELECT s.*, m.one_id FROM {files} s "
            f"JOIN current_map m ON m.source = '{name}' AND m.source_key = {key}"
        )
    tags_cfg = load_tags()
    tag_parts = []
    for tag in TAGS:
        sql = re.sub(r"cradle_silver\.(\w+)", r"\1", render_rule(tags_cfg.tags[tag], day))
        con.execute(f"CREATE TEMP TABLE tag_{tag} AS {sql}")
        tag_parts.append(f"SELECT '{tag}' AS tag, one_id, CAST(value AS VARCHAR) AS value FROM tag_{tag}")
    con.execute(
        "CREATE TEMP TABLE orders AS SELECT customer_id, order_id, min(order_date) AS order_date, "
        f"sum(amount) AS amount FROM ({FEEDS_SQL.format(day=day)}) "
        "WHERE customer_id IS NOT NULL AND order_id IS NOT NULL AND order_date IS NOT NULL GROUP BY 1, 2"
    )
    q = quintiles
    con.execute(
        f"""
        CREATE TEMP TABLE rfm AS
        WITH per AS (
          SELECT customer_id, date_diff('day', max(order_date), DATE '{day}') AS recency_days,
                 count(DISTINCT order_id) AS frequency, round(sum(amount), 2) AS monetary
          FROM orders WHERE order_date <= DATE '{day}' AND order_date > DATE '{day}' - {window_days}
          GROUP BY customer_id
        ), n AS (SELECT count(*) AS n FROM per)
        SELECT customer_id, recency_days, frequency, monetary,
          CAST(1 + floor({q} * (rank() OVER (ORDER BY recency_days DESC) - 1) / n) AS INTEGER) AS r_score,
          CAST(1 + floor({q} * (rank() OVER (ORDER BY frequency) - 1) / n) AS INTEGER) AS f_score,
          CAST(1 + floor({q} * (rank() OVER (ORDER BY monetary) - 1) / n) AS INTEGER) AS m_score
        FROM per, n
        """
    )
    seconds = time.monotonic() - t0
    return {
        "seconds": seconds,
        "rfm": con.execute("SELECT * FROM rfm").df(),
        "tags": con.execute(" UNION ALL ".join(tag_parts)).df(),
    }


def rfm_disagreements(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, int]:
    """Customers missing on either side, and per measure the customers that differ."""
    joined = a.set_index("customer_id").join(b.set_index("customer_id"), how="outer", rsuffix="_b")
    both = joined.dropna(subset=["frequency", "frequency_b"])
    out = {"only_one_side": len(joined) - len(both)}
    out["frequency"] = int((both["frequency"] != both["frequency_b"]).sum())
    out["monetary"] = int(((both["monetary"] - both["monetary_b"]).abs() > 0.0051).sum())
    for s in ("recency_days", "r_score", "f_score", "m_score"):
        out[s] = int((both[s] != both[f"{s}_b"]).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=3000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default="/tmp/cradle-bench-profile")
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument(
        "--skip-pipeline", action="store_true", help="reuse the lake in --work (ingest and identity done)"
    )
    p.add_argument("--driver-memory", default="8g")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.work)
    landing, lake_root, exported = work / "landing", work / "lake", work / "export"
    last = START + timedelta(days=args.days - 1)
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
    }
    if not args.skip_generate:
        command = [sys.executable, "-m", "cradle", "generate", "--members", str(args.members), "--days"]
        command += [str(args.days), "--seed", str(args.seed), "--start", str(START), "--out", str(landing)]
        subprocess.run([*command, "--workers", "2"], check=True)
    base = load_env("local", lake=str(lake_root))
    env = base.model_copy(
        update={
            "landing_root": str(landing),
            "spark": base.spark.model_copy(
                update={"master": "local[2]", "shuffle_partitions": 2, "driver_memory": args.driver_memory}
            ),
        }
    )
    spark = build_spark(env, app_name="bench-profile")
    lake = Lake(spark, env.lake_root)
    if not args.skip_pipeline:
        run_stages(spark, env, ["ingest", "identity"], make_context(env, last, None))
    ctx = make_context(env, last, None)
    run_stages(spark, env, ["profile"], ctx)
    profile_run = (
        lake.read(JOB_RUNS).where((F.col("run_id") == ctx.run_id) & (F.col("job") == "profile")).first()
    )
    result["spark_profile_stage_seconds"] = profile_run["duration_s"]

    spark_seconds, scores, tags = spark_part(lake, last)
    result["spark_rfm_and_tags_seconds"] = round(spark_seconds, 2)
    export(lake, exported)
    cfg = load_profile()
    duck = duckdb_part(exported, last, env.spark.timezone, cfg.rfm.window_days, cfg.rfm.quintiles)
    result["duckdb_rfm_and_tags_seconds"] = round(duck["seconds"], 2)
    result["spark_over_duckdb"] = round(spark_seconds / duck["seconds"], 1) if duck["seconds"] else None

    columns = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score"]
    spark_rfm = scores.select(*columns).toPandas()
    profile = lake.read(MEMBER_PROFILE).where(F.col("r_score").isNotNull())
    from_profile = profile.select(
        F.col("one_id").alias("customer_id"),
        F.datediff(F.lit(last), F.col("last_purchase_date")).alias("recency_days"),
        F.col("orders_365d").alias("frequency"),
        F.col("spend_365d").alias("monetary"),
        "r_score",
        "f_score",
        "m_score",
    ).toPandas()
    result["customers_scored"] = len(spark_rfm)
    result["rfm_spark_vs_duckdb"] = rfm_disagreements(spark_rfm, duck["rfm"][columns])
    result["rfm_spark_vs_profile_table"] = rfm_disagreements(spark_rfm, from_profile)
    spark_tags = {
        (r["tag"], r["one_id"], r["value"]) for r in tags.select("tag", "one_id", "value").collect()
    }
    duck_tags = set(duck["tags"].itertuples(index=False, name=None))
    result["tag_rows"] = {t: sum(1 for x in spark_tags if x[0] == t) for t in TAGS}
    result["tags_only_spark"] = len(spark_tags - duck_tags)
    result["tags_only_duckdb"] = len(duck_tags - spark_tags)
    agree = (
        all(v == 0 for v in result["rfm_spark_vs_duckdb"].values())
        and all(v == 0 for v in result["rfm_spark_vs_profile_table"].values())
        and not spark_tags ^ duck_tags
    )
    result["outputs_agree"] = agree
    print(json.dumps(result, indent=2, default=str))
    print(
        f"profile bench, {args.members} members x {args.days} days: "
        f"profile stage {result['spark_profile_stage_seconds']} s; "
        f"RFM + {len(TAGS)} tags: Spark {spark_seconds:.1f} s, DuckDB {duck['seconds']:.1f} s, "
        f"ratio {result['spark_over_duckdb']}x; outputs agree: {agree}",
        flush=True,
    )
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
