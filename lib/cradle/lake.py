"""All Delta Lake and lake file-system I/O: creating tables, reading, idempotent writes,
table versions (for crash recovery) and maintenance.

Pure transformations in ``cradle`` never read or write; stages hand DataFrames to the
functions here. Every write is idempotent: a MERGE on the table's business keys, a
``replaceWhere`` on the run's partition, or a full overwrite for small derived tables.
Reading never creates anything: a table that does not exist yet reads as an empty frame
with its schema.

Rows written are taken from the commit the write itself made (MERGE returns its metrics;
other writes are read from their own commit in the Delta log), never from whatever
commit happens to be the table's latest: a MERGE that changes nothing commits nothing and
reports 0.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cradle.catalog import LAYERS, Table
from cradle.config import join_uri

log = logging.getLogger(__name__)

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


@dataclass(frozen=True)
class WriteResult:
    table: str
    operation: str
    rows_written: int


# --- the lake's file system (any Hadoop-compatible URI) ------------------------------------


def hadoop_fs(spark: SparkSession, path: str) -> tuple[object, object]:
    """The Hadoop (Path, FileSystem) for ``path``: Hadoop FS has no Python API."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def path_exists(spark: SparkSession, path: str) -> bool:
    hpath, fs = hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def delete_path(spark: SparkSession, path: str) -> None:
    hpath, fs = hadoop_fs(spark, path)
    fs.delete(hpath, True)


def list_names(spark: SparkSession, path: str) -> list[str]:
    """Names of the entries directly under ``path`` (empty when it does not exist)."""
    hpath, fs = hadoop_fs(spark, path)
    if not fs.exists(hpath):
        return []
    return [status.getPath().getName() for status in fs.listStatus(hpath)]


def read_text(spark: SparkSession, path: str) -> str:
    hpath, fs = hadoop_fs(spark, path)
    stream = fs.open(hpath)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_text(spark: SparkSession, path: str, text: str, overwrite: bool = True) -> bool:
    """Write a small text file; with ``overwrite=False`` the create is exclusive and returns
    False when the file already exists (atomic on local disk and HDFS)."""
    hpath, fs = hadoop_fs(spark, path)
    try:
        stream = fs.create(hpath, overwrite)
    except Exception as err:  # py4j wraps FileAlreadyExistsException
        if not overwrite and "FileAlreadyExists" in str(err):
            return False
        raise
    try:
        stream.write(bytearray(text.encode("utf-8")))  # py4j passes bytearray as byte[]
    finally:
        stream.close()
    return True


