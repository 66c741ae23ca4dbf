"""The ingest stage: ``cradle run ingest --run-date D``.

One run: list the files delivered up to D that the manifest has not seen; plan them
(``plan.py``: duplicates, corrections, rejected files); parse them all once into an
encrypted staging copy; write bronze and quarantine for exactly those files; merge each
source's accepted rows into its silver table (latest version per business key wins);
then record the manifest with each file's accounting (read = accepted + quarantined +
duplicates, counted independently and checked), the event dates touched, and data
health. Writes are batched across sources; only the silver merges are per source.
A re-run finds nothing new and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cradle.catalog import (
    DATA_QUALITY,
    INGEST_MANIFEST,
    INGEST_PARTITIONS,
    LANDED_RECORDS,
    QUARANTINE,
    Table,
    silver_tables,
)
from cradle.config import join_uri
from cradle.ingest.files import receive
from cradle.ingest.plan import FilePlan
from cradle.ingest.quality import quality_metrics
from cradle.ingest.validate import check_rules, region_lookups, to_silver, with_typed
from cradle.privacy import Keys, decrypt, load_keys, mask_text
from cradle.runs import Job
from cradle.sources import SourceSpec, load_regions, load_sources

log = logging.getLogger(__name__)

COUNTS = ("rows_read", "accepted", "quarantined", "duplicates")


class AccountingError(RuntimeError):
    """Rows read do not equal rows accepted + quarantined + duplicates for some file."""


@dataclass(frozen=True)
class SourceBatch:
    """One source's share of a run: its plans and its silver rows (with duplicate flags)."""

    name: str
    plans: list[FilePlan]
    batch: DataFrame | None  # silver rows of the files read, flagged _is_duplicate
    quarantine: DataFrame | None


def sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "''"


def relative(path: str, landing_root: str) -> str:
    root = landing_root.rstrip("/").removeprefix("file:")
    return path.removeprefix("file:").removeprefix(root).lstrip("/")


def mask_preview(raw: Column) -> Column:
    """A human-readable preview of a quarantined line with personal data masked:
    digit runs (phones, cards) and all but the first of each run of Chinese characters."""
    return F.regexp_replace(mask_text(raw), r"(?<=[\u4e00-\u9fff])[\u4e00-\u9fff]", "*")


def run(job: Job) -> None:
    spark, lake, ctx, staging = job.spark, job.lake, job.ctx, job.staging
    sources = load_sources().sources
    keys = load_keys(job.env)
    for name, spec in sources.items():
        check_rules(spark, name, spec)
    tables = silver_tables(sources)

    staged, plans = receive(job, sources, keys)
    if staged is None:
        log.info("ingest %s: no new files", ctx.run_date)
        return

    read_plans = {source: [p for p in ps if p.is_read] for source, ps in plans.items()}
    replaced = {source: [f for p in ps for f in p.replaces] for source, ps in read_plans.items()}
    plan_rows = spark.createDataFrame(
        [
            (
                p.file.path,
                source,
                p.file.file,
                p.file.logical[0],
                p.file.logical[1],
                p.file.delivery_date,
                p.file.checksum,
                p.reason if p.status == "rejected" else None,
            )
            for source, ps in read_plans.items()
            for p in ps
        ],
        "path string, source string, file string, logical_file string, file_version int, delivery_date date, "
        "file_checksum string, file_error string",
    )
    records = staged.where(F.col("kind") == "record").join(F.broadcast(plan_rows), on="path", how="inner")
    touched_files = [p.file.file for ps in read_plans.values() for p in ps] + [
        f for fs in replaced.values() for f in fs
    ]
    scope = f"file IN ({sql_list(touched_files)})"

    # Bronze: every line of the files read, as delivered (encrypted), with lineage.
    bronze = records.select(
        "source",
        "delivery_date",
        "file",
        "logical_file",
        "file_version",
        "file_checksum",
        "line",
        "raw_enc",
        "fields",
        F.col("error").alias("parse_error"),
        F.lit(ctx.run_id).alias("ingest_run_id"),
    )
    job.run.wrote(lake.replace_where(LANDED_RECORDS, bronze, scope))

    provinces, cities = region_lookups(spark, load_regions())
    batches = [
        load_source(
            job,
            source,
            sources[source],
            tables[source],
            keys,
            provinces,
            cities,
            records,
            staging,
            plans[source],
            replaced[source],
        )
        for source in sorted(read_plans)
    ]
    quarantines = [b.quarantine for b in batches if b.quarantine is not None]
    if quarantines:
        job.run.wrote(lake.replace_where(QUARANTINE, reduce(DataFrame.unionByName, quarantines), scope))

    silver_batches = [b.batch for b in batches if b.batch is not None]
    counts = account(
        records,
        reduce(DataFrame.unionByName, quarantines) if quarantines else None,
        silver_batches,
        read_plans,
    )
    job.run.read("landing", sum(c["rows_read"] for c in counts.values()))
    write_manifest(job, plans, counts, replaced)
    write_partitions(job, [b for b in batches if sources[b.name].has_event_date])
    write_quality(job, {b.name: sources[b.name] for b in batches}, tables)
    total = {k: sum(c[k] for c in counts.values()) for k in COUNTS}
    job.run.detail("files", sum(map(len, plans.values())))
    for key, value in total.items():
        job.run.detail(key, value)
    log.info(
        "ingest %s: %d files, %d rows read, %d accepted, %d quarantined, %d duplicates",
        ctx.run_date,
        sum(map(len, plans.values())),
        *(total[k] for k in COUNTS),
    )


