"""The ingest stage: ``cradle run ingest --run-date D``.

One run, in two halves.

**Check** (nothing is published): list the files delivered up to D that the manifest has
not seen and plan them (``plan.py``); parse them once into an encrypted staging copy
(``receive``); then type and validate every record once, flag the duplicates against
silver, and persist that one result under the attempt's staging folder
(``check_source``). Bronze, quarantine, silver, the event dates written and the
accounting all derive from it. Every file must balance: rows read (counted from the
parse) = accepted + quarantined + duplicates (counted from the checked rows). When one
does not, ``AccountingError`` is raised before the first write and no table changes.

**Publish**: bronze and quarantine (appended; replaced only for the files a correction
replaces); each source's silver rows (appended when none of their keys is in silver yet,
else MERGEd with the batch's event dates in the condition, so only those partitions are
scanned); the manifest in one MERGE (the run's files and the files they supersede); the
event dates written; data health for the (table, day) pairs the run touched.

Assumption behind the partition-limited MERGE: a business key's event date does not
change (an order is paid once). A corrected file that moves rows to other days is handled
exactly, because the replaced file's rows are deleted first.

A re-run finds nothing new and changes nothing. A killed attempt is rolled back by the
next run (``cradle.runs``); ``fault_point`` marks where the fault-injection tests kill it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
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
from cradle.ingest.validate import (
    check_rules,
    personal_fields,
    raw_value,
    region_lookups,
    to_silver,
    typed_value,
    with_typed,
)
from cradle.privacy import (
    MOBILE_IN_TEXT,
    Keys,
    decrypt,
    encrypt,
    half_width,
    load_keys,
    mask_text,
    mask_text_str,
)
from cradle.runs import Job, fault_point
from cradle.sources import SourceSpec, load_regions, load_sources

log = logging.getLogger(__name__)

COUNTS = ("rows_read", "accepted", "quarantined", "duplicates")
# Bronze columns, carried through the checked rows so bronze derives from them too.
BRONZE = (
    "source",
    "delivery_date",
    "file",
    "logical_file",
    "file_version",
    "file_checksum",
    "line",
    "raw_enc",
    "fields",
    "parse_error",
)
# Marks a bronze field value stored encrypted because it held a mobile.
ENCRYPTED_PREFIX = "enc:"


class AccountingError(RuntimeError):
    """Rows read do not equal rows accepted + quarantined + duplicates for some file."""


def sql_list(values: list[str] | set[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values)) or "NULL"


def delivery_day(file: str) -> date | None:
    """The delivery date in a landing-relative path ``<source>/<YYYY-MM-DD>/<name>``."""
    try:
        return date.fromisoformat(file.split("/")[1])
    except (IndexError, ValueError):
        return None


def mask_preview(raw: Column) -> Column:
    """A human-readable preview of a quarantined line with personal data masked:
    mobiles in any format, digit runs (cards) and all but the first of each run of
    Chinese characters."""
    return F.regexp_replace(mask_text(raw), r"(?<=[\u4e00-\u9fff])[\u4e00-\u9fff]", "*")


@dataclass(frozen=True)
class Batch:
    """The files of one run: every plan, the files read and the earlier files they replace."""

    plans: dict[str, list[FilePlan]]

    @property
    def read(self) -> dict[str, list[FilePlan]]:
        return {s: [p for p in ps if p.is_read] for s, ps in self.plans.items() if any(p.is_read for p in ps)}

    @property
    def replaced(self) -> dict[str, list[str]]:
        return {s: [f for p in ps for f in p.replaces] for s, ps in self.read.items()}

    @property
    def has_replaced(self) -> bool:
        return any(self.replaced.values())

    def scope(self) -> str:
        """The bronze and quarantine rows this run rewrites, with their partition columns."""
        files = [p.file.file for ps in self.read.values() for p in ps] + [
            f for fs in self.replaced.values() for f in fs
        ]
        days = {str(d) for f in files if (d := delivery_day(f)) is not None}
        return (
            f"source IN ({sql_list(set(self.read))}) AND delivery_date IN ({sql_list(days)}) "
            f"AND file IN ({sql_list(set(files))})"
        )

    def delivery_days(self, source: str) -> set[date]:
        """Delivery days whose data health this run changes for ``source``."""
        days = {p.file.delivery_date for p in self.plans.get(source, [])}
        return days | {d for f in self.replaced.get(source, []) if (d := delivery_day(f)) is not None}


@dataclass(frozen=True)
class Survey:
    """What was parsed, counted from the staged parse result alone."""

    rows_read: dict[str, int]  # per file
    event_days: dict[str, list[date]]  # per source: every event date a record names


@dataclass(frozen=True)
class Tally:
    """The checked rows counted: per file, per (source, event date), per source."""

    files: dict[str, dict[str, int]]
    written: dict[str, dict[date, tuple[int, bool]]]  # source -> event date -> (rows, is_late)
    key_in_silver: dict[str, bool]  # source -> some new row's key is already in silver
    accepted: dict[str, int]  # source -> new rows

    def total(self, count: str) -> int:
        return sum(c[count] for c in self.files.values())


def run(job: Job) -> None:
    """Ingest every new landing file up to the run date (see the module docstring)."""
    sources = load_sources().sources
    keys = load_keys(job.env)
    for name, spec in sources.items():
        check_rules(job.spark, name, spec)
    staged, plans = receive(job, sources, keys)
    if not plans:
        log.info("ingest %s: no new files", job.ctx.run_date)
        return
    fault_point("ingest.after_parse")
    batch = Batch(plans)
    tables = silver_tables(sources)
    records = with_lineage(job.spark, staged, batch)
    survey = survey_records(records, {n: sources[n] for n in batch.read}, keys)
    provinces, cities = region_lookups(job.spark, load_regions())
    checked = {
        name: check_source(
            job, sources[name], tables[name], keys, (provinces, cities), records, survey, batch, name
        )
        for name in sorted(batch.read)
    }
    tally = account(checked, survey, batch)  # raises before anything is published
    log.info("ingest %s: %d rows checked, every file balances", job.ctx.run_date, tally.total("rows_read"))
    days = silver_days(job, batch, tables, tally)
    publish(job, batch, checked, tally, sources, tables, days, keys)
    report(job, batch, tally)


def with_lineage(spark: SparkSession, staged: DataFrame, batch: Batch) -> DataFrame:
    """The staged records of the files read, with each file's lineage and file-level error."""
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
            for source, ps in batch.read.items()
            for p in ps
        ],
        "path string, source string, file string, logical_file string, file_version int, delivery_date date, "
        "file_checksum string, file_error string",
    )
    return (
        staged.where(F.col("kind") == "record")
        .join(F.broadcast(plan_rows), on="path", how="inner")
        .withColumnRenamed("error", "parse_error")
    )


