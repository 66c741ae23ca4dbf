"""`cradle eval ingest --json`: ingestion accounting, and defects caught versus injected.

Accounting comes from the manifest (every file, rows read = accepted + quarantined +
duplicates). Where the generator's truth exists (``<landing_root>/_truth/defects.parquet``),
every injected defect is judged by what ingestion should have done with it:

* quarantined: truncated_row, malformed_row, impossible_date, out_of_range
* not doubled (at most one copy of the record in silver): duplicate_row
* landed in its own event date: late_event; normalised: mobile_format; flagged: masked_mobile
* file-level: duplicate_file (no-op), corrected_file (replaces), encoding_gbk / encoding_bom
  (decoded), reordered_columns (read by name), added_column (kept)

A defect not caught counts as ``hidden`` only where something named explains why it could
not be seen, and ``hidden_by`` says what: another quarantine-worthy defect on the same line
that got the line quarantined (its kind), a correction that withdrew the row
(``withdrawn``), or a later version of the same record that replaced the row in silver
(``newer_version``). Anything else not caught is ``missed``. Kinds that identity resolves
(typos, shared phones, placeholder ids, second registrations) are listed with their counts
and judged by ``cradle eval identity``. ``clean_quarantined`` counts quarantined lines that
carry no quarantine-worthy defect: it must be 0. Every file delivered to the landing area
(up to the last ingest run's date) must be in the manifest.
"""

from __future__ import annotations

import argparse
from datetime import date
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cradle.catalog import INGEST_MANIFEST, JOB_RUNS, QUARANTINE
from cradle.config import EnvConfig
from cradle.lake import Lake

QUARANTINE_KINDS = ("truncated_row", "malformed_row", "impossible_date", "out_of_range")
IDENTITY_KINDS = (
    "typo",
    "multi_device",
    "family_shared_mobile",
    "store_phone_walkin",
    "all_zero_device",
    "test_account",
    "re_registration",
)


def silver_lines(lake: Lake) -> tuple[DataFrame, DataFrame]:
    """(file, line, event_date, delivery_date) of every silver row, and (file, line, field,
    status) of every mobile field."""
    from cradle.catalog import silver_tables
    from cradle.sources import load_sources

    specs = load_sources().sources
    rows, mobiles = [], []
    for name, table in silver_tables(load_sources().sources).items():
        frame = lake.read(table)
        event = F.col("event_date") if specs[name].has_event_date else F.lit(None).cast("date")
        rows.append(
            frame.select(
                F.col("_file").alias("file"),
                F.col("_line").alias("line"),
                event.alias("event_date"),
                "_delivery_date",
            )
        )
        for field, spec in specs[name].fields.items():
            if spec.type == "mobile":
                mobiles.append(
                    frame.select(
                        F.col("_file").alias("file"),
                        F.col("_line").alias("line"),
                        F.lit(field).alias("field"),
                        F.col(f"{field}_status").alias("status"),
                    )
                )
    return reduce(DataFrame.unionByName, rows), reduce(DataFrame.unionByName, mobiles)


def accounting(manifest: DataFrame) -> dict[str, Any]:
    totals = manifest.agg(
        F.count("*").alias("files"),
        F.sum("rows_read").alias("rows_read"),
        F.sum("rows_accepted").alias("accepted"),
        F.sum("rows_quarantined").alias("quarantined"),
        F.sum("rows_duplicate").alias("duplicates"),
        F.count(
            F.when(
                F.col("rows_read")
                != F.col("rows_accepted") + F.col("rows_quarantined") + F.col("rows_duplicate"),
                1,
            )
        ).alias("unbalanced_files"),
    ).first()
    by_status = {r["status"]: r["count"] for r in manifest.groupBy("status").count().collect()}
    return {**{k: int(totals[k] or 0) for k in totals.asDict()}, "files_by_status": by_status}


