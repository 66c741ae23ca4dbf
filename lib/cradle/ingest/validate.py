"""Typing, validation and silver columns for landed records (DataFrame in, DataFrame out).

``with_typed`` turns the delivered text fields into typed columns and collects every
reason a row must be rejected in ``_reasons``; ``to_silver`` builds the silver columns of
accepted rows, with personal data tokenised, encrypted and masked.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from cradle import sqlguard
from cradle.catalog import Table
from cradle.ingest import normalise as N
from cradle.privacy import (
    Keys,
    decrypt,
    encrypt,
    mask_mobile,
    mask_name,
    mask_text,
    protect_stray_mobiles,
    token,
)
from cradle.sources import FieldSpec, RegionsConfig, SourceSpec

PERSONAL_TYPES = ("mobile", "name", "address")
# Free-text types whose values are searched for a stray mobile before they reach silver.
TEXT_TYPES = ("string", "province", "city")
TIMESTAMP_FORMATS = ("yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy/MM/dd HH:mm:ss")
# Values of these types are never echoed into a quarantine reason.
QUIET_TYPES = (*PERSONAL_TYPES, "md5")


class RuleError(ValueError):
    """A configured rule does not compile against its source's typed columns."""


def personal_fields(spec: SourceSpec) -> list[str]:
    return [name for name, f in spec.fields.items() if f.type in PERSONAL_TYPES]


def raw_value(name: str, spec: FieldSpec, keys: Keys) -> Column:
    """The delivered text of a field; personal fields arrive encrypted from bronze."""
    value = F.col("fields")[name]
    if spec.type in PERSONAL_TYPES:
        value = decrypt(value, keys.encryption_key)
    return F.when(F.trim(value) != "", F.trim(value))