def event_day(sources: dict[str, SourceSpec], keys: Keys) -> Column:
    """A record's event date, typed from its event-time field alone (null when unreadable)."""
    day = F.lit(None).cast("date")
    for name, spec in sources.items():
        if spec.event_time:
            field = spec.fields[spec.event_time]
            typed = typed_value(raw_value(spec.event_time, field, keys), field)
            day = F.when(F.col("source") == name, F.to_date(typed)).otherwise(day)
    return day


def survey_records(records: DataFrame, sources: dict[str, SourceSpec], keys: Keys) -> Survey:
    """Rows read per file and the event dates named per source, in one job over staging."""
    counts = records.groupBy("source", "file", event_day(sources, keys).alias("day")).count().collect()
    rows_read: dict[str, int] = defaultdict(int)
    days: dict[str, set[date]] = defaultdict(set)
    for r in counts:
        rows_read[r["file"]] += r["count"]
        if r["day"] is not None:
            days[r["source"]].add(r["day"])
    return Survey(dict(rows_read), {s: sorted(d) for s, d in days.items()})


def check_source(
    job: Job,
    spec: SourceSpec,
    table: Table,
    keys: Keys,
    regions: tuple[DataFrame, DataFrame],
    records: DataFrame,
    survey: Survey,
    batch: Batch,
    name: str,
) -> DataFrame:
    """One source's records typed, validated and flagged once, persisted in staging.

    Each row keeps its bronze columns, its ``_reasons`` (empty: accepted), its silver
    columns and flags: ``_accepted``; ``_is_duplicate`` (the same key and content is
    earlier in the batch or already in silver); ``_is_new`` (accepted, not a duplicate);
    ``_is_newest`` (the newest new row of its key: what silver receives); ``_key_exists``
    (the key is in silver already, so the write must be a MERGE).
    """
    typed = with_typed(records.where(F.col("source") == name), spec, keys, name, keep=BRONZE)
    silver = to_silver(typed, spec, table, keys, *regions, job.ctx.run_id, keep=(*BRONZE, "_reasons"))

    # Silver as it will be when this run writes: without the rows of replaced files, and
    # only the partitions the batch names.
    existing = job.lake.read(table)
    if batch.replaced[name]:
        existing = existing.where(~F.col("_file").isin(batch.replaced[name]))
    if "event_date" in table.partition_by:
        existing = existing.where(F.col("event_date").isin(survey.event_days.get(name, [])))
    existing = existing.select(*table.keys, F.col("_row_hash").alias("_silver_hash"))

    first_copy = F.row_number().over(
        Window.partitionBy("_accepted", *table.keys, "_row_hash").orderBy("_version")
    )
    newest = F.row_number().over(Window.partitionBy("_is_new", *table.keys).orderBy(F.col("_version").desc()))
    same_in_silver = F.coalesce(F.col("_silver_hash") == F.col("_row_hash"), F.lit(False))
    path = join_uri(job.staging, "checked", name)
    (
        silver.withColumn("_accepted", F.size("_reasons") == 0)
        .join(existing, on=list(table.keys), how="left")
        .withColumn("_is_duplicate", F.col("_accepted") & ((first_copy > 1) | same_in_silver))
        .withColumn("_is_new", F.col("_accepted") & ~F.col("_is_duplicate"))
        .withColumn("_is_newest", F.col("_is_new") & (newest == 1))
        .withColumn("_key_exists", F.col("_silver_hash").isNotNull())
        .drop("_silver_hash")
        .write.mode("overwrite")
        .parquet(path)
    )
    return job.spark.read.parquet(path)