def reason_counts(quarantine: DataFrame) -> dict[str, int]:
    # Strip quoted values so reasons group by kind: "invalid timestamp in paid_at".
    kind = F.regexp_replace(F.regexp_replace("reason", r": '.*'$", ""), r" at column \d+$", "")
    return {
        r["k"]: r["count"]
        for r in quarantine.groupBy(kind.alias("k")).count().orderBy(F.desc("count")).collect()
    }


def judge_rows(
    defects: DataFrame,
    quarantined: DataFrame,
    silver: DataFrame,
    mobiles: DataFrame,
    record_person: DataFrame,
) -> DataFrame:
    """(kind, caught, hidden, hidden_by) per row defect."""
    rows = defects.where(F.col("line").isNotNull() & ~F.col("kind").isin(*IDENTITY_KINDS)).withColumn(
        "defect", F.concat_ws("|", "kind", F.coalesce(F.col("field"), F.lit("")))
    )
    # The quarantine-worthy defects of each line: what may explain another defect there.
    bad_lines = rows.where(F.col("kind").isin(*QUARANTINE_KINDS)).select(
        "file", "line", F.col("kind").alias("other_kind"), F.col("defect").alias("other")
    )
    explained = (
        rows.select("file", "line", "defect")
        .join(bad_lines, ["file", "line"], "inner")
        .where(F.col("other") != F.col("defect"))
        .groupBy("file", "line", "defect")
        .agg(F.min("other_kind").alias("other_kind"))
    )
    judged = (
        rows.join(quarantined.withColumn("q", F.lit(True)), ["file", "line"], "left")
        .join(silver.withColumn("s", F.lit(True)), ["file", "line"], "left")
        .join(mobiles, ["file", "line", "field"], "left")
        .join(explained, ["file", "line", "defect"], "left")
    )
    # Identical copies are interchangeable: a duplicate is caught when at most one copy of
    # its record (same file, same record_key) reached silver.
    keyed = record_person.select("file", "line", "source", "record_key")
    copies_kept = (
        silver.select("file", "line")
        .join(keyed, ["file", "line"], "inner")
        .groupBy("file", "record_key")
        .count()
    )
    # Records whose silver row is another line (a later update of the same record).
    in_silver = (
        silver.select("file", "line")
        .join(keyed, ["file", "line"], "inner")
        .select("source", "record_key", F.lit(True).alias("record_in_silver"))
        .distinct()
    )
    judged = (
        judged.join(keyed.drop("source"), ["file", "line"], "left")
        .join(copies_kept.withColumnRenamed("count", "copies_kept"), ["file", "record_key"], "left")
        .join(in_silver, ["source", "record_key"], "left")
    )
    q, s = F.col("q").isNotNull(), F.col("s").isNotNull()
    caught = (
        F.when(F.col("kind").isin(*QUARANTINE_KINDS), q)
        .when(F.col("kind") == "duplicate_row", F.coalesce(F.col("copies_kept"), F.lit(0)) <= 1)
        .when(F.col("kind") == "late_event", s & (F.col("event_date") < F.col("_delivery_date")))
        .when(F.col("kind") == "mobile_format", s & (F.col("status") == "valid"))
        .when(F.col("kind") == "masked_mobile", s & (F.col("status") == "masked"))
    )
    caught = F.coalesce(caught, F.lit(False))
    hidden_by = (
        F.when(caught, F.lit(None))
        .when(F.col("withdrawn"), F.lit("withdrawn"))
        .when(q & F.col("other_kind").isNotNull(), F.col("other_kind"))
        .when(~s & ~q & F.coalesce(F.col("record_in_silver"), F.lit(False)), F.lit("newer_version"))
    )
    return judged.select(
        "kind", caught.alias("caught"), hidden_by.isNotNull().alias("hidden"), hidden_by.alias("hidden_by")
    )


