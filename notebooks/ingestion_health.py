# %% [markdown]
# # Ingestion health
# What landed, what was rejected and why, and how fresh and complete each source is.
# Open as a notebook (VS Code / Jupyter with jupytext read `# %%` cells) or run as a script:
# `.venv/bin/python notebooks/ingestion_health.py` after `make demo`.

# %%
from pyspark.sql import functions as F

from cradle.config import load_env
from cradle.spark import build_spark

spark = build_spark(load_env("local"), app_name="notebook-ingestion-health")

# %% Files by source and status: loaded, duplicate (same bytes again), superseded, rejected
spark.table("cradle_ops.ingest_manifest").groupBy("source").pivot("status").count().orderBy("source").show()

# %% Rows read, accepted, quarantined and dropped as duplicates, per source
spark.table("cradle_ops.ingest_manifest").groupBy("source").agg(
    *(F.sum(c).alias(c) for c in ("rows_read", "rows_accepted", "rows_quarantined", "rows_duplicate"))
).orderBy("source").show()

# %% Why rows were rejected (values masked)
spark.table("cradle_bronze.quarantine").groupBy("source", "reason").count().orderBy(F.desc("count")).show(
    20, False
)

# %% Completeness of the mobile field and delivery lag, per source and day
spark.table("cradle_ops.data_quality").where(
    "(metric = 'validity' AND field = 'mobile') OR metric = 'freshness_lag_days_max'"
).groupBy("table_name", "metric").agg(F.avg("value").alias("avg_over_days")).orderBy("table_name").show(
    50, False
)

# %% Late data: the event dates each run wrote that were earlier than the delivery
spark.table("cradle_ops.ingest_partitions").where("is_late").groupBy("source").agg(
    F.count("*").alias("late_dates"), F.sum("rows").alias("rows")
).show()