def account(checked: dict[str, DataFrame], survey: Survey, batch: Batch) -> Tally:
    """Count the checked rows in one job and check every file balances (else raise)."""
    parts = [
        frame.select(
            F.lit(name).alias("source"),
            "file",
            (F.col("event_date") if "event_date" in frame.columns else F.lit(None).cast("date")).alias("day"),
            "delivery_date",
            "_accepted",
            "_is_duplicate",
            "_is_new",
            "_is_newest",
            "_key_exists",
        )
        for name, frame in checked.items()
    ]
    rows = (
        reduce(DataFrame.unionByName, parts)
        .groupBy("source", "file", "day")
        .agg(
            F.count(F.when(~F.col("_accepted"), 1)).alias("quarantined"),
            F.count(F.when(F.col("_is_duplicate"), 1)).alias("duplicates"),
            F.count(F.when(F.col("_is_new"), 1)).alias("accepted"),
            F.count(F.when(F.col("_is_new") & (F.col("day") < F.col("delivery_date")), 1)).alias("late"),
            F.count(F.when(F.col("_is_newest") & F.col("_key_exists"), 1)).alias("keys_in_silver"),
        )
        .collect()
        if parts
        else []
    )
    files = {p.file.file: dict.fromkeys(COUNTS, 0) for ps in batch.read.values() for p in ps}
    written: dict[str, dict[date, tuple[int, bool]]] = defaultdict(dict)
    key_in_silver: dict[str, bool] = defaultdict(bool)
    accepted: dict[str, int] = defaultdict(int)
    for r in rows:
        for count in ("accepted", "quarantined", "duplicates"):
            files[r["file"]][count] += r[count]
        if r["accepted"] and r["day"] is not None:
            before, late = written[r["source"]].get(r["day"], (0, False))
            written[r["source"]][r["day"]] = (before + r["accepted"], late or r["late"] > 0)
        key_in_silver[r["source"]] |= r["keys_in_silver"] > 0
        accepted[r["source"]] += r["accepted"]
    for file, counts in files.items():
        counts["rows_read"] = survey.rows_read.get(file, 0)
    broken = {
        f: c for f, c in files.items() if c["rows_read"] != c["accepted"] + c["quarantined"] + c["duplicates"]
    }
    if broken:
        raise AccountingError(
            f"rows read != accepted + quarantined + duplicates for {len(broken)} file(s), nothing was "
            f"published: {broken}"
        )
    return Tally(files, dict(written), dict(key_in_silver), dict(accepted))


