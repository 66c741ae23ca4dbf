"""Receiving a run's deliveries: list the landing area, find what is new, parse it once
into an encrypted staging copy, and plan every new entry (``plan.py``).

The first half of ``cradle run ingest``; ``stage.py`` validates and publishes what this
returns. Every delivered entry that matches a source and is new gets exactly one plan, so
the manifest has a row for it: folders and dangling symlinks are ``skipped``, files with
no records ``empty``.

An entry is new unless the manifest holds the same (source, file, size, modification
time): bytes rewritten in place with the same size are a new version of that file. Rows
written before the manifest carried modification times fall back to "not modified since
it was ingested".
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.catalog import INGEST_MANIFEST
from cradle.config import join_uri
from cradle.ingest.landing import Entry, list_landing, matches, parse_files
from cradle.ingest.parse import detect_encoding
from cradle.ingest.plan import DeliveredFile, FilePlan, KnownFile, plan_files
from cradle.ingest.validate import personal_fields
from cradle.privacy import Keys, encrypt
from cradle.runs import Job
from cradle.sources import SourceSpec

log = logging.getLogger(__name__)


def relative(path: str, landing_root: str) -> str:
    root = landing_root.rstrip("/").removeprefix("file:")
    return path.removeprefix("file:").removeprefix(root).lstrip("/")


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def is_known(entry: Entry, known: list[dict]) -> bool:
    """Whether the manifest rows of this entry's file hold it as it is now (module doc)."""
    for row in known:
        if not entry.regular:
            if row["status"] == "skipped":
                return True
            continue
        if row["size"] != entry.size or row["status"] == "skipped":
            continue
        modified = epoch_ms(row["modified"])
        if modified is not None and modified == entry.modified_ms:
            return True
        ingested = epoch_ms(row["ingested_at"])
        if modified is None and None not in (entry.modified_ms, ingested) and entry.modified_ms <= ingested:
            return True
    return False


def receive(
    job: Job, sources: dict[str, SourceSpec], keys: Keys
) -> tuple[DataFrame | None, dict[str, list[FilePlan]]]:
    """(staged parse result, plans per source) for the entries delivered up to the run
    date that the manifest has not seen; (None, {}) when there are none."""
    spark, lake, landing, run_date = job.spark, job.lake, job.env.landing_root, job.ctx.run_date
    delivered: dict[str, list[Entry]] = defaultdict(list)
    for entry in list_landing(spark, landing, run_date):
        if entry.source in sources and matches(sources[entry.source].files, entry.name):
            delivered[entry.source].append(entry)
    if not delivered:
        return None, {}
    manifest = lake.read(INGEST_MANIFEST)
    columns = ["source", "file", "logical_file", "checksum", "status", "size", "ingested_at"]
    columns += ["modified"] if "modified" in manifest.columns else []
    known_rows: dict[str, list[dict]] = defaultdict(list)
    for r in manifest.select(*columns).collect():
        row = r.asDict()
        row.setdefault("modified", None)
        known_rows[r["source"]].append(row)
    by_file: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for source, rows in known_rows.items():
        for r in rows:
            by_file[(source, r["file"])].append(r)
    new = {
        source: [e for e in entries if not is_known(e, by_file[(source, relative(e.path, landing))])]
        for source, entries in delivered.items()
    }
    new = {source: entries for source, entries in new.items() if entries}
    if not new:
        return None, {}
    # Spark's file sources skip 0-byte files; they are empty without being read.
    to_read = {
        e.path: sources[s].format for s, entries in new.items() for e in entries if e.regular and e.size
    }
    log.info(
        "ingest %s: %d new entr(ies) from %d source(s), %d file(s) to parse",
        run_date,
        sum(map(len, new.values())),
        len(new),
        len(to_read),
    )

    # Parse every new file once; plain personal data never reaches disk, not even in staging.
    pii = sorted({f for source in new for f in personal_fields(sources[source])})
    fields = (
        F.transform_values(
            "fields", lambda k, v: F.when(k.isin(*pii), encrypt(v, keys.encryption_key)).otherwise(v)
        )
        if pii
        else F.col("fields")
    )
    parse_files(spark, to_read).select(
        "path",
        "kind",
        "line",
        encrypt(F.col("raw"), keys.encryption_key).alias("raw_enc"),
        fields.alias("fields"),
        "error",
        "encoding",
        "checksum",
        "header",
    ).write.mode("overwrite").parquet(join_uri(job.staging, "parsed"))
    staged = spark.read.parquet(join_uri(job.staging, "parsed"))
    meta = {r["path"]: r for r in staged.where(F.col("kind") == "file").drop("fields", "raw_enc").collect()}

    plans: dict[str, list[FilePlan]] = {}
    for source, entries in new.items():
        spec = sources[source]
        files = [delivered_file(e, relative(e.path, landing), meta.get(e.path)) for e in entries]
        known = [
            KnownFile(r["file"], r["logical_file"], r["checksum"], r["status"]) for r in known_rows[source]
        ]
        plans[source] = plan_files(files, known, tuple(spec.fields), spec.required_columns, spec.format)
        log_plans(source, plans[source])
    return staged, plans


def delivered_file(entry: Entry, file: str, meta) -> DeliveredFile:
    if entry.regular and entry.size == 0:
        encoding = detect_encoding(b"")
        meta = {"checksum": hashlib.sha256(b"").hexdigest(), "encoding": encoding, "header": None}
        meta |= {"error": None, "line": 0}
    if meta is None:  # not read: not a regular file
        return DeliveredFile(
            file,
            entry.path,
            entry.delivery_date,
            entry.size,
            "",
            None,
            None,
            None,
            entry.modified,
            regular=False,
        )
    return DeliveredFile(
        file=file,
        path=entry.path,
        delivery_date=entry.delivery_date,
        size=entry.size,
        checksum=meta["checksum"],
        encoding=meta["encoding"],
        header=tuple(meta["header"] or ()) or None,
        error=meta["error"],
        modified=entry.modified,
        records=meta["line"],
        regular=True,
    )


def log_plans(source: str, plans: list[FilePlan]) -> None:
    by_status: dict[str, int] = defaultdict(int)
    for p in plans:
        by_status[p.status] += 1
        # Only what needs a look is logged per file; loaded files are counted.
        level = logging.DEBUG if p.status == "loaded" else logging.INFO
        log.log(level, "%s: %s %s%s", source, p.file.file, p.status, f" ({p.reason})" if p.reason else "")
    log.info("%s: %s", source, ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())))
