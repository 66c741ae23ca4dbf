"""The table catalogue: every Delta table Cradle writes, with its layer, schema, keys
and partitioning. Stages refer to tables only through these objects.

Layers are databases: ``cradle_bronze`` (as delivered, with lineage), ``cradle_silver``
(typed, clean, de-duplicated), ``cradle_gold`` (identity, profiles, segments, audiences)
and ``cradle_ops`` (run records and data health).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import types as T

Layer = Literal["bronze", "silver", "gold", "ops"]
LAYERS: tuple[Layer, ...] = ("bronze", "silver", "gold", "ops")


@dataclass(frozen=True)
class Table:
    name: str
    layer: Layer
    schema: T.StructType
    keys: tuple[str, ...]
    description: str
    partition_by: tuple[str, ...] = ()
    # Columns that must never hold personal data in plain text (checked by tests).
    protected: tuple[str, ...] = field(default=())

    @property
    def database(self) -> str:
        return f"cradle_{self.layer}"

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def __post_init__(self) -> None:
        names = set(self.schema.fieldNames())
        missing = [c for c in (*self.keys, *self.partition_by) if c not in names]
        if missing:
            raise ValueError(f"table {self.qualified_name}: keys/partitions {missing} not in schema")


def schema(*fields: tuple[str, T.DataType] | tuple[str, T.DataType, bool]) -> T.StructType:
    """Compact StructType: ``schema(("id", T.LongType(), False), ("name", T.StringType()))``."""
    return T.StructType(
        [T.StructField(f[0], f[1], f[2] if len(f) > 2 else True) for f in fields]  # type: ignore[misc]
    )


STR, LONG, INT, DATE, TS, DBL, BOOL = (
    T.StringType(),
    T.LongType(),
    T.IntegerType(),
    T.DateType(),
    T.TimestampType(),
    T.DoubleType(),
    T.BooleanType(),
)

TABLES: dict[str, Table] = {}


def register(table: Table) -> Table:
    if table.qualified_name in TABLES:
        raise ValueError(f"table {table.qualified_name} registered twice")
    TABLES[table.qualified_name] = table
    return table


def table(qualified_name: str) -> Table:
    try:
        return TABLES[qualified_name]
    except KeyError:
        raise KeyError(f"unknown table {qualified_name!r}; known: {', '.join(sorted(TABLES))}") from None


# --- ops -------------------------------------------------------------------------------

JOB_RUNS = register(
    Table(
        name="job_runs",
        layer="ops",
        description="One row per job attempt: what ran, for which date, how it ended.",
        schema=schema(
            ("run_id", STR, False),
            ("job", STR, False),
            ("run_date", DATE),
            ("env", STR),
            ("status", STR, False),
            ("started_at", TS),
            ("ended_at", TS),
            ("duration_s", DBL),
            ("rows_read", T.MapType(STR, LONG)),
            ("rows_written", T.MapType(STR, LONG)),
            ("versions", T.MapType(STR, STR)),
            ("details", T.MapType(STR, STR)),
            ("error", STR),
        ),
        keys=("run_id", "job"),
        partition_by=(),
    )
)

DOCTOR_PROBE = register(
    Table(
        name="doctor_probe",
        layer="ops",
        description="Scratch table `cradle doctor` writes and reads back to prove Delta works.",
        schema=schema(("id", LONG, False), ("label", STR)),
        keys=("id",),
    )
)