def silver_days(job: Job, batch: Batch, tables: dict[str, Table], tally: Tally) -> dict[str, set[date]]:
    """Per source, the silver days (event date, else delivery date) this run changes: the
    days it writes and the days of the rows its corrections will delete (read now, before
    they are deleted)."""
    days: dict[str, set[date]] = {}
    for name in batch.plans:
        table = tables[name]
        if "event_date" not in table.schema.names:
            days[name] = batch.delivery_days(name)
            continue
        days[name] = set(tally.written.get(name, {}))
        if batch.replaced.get(name):
            gone = job.lake.read(table).where(F.col("_file").isin(batch.replaced[name]))
            days[name] |= {r["event_date"] for r in gone.select("event_date").distinct().collect()}
    return days


# --- publish -------------------------------------------------------------------------------


def publish(
    job: Job,
    batch: Batch,
    checked: dict[str, DataFrame],
    tally: Tally,
    sources: dict[str, SourceSpec],
    tables: dict[str, Table],
    days: dict[str, set[date]],
    keys: Keys,
) -> None:
    """Write every table from the checked rows, in an order a crash can be rolled back from."""
    write_bronze(job, batch, checked, tally, sources, keys)
    write_quarantine(job, batch, checked, tally, keys)
    for name in sorted(checked):
        write_silver(job, tables[name], checked[name], tally, batch.replaced[name], name)
        fault_point("ingest.between_silver_merges")
    fault_point("ingest.before_manifest")
    write_manifest(job, batch, tally)
    write_partitions(job, tally)
    write_quality(job, batch, sources, tables, days)


def append_or_replace(job: Job, table: Table, rows: DataFrame, batch: Batch, has_rows: bool) -> None:
    """Rows of files the manifest has not seen are new by construction: appended. Only a
    correction, whose replaced files' rows must go, needs ``replaceWhere``."""
    if batch.has_replaced:
        job.run.wrote(job.lake.replace_where(table, rows, batch.scope()))
    elif has_rows:
        job.run.wrote(job.lake.append(table, rows))


def protected_fields(fields: Column, personal: list[str], key: bytes) -> Column:
    """Bronze fields with every non-personal value holding a mobile encrypted (``enc:`` and
    ciphertext); personal fields arrive encrypted from the parse."""
    return F.transform_values(
        fields,
        lambda k, v: F.when(
            ~k.isin(*personal) & half_width(v).rlike(MOBILE_IN_TEXT),
            F.concat(F.lit(ENCRYPTED_PREFIX), encrypt(v, key)),
        ).otherwise(v),
    )


def write_bronze(
    job: Job,
    batch: Batch,
    checked: dict[str, DataFrame],
    tally: Tally,
    sources: dict[str, SourceSpec],
    keys: Keys,
) -> None:
    """Every line of the files read, as delivered (encrypted), with lineage."""
    bronze = reduce(
        DataFrame.unionByName,
        [
            frame.select(
                *(c for c in BRONZE if c not in ("fields", "parse_error")),
                protected_fields(F.col("fields"), personal_fields(sources[name]), keys.encryption_key).alias(
                    "fields"
                ),
                mask_text(F.col("parse_error")).alias("parse_error"),
                F.lit(job.ctx.run_id).alias("ingest_run_id"),
            )
            for name, frame in checked.items()
        ],
    )
    append_or_replace(job, LANDED_RECORDS, bronze, batch, tally.total("rows_read") > 0)


def write_quarantine(job: Job, batch: Batch, checked: dict[str, DataFrame], tally: Tally, keys: Keys) -> None:
    """Rejected lines with their reasons; reasons and preview masked, the line encrypted."""
    quarantine = reduce(
        DataFrame.unionByName,
        [
            frame.where(~F.col("_accepted")).select(
                "source",
                "delivery_date",
                "file",
                "line",
                mask_text(F.col("_reasons")[0]).alias("reason"),
                F.transform("_reasons", mask_text).alias("reasons"),
                mask_preview(decrypt(F.col("raw_enc"), keys.encryption_key)).alias("raw_masked"),
                "raw_enc",
                F.lit(job.ctx.run_id).alias("ingest_run_id"),
            )
            for frame in checked.values()
        ],
    )
    append_or_replace(job, QUARANTINE, quarantine, batch, tally.total("quarantined") > 0)