class Lake:
    """The lakehouse at ``root``: one Delta folder per table, one database per layer."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.spark = spark
        self.root = root.rstrip("/")
        self._ensured: set[str] = set()  # metastore round trips are slow; do each once

    def path(self, table: Table) -> str:
        return join_uri(self.root, table.layer, table.name)

    # --- creation ---------------------------------------------------------------------

    def ensure_databases(self) -> None:
        for layer in LAYERS:
            location = join_uri(self.root, layer)
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS cradle_{layer} LOCATION '{location}'")

    def ensure(self, table: Table) -> None:
        """Create the table (and its database) if missing; registering an existing Delta
        folder again is harmless, so a fresh metastore picks up an existing lake."""
        if table.qualified_name in self._ensured:
            return
        self.spark.sql(
            f"CREATE DATABASE IF NOT EXISTS {table.database} LOCATION '{join_uri(self.root, table.layer)}'"
        )
        (
            DeltaTable.createIfNotExists(self.spark)
            .tableName(table.qualified_name)
            .addColumns(table.schema)
            .partitionedBy(*table.partition_by)
            .location(self.path(table))
            .comment(table.description)
            .execute()
        )
        self._ensured.add(table.qualified_name)

    def ensure_all(self, tables: Iterable[Table]) -> None:
        self.ensure_databases()
        for table in tables:
            self.ensure(table)

    # --- reading ----------------------------------------------------------------------

    def exists(self, table: Table) -> bool:
        """Whether the table has a Delta log (a file-system check; no Spark job)."""
        return self.version(table) is not None

    def read(self, table: Table) -> DataFrame:
        """The table's current rows; an empty frame with its schema if it does not exist yet."""
        if not self.exists(table):
            return self.spark.createDataFrame([], table.schema)
        return self.spark.read.format("delta").load(self.path(table))

    def version(self, table: Table) -> int | None:
        """The table's latest committed version, from its Delta log listing; None if absent."""
        versions = [
            int(m.group(1))
            for name in list_names(self.spark, join_uri(self.path(table), "_delta_log"))
            if (m := COMMIT_FILE.match(name))
        ]
        return max(versions) if versions else None

    def commit_info(self, table: Table, version: int) -> dict:
        """The ``commitInfo`` action of one commit (operation and its metrics)."""
        text = read_text(self.spark, join_uri(self.path(table), "_delta_log", f"{version:020d}.json"))
        for line in text.splitlines():
            action = json.loads(line) if line.strip() else {}
            if "commitInfo" in action:
                return action["commitInfo"]
        return {}

    # --- writing ----------------------------------------------------------------------

    def conform(self, table: Table, rows: DataFrame) -> DataFrame:
        """Select the table's columns in order and cast to its schema; fail on missing ones."""
        missing = [f.name for f in table.schema if f.name not in rows.columns]
        if missing:
            raise ValueError(f"{table.qualified_name}: rows lack columns {missing}")
        return rows.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in table.schema])

    def overwrite(self, table: Table, rows: DataFrame) -> WriteResult:
        """Replace the whole table (small derived tables only)."""
        self.ensure(table)
        before = self.version(table)
        self.conform(table, rows).write.format("delta").mode("overwrite").save(self.path(table))
        return self._written(table, before)

    def replace_where(self, table: Table, rows: DataFrame, condition: str) -> WriteResult:
        """Replace exactly the rows matching ``condition`` (e.g. the run's partition)."""
        self.ensure(table)
        before = self.version(table)
        (
            self.conform(table, rows)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", condition)
            .save(self.path(table))
        )
        return self._written(table, before)

    def merge(
        self,
        table: Table,
        rows: DataFrame,
        keys: tuple[str, ...] | None = None,
        update_when: Column | str | None = None,
        target_filter: str | None = None,
    ) -> WriteResult:
        """Upsert ``rows`` on ``keys`` (default: the table's keys).

        ``rows`` must be unique on the keys (the caller guarantees it by construction: a
        duplicate makes Delta's MERGE fail rather than pick an arbitrary winner).
        ``target_filter`` is a SQL condition on the target (``t.``) that every matching
        row satisfies, e.g. the batch's partitions, so the MERGE scans only those.
        """
        self.ensure(table)
        keys = keys or table.keys
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        if target_filter:
            on = f"({target_filter}) AND {on}"
        builder = (
            DeltaTable.forPath(self.spark, self.path(table))
            .alias("t")
            .merge(self.conform(table, rows).alias("s"), on)
        )
        builder = (
            builder.whenMatchedUpdateAll(condition=update_when)
            if update_when is not None
            else builder.whenMatchedUpdateAll()
        )
        metrics = builder.whenNotMatchedInsertAll().execute().first()
        written = int(metrics["num_updated_rows"]) + int(metrics["num_inserted_rows"]) if metrics else 0
        log.info("%s: MERGE wrote %d rows", table.qualified_name, written)
        return WriteResult(table.qualified_name, "MERGE", written)

    def merge_with_patches(
        self,
        table: Table,
        rows: DataFrame,
        patches: DataFrame,
        patch_on: tuple[str, ...],
        target_filter: str | None = None,
    ) -> WriteResult:
        """Upsert ``rows`` on the table's keys and, in the same commit, update existing rows
        matching ``patches`` on ``patch_on`` with the patches' other columns (never inserting).

        One MERGE instead of two: the ingest manifest records a run's files and marks the
        files they replace ``superseded`` in a single commit. ``patch_on`` must be among
        the table's keys.
        """
        if not set(patch_on) <= set(table.keys):
            raise ValueError(
                f"{table.qualified_name}: patch_on {patch_on} must be among the keys {table.keys}"
            )
        self.ensure(table)
        names = [f.name for f in table.schema]
        patched = [c for c in patches.columns if c not in patch_on]
        source = (
            self.conform(table, rows)
            .withColumn("_patch", F.lit(False))
            .unionByName(
                patches.select(
                    *(
                        (F.col(f.name) if f.name in patches.columns else F.lit(None))
                        .cast(f.dataType)
                        .alias(f.name)
                        for f in table.schema
                    ),
                    F.lit(True).alias("_patch"),
                )
            )
        )
        # Equality on ``patch_on`` (a prefix of the keys) for every row keeps it an equi-join.
        by_patch = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in patch_on)
        rest = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in table.keys if k not in patch_on) or "TRUE"
        on = f"{by_patch} AND (s._patch OR ({rest}))"
        if target_filter:
            on = f"({target_filter}) AND ({on})"
        metrics = (
            DeltaTable.forPath(self.spark, self.path(table))
            .alias("t")
            .merge(source.alias("s"), on)
            .whenMatchedUpdate(condition="s._patch", set={c: f"s.`{c}`" for c in patched})
            .whenMatchedUpdate(condition="NOT s._patch", set={c: f"s.`{c}`" for c in names})
            .whenNotMatchedInsert(condition="NOT s._patch", values={c: f"s.`{c}`" for c in names})
            .execute()
            .first()
        )
        written = int(metrics["num_updated_rows"]) + int(metrics["num_inserted_rows"]) if metrics else 0
        log.info("%s: MERGE wrote %d rows", table.qualified_name, written)
        return WriteResult(table.qualified_name, "MERGE", written)

    def append(self, table: Table, rows: DataFrame) -> WriteResult:
        """Append (event logs such as run records, and rows new by construction)."""
        self.ensure(table)
        before = self.version(table)
        self.conform(table, rows).write.format("delta").mode("append").save(self.path(table))
        return self._written(table, before)

    def delete_where(self, table: Table, condition: Column | str) -> WriteResult:
        """Delete the rows matching ``condition``."""
        if not self.exists(table):
            return WriteResult(table.qualified_name, "DELETE", 0)
        before = self.version(table)
        DeltaTable.forPath(self.spark, self.path(table)).delete(condition)
        return self._written(table, before)

    # --- maintenance (``cradle maintain``) ---------------------------------------------

    def files(self, table: Table) -> tuple[int, int]:
        """(number of data files, bytes) of the table's current version."""
        row = DeltaTable.forPath(self.spark, self.path(table)).detail().first()
        return int(row["numFiles"] or 0), int(row["sizeInBytes"] or 0)

    def optimize(self, table: Table) -> tuple[int, int]:
        """Compact small files (bin-packing, per partition); returns (files removed, added)."""
        metrics = DeltaTable.forPath(self.spark, self.path(table)).optimize().executeCompaction().first()
        got = metrics["metrics"] if metrics else None
        return (int(got["numFilesRemoved"]), int(got["numFilesAdded"])) if got else (0, 0)

    def vacuum(self, table: Table, retention_hours: float, dry_run: bool) -> list[str]:
        """Files no version younger than ``retention_hours`` needs: listed (``dry_run``) or
        deleted. Returns their paths either way."""
        path = self.path(table).replace("`", "``")
        hours = float(retention_hours)
        files = [
            str(r[0]) for r in self.spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS DRY RUN").collect()
        ]
        if not dry_run and files:
            self.spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS")
        return files

    def restore(self, table: Table, version: int) -> None:
        """Roll the table back to ``version`` (crash recovery; see cradle.runs)."""
        self.spark.sql(f"RESTORE TABLE delta.`{self.path(table)}` TO VERSION AS OF {int(version)}")

    def _written(self, table: Table, before: int | None) -> WriteResult:
        """Rows written by the commits made since ``before`` (this write's own commits)."""
        after = self.version(table)
        operation, written = "NONE", 0
        first = -1 if before is None else before
        for version in range((first + 1), (after if after is not None else first) + 1):
            info = self.commit_info(table, version)
            operation = info.get("operation", operation)
            metrics = info.get("operationMetrics") or {}
            written += int(metrics.get("numOutputRows", 0) or 0)
        log.info("%s: %s wrote %d rows", table.qualified_name, operation, written)
        return WriteResult(table.qualified_name, operation, written)