def judge_files(defects: DataFrame, manifest: DataFrame, landing_root: str) -> DataFrame:
    files = defects.where(F.col("line").isNull() & ~F.col("kind").isin(*IDENTITY_KINDS)).select(
        "kind", "file", "field"
    )
    m = manifest.select("file", "status", "encoding", "columns", "logical_file")
    judged = files.join(m, "file", "left")
    ascii_files = {
        r["file"]
        for r in judged.where((F.col("kind") == "encoding_gbk") & (F.col("encoding") == "utf-8")).collect()
        if Path(landing_root, r["file"]).read_bytes().isascii()
    }
    # A file with no records (header only) is `empty` whatever else holds for it: a copy of
    # it doubles no row and a reordered header misreads none, so `empty` handles both.
    caught = (
        F.when(F.col("kind") == "duplicate_file", F.col("status").isin("duplicate", "empty"))
        # The truth names the original: it must have been superseded by its correction.
        .when(F.col("kind") == "corrected_file", F.col("status") == "superseded")
        .when(
            F.col("kind") == "encoding_gbk",
            (F.col("encoding") == "gb18030") | F.col("file").isin(*ascii_files),
        )
        .when(F.col("kind") == "encoding_bom", F.col("encoding") == "utf-8-sig")
        .when(F.col("kind") == "reordered_columns", F.col("status").isin("loaded", "superseded", "empty"))
        # The truth names the added column; the manifest must list it among the file's columns.
        .when(F.col("kind") == "added_column", F.array_contains("columns", F.col("field")))
    )
    return judged.select(
        "kind",
        F.coalesce(caught, F.lit(False)).alias("caught"),
        F.lit(False).alias("hidden"),
        F.lit(None).cast("string").alias("hidden_by"),
    )


def follow_corrections(defects: DataFrame, record_person: DataFrame, manifest: DataFrame) -> DataFrame:
    """Row defects located in a file that a correction superseded, moved to where the same
    record (same record_key, same occurrence) stands in the replacing file.

    The truth records a defect where its row was first delivered; when that file is
    replaced, ingestion meets the row in the replacement. A record the correction withdrew
    keeps its place and is marked ``withdrawn`` (its rows were removed with the file).
    """
    occurrence = F.row_number().over(Window.partitionBy("file", "record_key").orderBy("line"))
    located = record_person.select("file", "line", "record_key").withColumn("occ", occurrence)
    targets = located.select(
        F.col("file").alias("new_file"), F.col("line").alias("new_line"), "record_key", "occ"
    )
    replaced = manifest.where(F.col("status") == "superseded").select(
        "file", F.regexp_extract("reason", r"^replaced by (.+)$", 1).alias("new_file")
    )
    placed = (
        defects.join(replaced, "file", "left")
        .join(located, ["file", "line"], "left")
        .join(targets, ["new_file", "record_key", "occ"], "left")
    )
    in_replaced_file = F.col("new_file").isNotNull() & F.col("line").isNotNull()
    moved = in_replaced_file & F.col("new_line").isNotNull()
    return placed.select(
        "kind",
        "source",
        F.when(moved, F.col("new_file")).otherwise(F.col("file")).alias("file"),
        F.when(moved, F.col("new_line")).otherwise(F.col("line")).alias("line"),
        "field",
        "detail",
        (in_replaced_file & F.col("new_line").isNull()).alias("withdrawn"),
    )


def delivered_files(landing_root: str, until: date | None) -> list[str]:
    """Landing files (``source/YYYY-MM-DD/name``) delivered up to ``until``; truth excluded."""
    root = Path(landing_root)
    found = []
    for path in sorted(root.glob("*/*/*")):
        source, day = path.parts[-3], path.parts[-2]
        if source.startswith("_") or not path.is_file():
            continue
        try:
            delivered = date.fromisoformat(day)
        except ValueError:
            continue
        if until is None or delivered <= until:
            found.append(path.relative_to(root).as_posix())
    return found


def last_ingest_date(lake: Lake) -> date | None:
    """Run date of the latest succeeded ingest run: files delivered later are not due yet."""
    return (
        lake.read(JOB_RUNS)
        .where((F.col("job") == "ingest") & (F.col("status") == "succeeded"))
        .agg(F.max("run_date"))
        .first()[0]
    )


def delivered_by(until: date | None) -> F.Column:
    """Whether a landing file (``source/YYYY-MM-DD/name``) was delivered by ``until``."""
    if until is None:
        return F.lit(True)
    return F.to_date(F.split(F.col("file"), "/").getItem(1)) <= F.lit(until)