def write_silver(
    job: Job, table: Table, checked: DataFrame, tally: Tally, replaced: list[str], name: str
) -> None:
    """Remove what replaced files contributed, then write the newest new row per key:
    appended when no key is in silver yet, else MERGEd within the batch's event dates."""
    lake = job.lake
    if replaced:
        job.run.wrote(lake.delete_where(table, F.col("_file").isin(replaced)))
    if not tally.accepted.get(name):
        return
    rows = checked.where(F.col("_is_newest"))
    if not tally.key_in_silver.get(name):
        job.run.wrote(lake.append(table, rows))
        return
    target = None
    if "event_date" in table.partition_by:
        target = f"t.event_date IN ({sql_list({str(d) for d in tally.written.get(name, {})})})"
    job.run.wrote(lake.merge(table, rows, update_when="s._version > t._version", target_filter=target))


def write_manifest(job: Job, batch: Batch, tally: Tally) -> None:
    """One MERGE: a row per new file (every status), and the files they supersede marked."""
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
            "modified": p.file.modified,
            "encoding": p.file.encoding,
            "status": p.status,
            "reason": mask_text_str(p.reason) if p.reason else None,
            # A file without its header line has data where the column names should be.
            "columns": [mask_text_str(c) for c in p.file.header] if p.file.header else None,
            "extra_columns": [mask_text_str(c) for c in p.extra_columns],
            "rows_read": tally.files.get(p.file.file, {}).get("rows_read", 0),
            "rows_accepted": tally.files.get(p.file.file, {}).get("accepted", 0),
            "rows_quarantined": tally.files.get(p.file.file, {}).get("quarantined", 0),
            "rows_duplicate": tally.files.get(p.file.file, {}).get("duplicates", 0),
            "ingest_run_id": job.ctx.run_id,
            "ingested_at": now,
        }
        for source, ps in batch.plans.items()
        for p in ps
    ]
    superseded = job.spark.createDataFrame(
        [
            (source, old, "superseded", f"replaced by {p.file.file}")
            for source, ps in batch.plans.items()
            for p in ps
            for old in p.replaces
        ],
        "source string, file string, status string, reason string",
    )
    job.run.wrote(
        job.lake.merge_with_patches(
            INGEST_MANIFEST,
            job.spark.createDataFrame(rows, INGEST_MANIFEST.schema),
            superseded,
            patch_on=("source", "file"),
        )
    )


def write_partitions(job: Job, tally: Tally) -> None:
    """The event dates this run wrote, per source (new by construction: keyed by run id)."""
    rows = [
        (job.ctx.run_id, job.ctx.run_date, source, day, n, late)
        for source, by_day in sorted(tally.written.items())
        for day, (n, late) in sorted(by_day.items())
    ]
    if rows:
        job.run.wrote(
            job.lake.append(INGEST_PARTITIONS, job.spark.createDataFrame(rows, INGEST_PARTITIONS.schema))
        )


def write_quality(
    job: Job,
    batch: Batch,
    sources: dict[str, SourceSpec],
    tables: dict[str, Table],
    days: dict[str, set[date]],
) -> None:
    """Data health recomputed only for the (table, day) pairs this run touched."""
    lake = job.lake
    quarantine, manifest = lake.read(QUARANTINE), lake.read(INGEST_MANIFEST)
    metrics = []
    for name in sorted(batch.plans):
        table, spec = tables[name], sources[name]
        day = F.col("event_date") if spec.has_event_date else F.col("_delivery_date")
        delivered = [str(d) for d in batch.delivery_days(name)]
        in_days = F.col("delivery_date").isin(delivered)
        metrics.append(
            quality_metrics(
                silver=lake.read(table).where(day.isin([str(d) for d in days.get(name, set())])),
                quarantine=quarantine.where((F.col("source") == name) & in_days),
                manifest=manifest.where((F.col("source") == name) & in_days),
                spec=spec,
                table=table,
                run_id=job.ctx.run_id,
            )
        )
    if metrics:
        names = sql_list({tables[n].qualified_name for n in batch.plans})
        job.run.wrote(
            lake.merge(
                DATA_QUALITY,
                reduce(DataFrame.unionByName, metrics),
                target_filter=f"t.table_name IN ({names})",
            )
        )


def report(job: Job, batch: Batch, tally: Tally) -> None:
    total = {k: tally.total(k) for k in COUNTS}
    files = sum(map(len, batch.plans.values()))
    job.run.read("landing", total["rows_read"])
    job.run.detail("files", files)
    for key, value in total.items():
        job.run.detail(key, value)
    log.info(
        "ingest %s: %d files, %d rows read, %d accepted, %d quarantined, %d duplicates",
        job.ctx.run_date,
        files,
        *(total[k] for k in COUNTS),
    )
