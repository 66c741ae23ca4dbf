"""Data health per table and day, long form: (table_name, day, metric, field, value).

Metrics: ``rows``; ``completeness`` (non-null share) of every silver column;
``validity`` of mobiles (valid among non-missing) and region names (mapped to a code among
non-null); ``freshness_lag_days_avg`` / ``_max`` (delivery date minus event date);
``quarantined`` and ``duplicates`` rows and ``duplicate_files`` by delivery day.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cradle.catalog import Table
from cradle.sources import SourceSpec


def share(condition: Column, among: Column | None = None) -> Column:
    denominator = F.count(F.when(among, 1)) if among is not None else F.count(F.lit(1))
    numerator = F.count(F.when(condition if among is None else condition & among, 1))
    return F.when(denominator > 0, numerator / denominator)


def quality_metrics(
    silver: DataFrame,
    quarantine: DataFrame,
    manifest: DataFrame,
    spec: SourceSpec,
    table: Table,
    run_id: str,
) -> DataFrame:
    day = F.col("event_date") if spec.has_event_date else F.col("_delivery_date")
    columns = [f.name for f in table.schema if not f.name.startswith("_") and f.name != "event_date"]
    measures: dict[str, Column] = {"rows|*": F.count(F.lit(1)).cast("double")}
    for c in columns:
        measures[f"completeness|{c}"] = share(F.col(c).isNotNull())
    for name, f in spec.fields.items():
        if f.type == "mobile":
            measures[f"validity|{name}"] = share(
                F.col(f"{name}_status") == "valid", F.col(f"{name}_status") != "missing"
            )
        elif f.type in ("province", "city"):
            measures[f"validity|{name}"] = share(F.col(f"{name}_code").isNotNull(), F.col(name).isNotNull())
    if spec.has_event_date:
        lag = F.datediff("_delivery_date", "event_date")
        measures["freshness_lag_days_avg|*"] = F.avg(lag).cast("double")
        measures["freshness_lag_days_max|*"] = F.max(lag).cast("double")
    per_day = silver.groupBy(day.alias("day")).agg(
        *(m.cast("double").alias(k.replace("|", "__")) for k, m in measures.items())
    )
    long = per_day.unpivot("day", [k.replace("|", "__") for k in measures], "metric_field", "value")

    by_delivery = (
        manifest.groupBy(F.col("delivery_date").alias("day"))
        .agg(
            F.sum("rows_duplicate").cast("double").alias("duplicates__*"),
            F.count(F.when(F.col("status") == "duplicate", 1)).cast("double").alias("duplicate_files__*"),
        )
        .join(
            quarantine.groupBy(F.col("delivery_date").alias("day")).agg(
                F.count(F.lit(1)).cast("double").alias("quarantined__*")
            ),
            on="day",
            how="full",
        )
        .fillna(0.0)
    )
    long = long.unionByName(
        by_delivery.unpivot(
            "day", ["duplicates__*", "duplicate_files__*", "quarantined__*"], "metric_field", "value"
        )
    )
    parts = F.split("metric_field", "__")
    return long.where(F.col("day").isNotNull()).select(
        F.lit(table.qualified_name).alias("table_name"),
        "day",
        parts[0].alias("metric"),
        parts[1].alias("field"),
        "value",
        F.lit(run_id).alias("ingest_run_id"),
    )
