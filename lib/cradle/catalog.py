"""The table catalogue: every Delta table Cradle writes, with its layer, schema, keys
and partitioning. Stages refer to tables only through these objects.

Layers are databases: ``cradle_bronze`` (as delivered, with lineage), ``cradle_silver``
(typed, clean, de-duplicated), ``cradle_gold`` (identity, profiles, segments, audiences)
and ``cradle_ops`` (run records and data health).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
    # Columns that must never hold personal data in plain text: tokens and ciphertext.
    # Enforced for user SQL by cradle.sqlguard: config-written rules never see them (they
    # are dropped from the frames rules read, so not even SELECT * reaches them) and a rule
    # naming one is refused, so no rule can copy them into its output.
    protected: tuple[str, ...] = field(default=())
    # Columns holding sensitive personal information in clear (PIPL Art. 28: data about
    # children under 14, such as a baby's birth or due date). Only the profile stage reads
    # them (into the restricted member_babies); cradle.sqlguard hides them from user SQL
    # exactly like protected columns.
    sensitive: tuple[str, ...] = field(default=())
    # Restricted tables hold sensitive personal information (a child's exact birth date):
    # only the profile stage and privileged roles read them; nothing downstream joins them.
    # Enforced by cradle.sqlguard: user SQL naming one (any spelling) is refused.
    restricted: bool = False

    @property
    def database(self) -> str:
        return f"cradle_{self.layer}"

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def __post_init__(self) -> None:
        all_names = self.schema.fieldNames()
        repeated = sorted({n for n in all_names if all_names.count(n) > 1})
        if repeated:
            raise ValueError(f"table {self.qualified_name}: columns {repeated} appear twice")
        names = set(all_names)
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
        description=(
            "One row per job attempt: what ran, for which date, how it ended (succeeded, failed, "
            "or abandoned: killed mid-stage and rolled back by the next run)."
        ),
        schema=schema(
            ("run_id", STR, False),
            ("job", STR, False),
            ("run_date", DATE),
            ("env", STR),
            ("status", STR, False),
            ("started_at", TS, False),
            ("ended_at", TS),
            ("duration_s", DBL),
            ("rows_read", T.MapType(STR, LONG)),
            ("rows_written", T.MapType(STR, LONG)),
            ("versions", T.MapType(STR, STR)),
            ("details", T.MapType(STR, STR)),
            ("error", STR),
        ),
        keys=("run_id", "job", "started_at"),
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


# --- ingestion ---------------------------------------------------------------------------

LANDED_RECORDS = register(
    Table(
        name="landed_records",
        layer="bronze",
        description=(
            "Every landed line as delivered, with lineage. Personal data is encrypted from here "
            "on: the raw line and personal fields are AES-GCM ciphertext."
        ),
        schema=schema(
            ("source", STR, False),
            ("delivery_date", DATE, False),
            ("file", STR, False),
            ("logical_file", STR, False),
            ("file_version", INT, False),
            ("file_checksum", STR, False),
            ("line", INT, False),
            ("raw_enc", STR),
            ("fields", T.MapType(STR, STR)),
            ("parse_error", STR),
            ("ingest_run_id", STR, False),
        ),
        keys=("source", "file", "line"),
        partition_by=("source", "delivery_date"),
        protected=("raw_enc",),
    )
)

QUARANTINE = register(
    Table(
        name="quarantine",
        layer="bronze",
        description="Rejected lines with the reason; nothing is dropped silently.",
        schema=schema(
            ("source", STR, False),
            ("delivery_date", DATE, False),
            ("file", STR, False),
            ("line", INT, False),
            ("reason", STR, False),
            ("reasons", T.ArrayType(STR)),
            ("raw_masked", STR),
            ("raw_enc", STR),
            ("ingest_run_id", STR, False),
        ),
        keys=("source", "file", "line"),
        partition_by=("source",),
    )
)

INGEST_MANIFEST = register(
    Table(
        name="ingest_manifest",
        layer="ops",
        description="Every landing file seen, once: checksum, status and its row accounting.",
        schema=schema(
            ("source", STR, False),
            ("file", STR, False),
            ("logical_file", STR, False),
            ("file_version", INT, False),
            ("delivery_date", DATE, False),
            ("size", LONG),
            ("modified", TS),  # file modification time: same-size in-place overwrites are new
            ("checksum", STR, False),
            ("encoding", STR),
            ("status", STR, False),
            ("reason", STR),
            ("columns", T.ArrayType(STR)),
            ("extra_columns", T.ArrayType(STR)),
            ("rows_read", LONG),
            ("rows_accepted", LONG),
            ("rows_quarantined", LONG),
            ("rows_duplicate", LONG),
            ("ingest_run_id", STR, False),
            ("ingested_at", TS),
        ),
        keys=("source", "file", "checksum"),
    )
)

INGEST_PARTITIONS = register(
    Table(
        name="ingest_partitions",
        layer="ops",
        description="Event dates each ingest run wrote, so later stages recompute exactly those.",
        schema=schema(
            ("ingest_run_id", STR, False),
            ("run_date", DATE, False),
            ("source", STR, False),
            ("event_date", DATE, False),
            ("rows", LONG),
            ("is_late", BOOL),
        ),
        keys=("ingest_run_id", "source", "event_date"),
    )
)

DATA_QUALITY = register(
    Table(
        name="data_quality",
        layer="ops",
        description=(
            "Data health per table and day: rows, completeness and validity per field, freshness "
            "(delivery lag), quarantined and duplicate rows."
        ),
        schema=schema(
            ("table_name", STR, False),
            ("day", DATE, False),
            ("metric", STR, False),
            ("field", STR, False),
            ("value", DBL),
            ("ingest_run_id", STR),
        ),
        keys=("table_name", "day", "metric", "field"),
    )
)

LINEAGE_COLUMNS = schema(
    ("_file", STR, False),
    ("_line", INT, False),
    ("_delivery_date", DATE, False),
    ("_version", STR, False),
    ("_row_hash", STR, False),
    ("_ingest_run_id", STR, False),
)


def source_columns(field_name: str, field_type: str, spark_type: T.DataType) -> list[T.StructField]:
    """Silver columns for one source field; personal data never appears in plain text."""
    f = field_name
    by_type: dict[str, list[tuple[str, T.DataType]]] = {
        "mobile": [
            (f"{f}_token", STR),
            (f"{f}_md5_token", STR),
            (f"{f}_enc", STR),
            (f"{f}_masked", STR),
            (f"{f}_status", STR),
        ],
        "md5": [(f"{f}_token", STR)],
        "name": [(f"{f}_enc", STR), (f"{f}_masked", STR)],
        "address": [(f"{f}_enc", STR)],
        "province": [(f, STR), (f"{f}_code", STR)],
        "city": [(f, STR), (f"{f}_code", STR), (f"{f}_tier", INT)],
    }
    return [T.StructField(n, t) for n, t in by_type.get(field_type, [(f, spark_type)])]


def source_table(name: str, spec: Any) -> Table:  # spec: cradle.sources.SourceSpec
    """The silver table of a landing source, derived from its entry in conf/sources.yaml."""
    fields: list[T.StructField] = []
    for field_name, field_spec in spec.fields.items():
        derived = source_columns(field_name, field_spec.type, field_spec.spark_type())
        # A delivered field of the same name (stores.city_tier) wins over a derived one.
        fields += [f for f in derived if f.name == field_name or f.name not in spec.fields]
    if spec.has_event_date:
        fields.append(T.StructField("event_date", DATE, False))
    fields += LINEAGE_COLUMNS.fields
    protected = tuple(
        f.name for f in fields if f.name.endswith(("_token", "_enc")) and not f.name.startswith("_")
    )
    return Table(
        name=name,
        layer="silver",
        description=spec.description,
        schema=T.StructType(fields),
        keys=tuple(f"{k}_token" if spec.fields[k].type == "md5" else k for k in spec.key),
        partition_by=("event_date",) if spec.has_event_date and spec.partitioned else (),
        protected=protected,
        sensitive=tuple(n for n, f in spec.fields.items() if f.sensitive),
    )


def silver_tables(sources: Mapping[str, Any]) -> dict[str, Table]:
    """The silver table of every configured source, by source name (pure: registers nothing).

    >>> silver_tables(load_sources().sources)["pos_orders"].keys
    ('order_no', 'line_no')
    """
    return {name: source_table(name, spec) for name, spec in sources.items()}


def all_tables(sources: Mapping[str, Any]) -> dict[str, Table]:
    """Every table Cradle writes, the silver tables of ``sources`` included, by qualified name."""
    return {**TABLES, **{t.qualified_name: t for t in silver_tables(sources).values()}}


# --- identity (OneID) ------------------------------------------------------------------

# Delta does not enforce NOT NULL inside arrays, so the element fields are nullable.
IDENTIFIER_STRUCT = schema(
    ("value_id", LONG),
    ("id_type", STR),
    ("priority", INT),
    ("value", STR),
    ("is_verified", BOOL),
)

IDENTITY_MAP = register(
    Table(
        name="identity_map",
        layer="gold",
        description=(
            "Each source record (source, source_key) -> one_id, with validity: the current row has "
            "valid_to null; a record whose one_id changed keeps its old row, closed on the run date."
        ),
        schema=schema(
            ("source", STR, False),
            ("source_key", STR, False),
            ("record_id", LONG, False),
            ("one_id", STR, False),
            ("valid_from", DATE, False),
            ("valid_to", DATE),
            ("run_id", STR, False),
        ),
        keys=("source", "source_key", "valid_from"),
    )
)

IDENTITY_RECORDS = register(
    Table(
        name="identity_records",
        layer="gold",
        description=(
            "Identity state per record: its identifiers (tokens, never plain values), component "
            "before and cluster after the split guard, and current one_id; lets a daily run "
            "recompute only the components that new identifiers touch."
        ),
        schema=schema(
            ("record_id", LONG, False),
            ("source", STR, False),
            ("source_key", STR, False),
            ("_file", STR),
            ("_line", INT),
            ("identifiers", T.ArrayType(IDENTIFIER_STRUCT, True)),
            ("component", LONG, False),
            ("cluster", LONG, False),
            ("one_id", STR, False),
            ("one_id_since", DATE, False),
            ("run_id", STR, False),
        ),
        keys=("record_id",),
        protected=("identifiers",),
    )
)

IDENTITY_VALUES = register(
    Table(
        name="identity_values",
        layer="gold",
        description="Every identifier value seen: records carrying it, people it joins, link/hub/blocked.",
        schema=schema(
            ("value_id", LONG, False),
            ("id_type", STR, False),
            ("value", STR, False),
            ("records", LONG, False),
            ("persons", LONG, False),
            ("status", STR, False),
            ("reason", STR),
            ("run_id", STR, False),
        ),
        keys=("value_id",),
        protected=("value",),
    )
)

IDENTITY_AUDIT = register(
    Table(
        name="identity_audit",
        layer="gold",
        description="Guard decisions with reasons: blocked values, hubs, split and unresolved components.",
        schema=schema(
            ("run_id", STR, False),
            ("run_date", DATE, False),
            ("decision", STR, False),
            ("id_type", STR, False),
            ("value_id", LONG),
            ("value", STR),
            ("component", LONG),
            ("records", LONG),
            ("persons", LONG),
            ("reason", STR),
        ),
        keys=("run_id", "decision", "id_type", "value_id", "component"),
        protected=("value",),
    )
)

ONE_ID_MERGES = register(
    Table(
        name="one_id_merges",
        layer="gold",
        description=(
            "one_id merges (old id -> surviving id, with the identifier that caused it) and splits "
            "(old id -> id of the piece split off), per run date."
        ),
        schema=schema(
            ("run_date", DATE, False),
            ("run_id", STR, False),
            ("event", STR, False),
            ("old_one_id", STR, False),
            ("one_id", STR, False),
            ("cause_type", STR),
            ("cause_value", STR),
            ("records", LONG),
        ),
        keys=("run_date", "old_one_id", "one_id"),
        protected=("cause_value",),
    )
)

IDENTITY_GRAPH_STATS = register(
    Table(
        name="identity_graph_stats",
        layer="gold",
        description="One row per identity run: scope, components, size distribution, guards, merges, splits.",
        schema=schema(
            ("run_id", STR, False),
            ("run_date", DATE, False),
            ("mode", STR, False),
            ("engine", STR),
            ("algorithm", STR),
            ("ingest_runs", T.ArrayType(STR)),
            ("records", LONG),
            ("records_in_scope", LONG),
            ("values_in_scope", LONG),
            ("components", LONG),
            ("singletons", LONG),
            ("largest", LONG),
            ("size_distribution", T.MapType(STR, LONG)),
            ("merges", LONG),
            ("splits", LONG),
            ("blocked_values", LONG),
            ("hubs", LONG),
            ("split_components", LONG),
            ("unresolved_components", LONG),
            ("seconds", DBL),
        ),
        keys=("run_id",),
    )
)


# --- profiles ------------------------------------------------------------------------------

MEMBER_PROFILE = register(
    Table(
        name="member_profile",
        layer="gold",
        description=(
            "One row per current one_id as of the run date (rewritten each run): geography, mother's "
            "age band, life stage with its source and confidence, formula stage and next-stage date, "
            "journey stage and tier, RFM and value tier, dormancy and churn risk, preferred channel "
            "and store, consent per purpose. Coarse stages only: exact baby dates live in member_babies."
        ),
        schema=schema(
            ("one_id", STR, False),
            ("as_of", DATE, False),
            ("is_member", BOOL),
            ("member_since", DATE),
            ("province", STR),
            ("province_code", STR),
            ("city", STR),
            ("city_code", STR),
            ("city_tier", INT),
            ("region", STR),
            ("mother_age_band", STR),
            ("life_stage", STR),
            ("life_stage_source", STR),
            ("life_stage_confidence", DBL),
            ("has_stated_date", BOOL),
            ("formula_stage", INT),
            ("next_stage_date", DATE),
            ("days_to_next_stage", INT),
            ("journey_stage", STR),
            ("member_tier", STR),
            ("first_purchase_date", DATE),
            ("last_purchase_date", DATE),
            ("orders_365d", LONG),
            ("spend_365d", DBL),
            ("r_score", INT),
            ("f_score", INT),
            ("m_score", INT),
            ("rfm_code", STR),
            ("value_tier", STR),
            ("last_interaction_date", DATE),
            ("days_since_interaction", INT),
            ("is_dormant", BOOL),
            ("churn_risk", STR),
            ("preferred_channel", STR),
            ("preferred_store_id", STR),
            ("consent", T.MapType(STR, BOOL)),
        ),
        keys=("one_id",),
    )
)

MEMBER_BABIES = register(
    Table(
        name="member_babies",
        layer="gold",
        description=(
            "Stated babies per one_id: exact birth date, or the due date of a pending baby, and "
            "where it was stated. Sensitive (children's data): the only table with exact baby dates."
        ),
        schema=schema(
            ("one_id", STR, False),
            ("baby_no", INT, False),
            ("birth_date", DATE),
            ("due_date", DATE),
            ("source", STR),
            ("as_of", DATE, False),
        ),
        keys=("one_id", "baby_no"),
        restricted=True,
    )
)


# --- tags and segments -------------------------------------------------------------------

MEMBER_TAGS = register(
    Table(
        name="member_tags",
        layer="gold",
        description=(
            "Tag values per person, long-form with SCD-2 history: a row holds from valid_from "
            "(inclusive) to valid_to (exclusive; null while it holds); as_of is the last run that "
            "confirmed it. source is 'rule' (conf/tags.yaml) or 'dmp:<name>' (third-party, "
            "source_date = the DMP's latest report). Use cradle.tags.engine.tags_as_of(rows, day)."
        ),
        schema=schema(
            ("one_id", STR, False),
            ("tag", STR, False),
            ("value", STR, False),
            ("source", STR, False),
            ("category", STR),
            ("source_date", DATE),
            ("valid_from", DATE, False),
            ("valid_to", DATE),
            ("as_of", DATE, False),
            ("run_id", STR, False),
        ),
        keys=("one_id", "tag", "source", "valid_from"),
    )
)

TAG_SIZES = register(
    Table(
        name="tag_sizes",
        layer="gold",
        description="Members holding each tag (per source) on each run date: the size history of tags.",
        schema=schema(
            ("tag", STR, False),
            ("source", STR, False),
            ("category", STR),
            ("as_of", DATE, False),
            ("members", LONG, False),
            ("run_id", STR, False),
        ),
        keys=("tag", "source", "as_of"),
    )
)

SEGMENT_MEMBERS = register(
    Table(
        name="segment_members",
        layer="gold",
        description="Who is in each segment of conf/segments.yaml, per run date (one snapshot per as_of).",
        schema=schema(
            ("segment", STR, False),
            ("one_id", STR, False),
            ("as_of", DATE, False),
            ("run_id", STR, False),
        ),
        keys=("segment", "as_of", "one_id"),
        partition_by=("as_of",),
    )
)

SEGMENT_SIZES = register(
    Table(
        name="segment_sizes",
        layer="gold",
        description="Size of each segment on each run date.",
        schema=schema(
            ("segment", STR, False),
            ("as_of", DATE, False),
            ("members", LONG, False),
            ("run_id", STR, False),
        ),
        keys=("segment", "as_of"),
    )
)