def typed_value(raw: Column, spec: FieldSpec) -> Column:
    match spec.type:
        case "string" | "name" | "address" | "province" | "city" | "mobile":
            return raw
        case "int":
            return raw.try_cast("int")
        case "double":
            return raw.try_cast("double")
        case "date":
            return F.try_to_date(raw, "yyyy-MM-dd")
        case "timestamp":
            return F.coalesce(*(F.try_to_timestamp(raw, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS))
        case "md5":
            return N.md5_hex(raw)
        case "device_id":
            return N.device_id(raw)
        case "mac":
            return N.mac(raw)
        case _:
            return F.from_json(raw, spec.type)


def field_reasons(name: str, spec: FieldSpec, raw: Column, typed: Column) -> list[Column]:
    # A reason is read by people: the value it repeats is masked (a phone typed into a
    # quantity field shows as 139****0090).
    shown = F.lit("") if spec.type in QUIET_TYPES else F.concat(F.lit(": '"), mask_text(raw), F.lit("'"))
    reasons = [
        F.when(raw.isNotNull() & typed.isNull(), F.concat(F.lit(f"invalid {spec.type} in {name}"), shown))
    ]
    if spec.required:
        reasons.append(F.when(raw.isNull(), F.lit(f"missing required field {name}")))
    if spec.min is not None:
        reasons.append(F.when(typed < spec.min, F.concat(F.lit(f"{name} below minimum {spec.min:g}"), shown)))
    if spec.max is not None:
        reasons.append(F.when(typed > spec.max, F.concat(F.lit(f"{name} above maximum {spec.max:g}"), shown)))
    if spec.values is not None:
        allowed = ", ".join(spec.values)
        reasons.append(
            F.when(~typed.isin(*spec.values), F.concat(F.lit(f"{name} not one of [{allowed}]"), shown))
        )
    if spec.pattern is not None:
        reasons.append(F.when(~typed.rlike(spec.pattern), F.concat(F.lit(f"{name} does not match"), shown)))
    return reasons


def with_typed(
    records: DataFrame, spec: SourceSpec, keys: Keys, source: str | None = None, keep: tuple[str, ...] = ()
) -> DataFrame:
    """Typed source fields plus ``_reasons`` (empty when the row is acceptable).

    Expects bronze columns: file, line, delivery_date, fields, parse_error, file_error.
    A row with a parse error or a rejected file keeps only that reason: its fields are
    not trustworthy enough to be judged one by one. ``keep`` names further input columns
    to carry through.
    """
    typed_cols, reasons = [], []
    for name, field_spec in spec.fields.items():
        raw = raw_value(name, field_spec, keys)
        typed = typed_value(raw, field_spec)
        typed_cols.append(typed.alias(name))
        reasons += field_reasons(name, field_spec, raw, typed)
    upstream = F.coalesce(F.col("file_error"), F.col("parse_error"))
    field_reasons_arr = F.filter(F.array(*reasons), lambda r: r.isNotNull()) if reasons else F.array()
    typed = records.select(
        "file",
        "line",
        "delivery_date",
        "file_version",
        "raw_enc",
        *(c for c in keep if c not in ("file", "line", "delivery_date", "file_version", "raw_enc")),
        *typed_cols,
        F.when(upstream.isNotNull(), F.array(upstream)).otherwise(field_reasons_arr).alias("_reasons"),
    )
    return typed.transform(lambda df: with_rule_reasons(df, spec, source))


def rule_origin(source: str | None, rule: str) -> str:
    """How errors name a ``check:`` rule of ``conf/sources.yaml``."""
    return f"sources.yaml: source {source!r}, rule {rule!r}" if source else f"sources.yaml: rule {rule!r}"


def with_rule_reasons(typed: DataFrame, spec: SourceSpec, source: str | None = None) -> DataFrame:
    """Append the names of failed rules. Like SQL CHECK constraints, NULL passes.

    Each check passes :func:`cradle.sqlguard.expression` (one expression, built-in
    functions, no subquery) before it becomes a Column."""
    if not spec.rules:
        return typed
    spark = typed.sparkSession
    failed = [
        F.when(
            ~sqlguard.expression(spark, rule.check, rule_origin(source, rule.name)),
            F.lit(f"rule {rule.name} failed"),
        )
        for rule in spec.rules
    ]
    rules_arr = F.filter(F.array(*failed), lambda r: r.isNotNull())
    # Rows already rejected for parsing keep their reason alone.
    return typed.withColumn(
        "_reasons", F.when(F.size("_reasons") > 0, F.col("_reasons")).otherwise(rules_arr)
    )


def check_rules(spark: SparkSession, source: str, spec: SourceSpec) -> None:
    """Check every rule with :mod:`cradle.sqlguard` (nothing runs), then compile it against
    the source's typed schema, naming the rule that fails."""
    from pyspark.sql import types as T

    empty = spark.createDataFrame(
        [], T.StructType([T.StructField(n, f.spark_type()) for n, f in spec.fields.items()])
    )
    for rule in spec.rules:
        origin = rule_origin(source, rule.name)
        check = sqlguard.expression(spark, rule.check, origin)
        try:
            empty.select(check.alias("ok")).schema  # noqa: B018 - forces analysis
        except AnalysisException as err:
            first = next((line for line in str(err).splitlines() if line.strip()), "")
            raise RuleError(f"{origin}: {first}") from None


def region_lookups(spark: SparkSession, regions: RegionsConfig) -> tuple[DataFrame, DataFrame]:
    provinces = spark.createDataFrame(regions.province_rows, "alias string, code string, std string")
    cities = spark.createDataFrame(regions.city_rows, "alias string, code string, std string, tier int")
    return F.broadcast(provinces), F.broadcast(cities)


def with_region(rows: DataFrame, name: str, lookup: DataFrame) -> DataFrame:
    """Standardise the place name in column ``name`` and add ``<name>_code`` (and, for
    cities, ``__<name>_tier``) from an alias lookup; unknown names stay as delivered."""
    extra = [F.col(c).alias(f"__{name}_{c}") for c in lookup.columns if c not in ("alias", "code", "std")]
    renamed = lookup.select(
        F.col("alias").alias(f"__{name}_alias"),
        F.col("code").alias(f"{name}_code"),
        F.col("std").alias(f"__{name}_std"),
        *extra,
    )
    return rows.join(renamed, F.col(name) == F.col(f"__{name}_alias"), how="left").withColumn(
        name, F.coalesce(f"__{name}_std", name)
    )


def to_silver(
    typed: DataFrame,
    spec: SourceSpec,
    table: Table,
    keys: Keys,
    provinces: DataFrame,
    cities: DataFrame,
    run_id: str,
    keep: tuple[str, ...] = (),
) -> DataFrame:
    """Silver rows for accepted typed rows: protected personal data, region codes, lineage.

    A mobile found in a non-personal text field (a phone typed into ``member_card_no``) is
    protected like a mobile (``cradle.privacy.protect_stray_mobiles``): silver never holds
    one in plain text. ``keep`` names further input columns to carry through unchanged.
    """
    rows = typed
    for name, field_spec in spec.fields.items():
        if field_spec.type in ("province", "city"):
            lookup = provinces if field_spec.type == "province" else cities
            rows = with_region(rows, name, lookup)
            if field_spec.type == "city" and f"{name}_tier" not in spec.fields:
                rows = rows.withColumn(f"{name}_tier", F.col(f"__{name}_tier"))

    derived: dict[str, Column] = {}
    for name, field_spec in spec.fields.items():
        value = F.col(name)
        if field_spec.type in TEXT_TYPES:
            derived[name] = protect_stray_mobiles(value, keys.token_key)
        if field_spec.type == "mobile":
            digits = N.mobile_digits(value)
            derived[f"{name}_token"] = token(digits, keys.token_key)
            derived[f"{name}_md5_token"] = token(F.md5(digits), keys.token_key)
            derived[f"{name}_enc"] = encrypt(digits, keys.encryption_key)
            derived[f"{name}_masked"] = F.coalesce(mask_mobile(digits), N.masked_mobile_form(value))
            derived[f"{name}_status"] = N.mobile_status(value)
        elif field_spec.type == "md5":
            derived[f"{name}_token"] = token(value, keys.token_key)
        elif field_spec.type == "name":
            derived[f"{name}_enc"] = encrypt(value, keys.encryption_key)
            derived[f"{name}_masked"] = mask_name(value)
        elif field_spec.type == "address":
            derived[f"{name}_enc"] = encrypt(value, keys.encryption_key)
    if spec.event_time:
        derived["event_date"] = F.to_date(F.col(spec.event_time))
    version_parts = [
        F.coalesce(F.date_format(F.col(v), "yyyy-MM-dd HH:mm:ss"), F.lit("")) for v in spec.version_by
    ]
    derived["_version"] = F.concat_ws(
        "|",
        *version_parts,
        F.date_format("delivery_date", "yyyy-MM-dd"),
        F.lpad(F.col("file_version").cast("string"), 4, "0"),
        F.col("file"),
        F.lpad(F.col("line").cast("string"), 9, "0"),
    )
    derived["_file"] = F.col("file")
    derived["_line"] = F.col("line")
    derived["_delivery_date"] = F.col("delivery_date")
    derived["_ingest_run_id"] = F.lit(run_id)
    rows = rows.select(
        *(c for c in rows.columns if c not in derived), *(col.alias(name) for name, col in derived.items())
    )

    # The row's content, personal data by token (ciphertext has a random IV), for
    # recognising a re-delivered identical record.
    content = [
        f.name
        for f in table.schema
        if not f.name.startswith("_") and not f.name.endswith("_enc") and f.name != "event_date"
    ]
    # Names and addresses are stored only as ciphertext and a lossy mask, so their keyed
    # tokens join the hash: a corrected name is an update, not a duplicate.
    personal = [
        token(F.col(name), keys.token_key).alias(f"{name}__token")
        for name, f in spec.fields.items()
        if f.type in ("name", "address")
    ]
    rows = rows.withColumn("_row_hash", F.sha2(F.to_json(F.struct(*content, *personal)), 256))
    return rows.select(
        *(F.col(f.name).cast(f.dataType).alias(f.name) for f in table.schema),
        *(c for c in keep if c not in table.schema.names),
    )
