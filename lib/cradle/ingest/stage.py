"""The ingest stage: ``cradle run ingest --run-date D``.

For each source in ``conf/sources.yaml``: find files delivered up to D that the manifest
has not seen, plan them (``plan.py``), parse them once into an encrypted staging copy,
write bronze and quarantine for exactly those files, merge accepted rows into silver
(latest version per business key wins), then record the manifest with each file's
accounting (read = accepted + quarantined + duplicates, checked), the event dates
touched, and data health. A re-run finds nothing new and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cradle.catalog import (
    DATA_QUALITY,
    INGEST_MANIFEST,
    INGEST_PARTITIONS,
    LANDED_RECORDS,
    QUARANTINE,
    TABLES,
    Table,
    register,
    source_table,
)
from cradle.config import join_uri
from cradle.ingest.landing import delete_path, list_files, parse_files
from cradle.ingest.normalise import half_width
from cradle.ingest.plan import DeliveredFile, FilePlan, KnownFile, plan_files
from cradle.ingest.protect import Keys, decrypt, encrypt, load_keys, mask_digits
from cradle.ingest.quality import quality_metrics
from cradle.ingest.settings import SourceSpec, load_regions, load_sources
from cradle.ingest.validate import check_rules, personal_fields, region_lookups, to_silver, with_typed
from cradle.pipeline import Job

log = logging.getLogger(__name__)


class AccountingError(RuntimeError):
    """Rows read do not equal rows accepted + quarantined + duplicates for some file."""


@dataclass(frozen=True)
class SourceResult:
    source: str
    files: int
    rows_read: int
    accepted: int
    quarantined: int
    duplicates: int


def silver_tables() -> dict[str, Table]:
    """Register (once) and return the silver table of every configured source."""
    tables = {}
    for name, spec in load_sources().sources.items():
        table = source_table(name, spec)
        tables[name] = TABLES.get(table.qualified_name) or register(table)
    return tables


def sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def run(job: Job) -> None:
    sources = load_sources()
    keys = load_keys(job.env)
    for name, spec in sources.sources.items():
        check_rules(job.spark, name, spec)
    tables = silver_tables()
    provinces, cities = region_lookups(job.spark, load_regions())
    results = []
    touched: list[tuple[str, str]] = []
    for name, spec in sources.sources.items():
        result = ingest_source(job, name, spec, tables[name], keys, provinces, cities)
        results.append(result)
        if result.files:
            touched.append((name, tables[name].qualified_name))
    if touched:
        write_quality(job, touched, tables)
    for r in results:
        job.run.detail(f"{r.source}.files", r.files)
    log.info(
        "ingest %s: %d files, %d rows read, %d accepted, %d quarantined, %d duplicates",
        job.ctx.run_date,
        sum(r.files for r in results),
        sum(r.rows_read for r in results),
        sum(r.accepted for r in results),
        sum(r.quarantined for r in results),
        sum(r.duplicates for r in results),
    )


def relative(path: str, landing_root: str) -> str:
    root = landing_root.rstrip("/").removeprefix("file:")
    return path.removeprefix("file:").removeprefix(root).lstrip("/")


def ingest_source(
    job: Job, name: str, spec: SourceSpec, table: Table, keys: Keys, provinces: DataFrame, cities: DataFrame
) -> SourceResult:
    spark, lake, ctx = job.spark, job.lake, job.ctx
    listed = list_files(spark, job.env.landing_root, name, spec.files, ctx.run_date).collect()
    if not listed:
        return SourceResult(name, 0, 0, 0, 0, 0)
    manifest = lake.read(INGEST_MANIFEST).where(F.col("source") == name)
    known_rows = manifest.select("file", "logical_file", "checksum", "status", "size").collect()
    seen = {(r["file"], r["size"]) for r in known_rows}
    listed = [r for r in listed if (relative(r["path"], job.env.landing_root), r["size"]) not in seen]
    if not listed:
        log.info("%s: no new files", name)
        return SourceResult(name, 0, 0, 0, 0, 0)
    log.info("%s: parsing %d new file(s)", name, len(listed))

    staging = join_uri(lake.root, "_staging", "ingest", ctx.run_id, name)
    parsed = parse_files(spark, [r["path"] for r in listed], spec.format)
    pii = personal_fields(spec)
    # Plain personal data never reaches disk, not even in staging.
    (
        parsed.select(
            "path",
            "kind",
            "line",
            encrypt(F.col("raw"), keys.encryption_key).alias("raw_enc"),
            F.transform_values(
                "fields", lambda k, v: F.when(k.isin(*pii), encrypt(v, keys.encryption_key)).otherwise(v)
            ).alias("fields")
            if pii
            else F.col("fields"),
            "error",
            "encoding",
            "checksum",
            "header",
        )
        .write.mode("overwrite")
        .parquet(staging)
    )
    staged = spark.read.parquet(staging)

    meta = {r["path"]: r for r in staged.where(F.col("kind") == "file").collect()}
    delivered = [
        DeliveredFile(
            file=relative(r["path"], job.env.landing_root),
            path=r["path"],
            delivery_date=r["delivery_date"],
            size=r["size"],
            checksum=meta[r["path"]]["checksum"],
            encoding=meta[r["path"]]["encoding"],
            header=tuple(meta[r["path"]]["header"] or ()) or None,
            error=meta[r["path"]]["error"],
        )
        for r in listed
    ]
    known = [KnownFile(r["file"], r["logical_file"], r["checksum"], r["status"]) for r in known_rows]
    plans = plan_files(delivered, known, tuple(spec.fields), spec.required_columns, spec.format)
    read_plans = [p for p in plans if p.is_read]
    replaced = [f for p in read_plans for f in p.replaces]
    for p in plans:
        log.info("%s: %s %s%s", name, p.file.file, p.status, f" ({p.reason})" if p.reason else "")

    plan_rows = spark.createDataFrame(
        [
            (
                p.file.path,
                p.file.file,
                p.file.logical[0],
                p.file.logical[1],
                p.file.delivery_date,
                p.file.checksum,
                p.reason if p.status == "rejected" else None,
            )
            for p in read_plans
        ],
        "path string, file string, logical_file string, file_version int, delivery_date date, "
        "file_checksum string, file_error string",
    )
    records = staged.where(F.col("kind") == "record").join(F.broadcast(plan_rows), on="path", how="inner")
    files_sql = sql_list([p.file.file for p in read_plans] + replaced) or "''"
    scope = f"source = '{name}' AND file IN ({files_sql})"

    # Bronze: every line of the files read, as delivered (encrypted), with lineage.
    bronze = records.select(
        F.lit(name).alias("source"),
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

    typed = with_typed(records.withColumnRenamed("error", "parse_error"), spec, keys)
    quarantine = typed.where(F.size("_reasons") > 0).select(
        F.lit(name).alias("source"),
        "delivery_date",
        "file",
        "line",
        F.col("_reasons")[0].alias("reason"),
        F.col("_reasons").alias("reasons"),
        mask_preview(decrypt(F.col("raw_enc"), keys.encryption_key)).alias("raw_masked"),
        "raw_enc",
        F.lit(ctx.run_id).alias("ingest_run_id"),
    )
    job.run.wrote(lake.replace_where(QUARANTINE, quarantine, scope))

    # Silver: remove what replaced files contributed, then merge the new versions.
    if replaced:
        DeltaTable.forPath(spark, lake.path(table)).delete(F.col("_file").isin(replaced))
    batch_path = join_uri(staging, "_silver_batch")
    to_silver(
        typed.where(F.size("_reasons") == 0), spec, table, keys, provinces, cities, ctx.run_id
    ).write.mode("overwrite").parquet(batch_path)
    batch = spark.read.parquet(batch_path)
    existing = lake.read(table).select(*table.keys, "_row_hash")
    first_copy = F.row_number().over(Window.partitionBy(*table.keys, "_row_hash").orderBy("_version")) == 1
    batch = batch.withColumn("_is_first", first_copy).join(
        existing.withColumn("_in_silver", F.lit(True)), on=[*table.keys, "_row_hash"], how="left"
    )
    is_duplicate = ~F.col("_is_first") | F.col("_in_silver").isNotNull()
    batch = batch.withColumn("_is_duplicate", is_duplicate).localCheckpoint()
    accepted = batch.where(~F.col("_is_duplicate"))
    newest = F.row_number().over(Window.partitionBy(*table.keys).orderBy(F.col("_version").desc())) == 1
    to_merge = (
        accepted.withColumn("_is_newest", newest)
        .where(F.col("_is_newest"))
        .drop("_is_first", "_in_silver", "_is_duplicate", "_is_newest")
    )
    job.run.wrote(lake.merge(table, to_merge, update_when="s._version > t._version"))

    counts = account(records, quarantine, batch, read_plans)
    job.run.read(f"landing.{name}", sum(c["rows_read"] for c in counts.values()))
    write_manifest(job, name, plans, counts, replaced)
    if spec.has_event_date:
        write_partitions(job, name, accepted)
    delete_path(spark, staging)
    total = {
        k: sum(c[k] for c in counts.values()) for k in ("rows_read", "accepted", "quarantined", "duplicates")
    }
    return SourceResult(name, len(plans), **total)


def mask_preview(raw):
    """A human-readable preview of a quarantined line with personal data masked:
    digit runs (phones, cards) and all but the first of each run of Chinese characters."""
    return F.regexp_replace(mask_digits(half_width(raw)), r"(?<=[\u4e00-\u9fff])[\u4e00-\u9fff]", "*")


def account(
    records: DataFrame, quarantine: DataFrame, batch: DataFrame, read_plans: list[FilePlan]
) -> dict[str, dict[str, int]]:
    """Per file: rows read, accepted, quarantined and duplicates, counted independently and checked."""
    counts: dict[str, dict[str, int]] = {
        p.file.file: {"rows_read": 0, "accepted": 0, "quarantined": 0, "duplicates": 0} for p in read_plans
    }
    for r in records.groupBy("file").count().collect():
        counts[r["file"]]["rows_read"] = r["count"]
    for r in quarantine.groupBy("file").count().collect():
        counts[r["file"]]["quarantined"] = r["count"]
    for r in (
        batch.groupBy("_file")
        .agg(
            F.sum(F.when(~F.col("_is_duplicate"), 1).otherwise(0)).alias("accepted"),
            F.sum(F.when(F.col("_is_duplicate"), 1).otherwise(0)).alias("duplicates"),
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
    job: Job, name: str, plans: list[FilePlan], counts: dict[str, dict[str, int]], replaced: list[str]
) -> None:
    now = datetime.now()
    rows = []
    for p in plans:
        c = counts.get(p.file.file, {})
        rows.append(
            {
                "source": name,
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
                "rows_read": c.get("rows_read", 0),
                "rows_accepted": c.get("accepted", 0),
                "rows_quarantined": c.get("quarantined", 0),
                "rows_duplicate": c.get("duplicates", 0),
                "ingest_run_id": job.ctx.run_id,
                "ingested_at": now,
            }
        )
    new = job.spark.createDataFrame(rows, INGEST_MANIFEST.schema)
    job.run.wrote(job.lake.merge(INGEST_MANIFEST, new))
    if replaced:
        superseded_by = {f: p.file.file for p in plans for f in p.replaces}
        target = DeltaTable.forPath(job.spark, job.lake.path(INGEST_MANIFEST))
        for old, new_file in superseded_by.items():
            target.update(
                (F.col("source") == name) & (F.col("file") == old),
                {"status": F.lit("superseded"), "reason": F.lit(f"replaced by {new_file}")},
            )


def write_partitions(job: Job, name: str, accepted: DataFrame) -> None:
    touched = accepted.groupBy("event_date").agg(
        F.count("*").alias("rows"), F.max(F.col("event_date") < F.col("_delivery_date")).alias("is_late")
    )
    rows = touched.select(
        F.lit(job.ctx.run_id).alias("ingest_run_id"),
        F.lit(job.ctx.run_date).alias("run_date"),
        F.lit(name).alias("source"),
        "event_date",
        "rows",
        "is_late",
    )
    condition = f"ingest_run_id = '{job.ctx.run_id}' AND source = '{name}'"
    job.run.wrote(job.lake.replace_where(INGEST_PARTITIONS, rows, condition))


def write_quality(job: Job, touched: list[tuple[str, str]], tables: dict[str, Table]) -> None:
    specs = load_sources().sources
    for name, _ in touched:
        table = tables[name]
        metrics = quality_metrics(
            silver=job.lake.read(table),
            quarantine=job.lake.read(QUARANTINE).where(F.col("source") == name),
            manifest=job.lake.read(INGEST_MANIFEST).where(F.col("source") == name),
            spec=specs[name],
            table=table,
            run_id=job.ctx.run_id,
        )
        job.run.wrote(job.lake.merge(DATA_QUALITY, metrics))