def load_source(
    job: Job,
    name: str,
    spec: SourceSpec,
    table: Table,
    keys: Keys,
    provinces: DataFrame,
    cities: DataFrame,
    records: DataFrame,
    staging: str,
    plans: list[FilePlan],
    replaced: list[str],
) -> SourceBatch:
    """Validate one source's records, and merge its accepted rows into silver."""
    spark, lake, run_id = job.spark, job.lake, job.ctx.run_id
    if not any(p.is_read for p in plans):
        return SourceBatch(name, plans, None, None)
    typed = with_typed(
        records.where(F.col("source") == name).withColumnRenamed("error", "parse_error"), spec, keys
    )
    quarantine = typed.where(F.size("_reasons") > 0).select(
        F.lit(name).alias("source"),
        "delivery_date",
        "file",
        "line",
        F.col("_reasons")[0].alias("reason"),
        F.col("_reasons").alias("reasons"),
        mask_preview(decrypt(F.col("raw_enc"), keys.encryption_key)).alias("raw_masked"),
        "raw_enc",
        F.lit(run_id).alias("ingest_run_id"),
    )

    # Silver: remove what replaced files contributed, then merge the new versions.
    if replaced:
        job.run.wrote(lake.delete_where(table, F.col("_file").isin(replaced)))
    batch_path = join_uri(staging, "silver", name)
    silver_rows = to_silver(
        typed.where(F.size("_reasons") == 0), spec, table, keys, provinces, cities, run_id
    )
    existing = lake.read(table).select(*table.keys, "_row_hash").withColumn("_in_silver", F.lit(True))
    first_copy = F.row_number().over(Window.partitionBy(*table.keys, "_row_hash").orderBy("_version")) == 1
    (
        silver_rows.withColumn("_is_first", first_copy)
        .join(existing, on=[*table.keys, "_row_hash"], how="left")
        .withColumn("_is_duplicate", ~F.col("_is_first") | F.col("_in_silver").isNotNull())
        .drop("_is_first", "_in_silver")
        .write.mode("overwrite")
        .parquet(batch_path)
    )
    batch = spark.read.parquet(batch_path)
    newest = F.row_number().over(Window.partitionBy(*table.keys).orderBy(F.col("_version").desc())) == 1
    to_merge = (
        batch.where(~F.col("_is_duplicate"))
        .withColumn("_is_newest", newest)
        .where(F.col("_is_newest"))
        .drop("_is_duplicate", "_is_newest")
    )
    job.run.wrote(lake.merge(table, to_merge, update_when="s._version > t._version"))
    return SourceBatch(
        name,
        plans,
        batch.select(
            "_file", "_is_duplicate", *(["event_date", "_delivery_date"] if spec.has_event_date else [])
        ),
        quarantine,
    )