def file_coverage(lake: Lake, manifest: DataFrame, landing_root: str) -> dict[str, Any]:
    """Every delivered file (up to the last ingest run's date) must be in the manifest."""
    delivered = delivered_files(landing_root, last_ingest_date(lake))
    seen = {r["file"] for r in manifest.select("file").distinct().collect()}
    missing = [f for f in delivered if f not in seen]
    return {"delivered": len(delivered), "not_in_manifest": len(missing), "examples": missing[:5]}


def measure(spark: SparkSession, lake: Lake, landing_root: str, truth_dir: Path) -> dict[str, Any]:
    """Ingestion accounting and, where the truth exists, defects caught versus injected."""
    manifest = lake.read(INGEST_MANIFEST)
    quarantine = lake.read(QUARANTINE)
    result: dict[str, Any] = {
        "accounting": accounting(manifest),
        "quarantine_reasons": reason_counts(quarantine),
        "files": file_coverage(lake, manifest, landing_root),
    }
    passed = result["accounting"]["unbalanced_files"] == 0 and result["files"]["not_in_manifest"] == 0
    truth = truth_dir / "defects.parquet"
    if truth.exists():
        record_person = spark.read.parquet(str(truth_dir / "record_person.parquet"))
        # Only defects in files due by the last ingest run are judged.
        due = spark.read.parquet(str(truth)).where(delivered_by(last_ingest_date(lake)))
        defects = follow_corrections(due, record_person, manifest)
        silver, mobiles = silver_lines(lake)
        quarantined = quarantine.select("file", "line").distinct()
        judged = judge_rows(defects, quarantined, silver, mobiles, record_person).unionByName(
            judge_files(defects, manifest, landing_root)
        )
        result["defects"] = defect_table(judged)
        result["identity_defects"] = {
            r["kind"]: r["count"]
            for r in defects.where(F.col("kind").isin(*IDENTITY_KINDS)).groupBy("kind").count().collect()
        }
        bad = defects.where(F.col("kind").isin(*QUARANTINE_KINDS) & F.col("line").isNotNull()).select(
            "file", "line"
        )
        result["clean_quarantined"] = quarantined.join(bad, ["file", "line"], "left_anti").count()
        result["kinds_not_caught"] = sorted(k for k, v in result["defects"].items() if v["caught"] == 0)
        passed = (
            passed
            and result["clean_quarantined"] == 0
            and not result["kinds_not_caught"]
            and all(k["missed"] == 0 for k in result["defects"].values())
        )
    else:
        result["defects"] = f"no truth at {truth}: generated data only"
    result["passed"] = passed
    return result


def defect_table(judged: DataFrame) -> dict[str, dict[str, Any]]:
    """Per kind: injected, caught, hidden (with what hid them) and missed."""
    kinds: dict[str, dict[str, Any]] = {}
    for r in (
        judged.groupBy("kind")
        .agg(
            F.count("*").alias("injected"),
            F.sum(F.col("caught").cast("int")).alias("caught"),
            F.sum((~F.col("caught") & F.col("hidden")).cast("int")).alias("hidden"),
        )
        .collect()
    ):
        kinds[r["kind"]] = {
            "injected": r["injected"],
            "caught": r["caught"],
            "hidden": r["hidden"],
            "hidden_by": {},
            "missed": r["injected"] - r["caught"] - r["hidden"],
        }
    for r in judged.where(F.col("hidden_by").isNotNull()).groupBy("kind", "hidden_by").count().collect():
        kinds[r["kind"]]["hidden_by"][r["hidden_by"]] = r["count"]
    return kinds


def evaluate(env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from cradle.spark import build_spark

    spark: SparkSession = build_spark(env, app_name="cradle-eval-ingest")
    truth_dir = Path(args.data) if getattr(args, "data", None) else Path(env.landing_root) / "_truth"
    return measure(spark, Lake(spark, env.lake_root), env.landing_root, truth_dir)
