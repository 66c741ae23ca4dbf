"""All Delta Lake I/O: creating databases and tables, reading, and idempotent writes.

Pure transformations in ``cradle`` never read or write; stages hand DataFrames to the
functions here. Every write is idempotent: a MERGE on the table's business keys, a
``replaceWhere`` on the run's partition, or a full overwrite for small derived tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cradle.catalog import LAYERS, TABLES, Table
from cradle.config import join_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    table: str
    operation: str
    rows_written: int


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

    def ensure_all(self) -> None:
        self.ensure_databases()
        for table in TABLES.values():
            self.ensure(table)

    # --- reading ----------------------------------------------------------------------

    def read(self, table: Table) -> DataFrame:
        self.ensure(table)
        return self.spark.read.format("delta").load(self.path(table))

    def exists(self, table: Table) -> bool:
        return DeltaTable.isDeltaTable(self.spark, self.path(table))

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
        self.conform(table, rows).write.format("delta").mode("overwrite").save(self.path(table))
        return self._result(table)

    def replace_where(self, table: Table, rows: DataFrame, condition: str) -> WriteResult:
        """Replace exactly the rows matching ``condition`` (e.g. the run's partition)."""
        self.ensure(table)
        (
            self.conform(table, rows)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", condition)
            .save(self.path(table))
        )
        return self._result(table)

    def merge(
        self,
        table: Table,
        rows: DataFrame,
        keys: tuple[str, ...] | None = None,
        update_when: Column | str | None = None,
    ) -> WriteResult:
        """Upsert ``rows`` on ``keys`` (default: the table's keys).

        ``rows`` must be unique on the keys; a duplicate would make MERGE ambiguous, so it
        is an error here rather than a silently arbitrary winner.
        """
        self.ensure(table)
        keys = keys or table.keys
        rows = self.conform(table, rows)
        dupes = rows.groupBy(*keys).count().where(F.col("count") > 1).limit(1).collect()
        if dupes:
            raise ValueError(f"{table.qualified_name}: merge source not unique on {keys}: {dupes[0]}")
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        builder = DeltaTable.forPath(self.spark, self.path(table)).alias("t").merge(rows.alias("s"), on)
        builder = (
            builder.whenMatchedUpdateAll(condition=update_when)
            if update_when is not None
            else builder.whenMatchedUpdateAll()
        )
        builder.whenNotMatchedInsertAll().execute()
        return self._result(table)

    def append(self, table: Table, rows: DataFrame) -> WriteResult:
        """Append (only for event logs such as run records, where each attempt is a fact)."""
        self.ensure(table)
        self.conform(table, rows).write.format("delta").mode("append").save(self.path(table))
        return self._result(table)

    def _result(self, table: Table) -> WriteResult:
        last = DeltaTable.forPath(self.spark, self.path(table)).history(1).collect()[0]
        metrics = last["operationMetrics"] or {}
        if last["operation"] == "MERGE":
            written = int(metrics.get("numTargetRowsInserted", 0)) + int(
                metrics.get("numTargetRowsUpdated", 0)
            )
        else:
            written = int(metrics.get("numOutputRows", 0))
        log.info("%s: %s wrote %d rows", table.qualified_name, last["operation"], written)
        return WriteResult(table.qualified_name, last["operation"], written)