def account(
    records: DataFrame,
    quarantine: DataFrame | None,
    batches: list[DataFrame],
    read_plans: dict[str, list[FilePlan]],
) -> dict[str, dict[str, int]]:
    """Per file: rows read, accepted, quarantined and duplicates, counted independently and checked."""
    counts = {p.file.file: dict.fromkeys(COUNTS, 0) for ps in read_plans.values() for p in ps}
    for r in records.groupBy("file").count().collect():
        counts[r["file"]]["rows_read"] = r["count"]
    if quarantine is not None:
        for r in quarantine.groupBy("file").count().collect():
            counts[r["file"]]["quarantined"] = r["count"]
    if batches:
        flags = reduce(DataFrame.unionByName, [b.select("_file", "_is_duplicate") for b in batches])
        for r in (
            flags.groupBy("_file")
            .agg(
                F.count(F.when(~F.col("_is_duplicate"), 1)).alias("accepted"),
                F.count(F.when(F.col("_is_duplicate"), 1)).alias("duplicates"),
            )
            .collect()
        ):
            counts[r["_file"]]["accepted"] = r["accepted"]
            counts[r["_file"]]["duplicates"] = r["duplicates"]
    broken = {
        f: c
        for f, c in counts.items()
        if c["rows_read"] != c["accepted"] + c["quarantined"] + c["duplicates"]
    }
    if broken:
        raise AccountingError(f"rows read != accepted + quarantined + duplicates for {broken}")
    return counts


def write_manifest(
    job: Job,
    plans: dict[str, list[FilePlan]],
    counts: dict[str, dict[str, int]],
    replaced: dict[str, list[str]],
) -> None:
    now = datetime.now()
    rows = [
        {
            "source": source,
            "file": p.file.file,
            "logical_file": p.file.logical[0],
            "file_version": p.file.logical[1],
            "delivery_date": p.file.delivery_date,
            "size": p.file.size,
            "checksum": p.file.checksum,
            "encoding": p.file.encoding,
            "status": p.status,
            "reason": p.reason,
            "columns": list(p.file.header) if p.file.header else None,
            "extra_columns": list(p.extra_columns),
            "rows_read": counts.get(p.file.file, {}).get("rows_read", 0),
            "rows_accepted": counts.get(p.file.file, {}).get("accepted", 0),
            "rows_quarantined": counts.get(p.file.file, {}).get("quarantined", 0),
            "rows_duplicate": counts.get(p.file.file, {}).get("duplicates", 0),
            "ingest_run_id": job.ctx.run_id,
            "ingested_at": now,
        }
        for source, ps in plans.items()
        for p in ps
    ]
    job.run.wrote(job.lake.merge(INGEST_MANIFEST, job.spark.createDataFrame(rows, INGEST_MANIFEST.schema)))
    superseded = [
        (source, old, p.file.file) for source, ps in plans.items() for p in ps for old in p.replaces
    ]
    if superseded:
        updates = job.spark.createDataFrame(superseded, "source string, file string, by string")
        (
            DeltaTable.forPath(job.spark, job.lake.path(INGEST_MANIFEST))
            .alias("t")
            .merge(updates.alias("s"), "t.source = s.source AND t.file = s.file")
            .whenMatchedUpdate(
                set={"status": F.lit("superseded"), "reason": F.concat(F.lit("replaced by "), F.col("s.by"))}
            )
            .execute()
        )


def write_partitions(job: Job, batches: list[SourceBatch]) -> None:
    parts = [
        b.batch.where(~F.col("_is_duplicate"))
        .groupBy("event_date")
        .agg(
            F.count("*").alias("rows"), F.max(F.col("event_date") < F.col("_delivery_date")).alias("is_late")
        )
        .withColumn("source", F.lit(b.name))
        for b in batches
        if b.batch is not None
    ]
    if not parts:
        return
    rows = reduce(DataFrame.unionByName, parts).select(
        F.lit(job.ctx.run_id).alias("ingest_run_id"),
        F.lit(job.ctx.run_date).alias("run_date"),
        "source",
        "event_date",
        "rows",
        "is_late",
    )
    job.run.wrote(job.lake.replace_where(INGEST_PARTITIONS, rows, f"ingest_run_id = '{job.ctx.run_id}'"))


def write_quality(job: Job, specs: dict[str, SourceSpec], tables: dict[str, Table]) -> None:
    quarantine = job.lake.read(QUARANTINE)
    manifest = job.lake.read(INGEST_MANIFEST)
    metrics = [
        quality_metrics(
            silver=job.lake.read(tables[name]),
            quarantine=quarantine.where(F.col("source") == name),
            manifest=manifest.where(F.col("source") == name),
            spec=specs[name],
            table=tables[name],
            run_id=job.ctx.run_id,
        )
        for name in specs
    ]
    if metrics:
        job.run.wrote(job.lake.merge(DATA_QUALITY, reduce(DataFrame.unionByName, metrics)))
