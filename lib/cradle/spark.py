"""The one place that builds SparkSessions.

Everything else receives ``spark`` as an argument. The session is configured for Delta
Lake (extensions and catalog), the jars fetched by ``make setup`` (never downloaded at
start-up), a checkpoint directory for iterative graph work, and a metastore so that
``spark.table("cradle_gold.member_profile")`` works in a notebook as in a job.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from cradle.config import EnvConfig, join_uri

log = logging.getLogger(__name__)


def local_jars(jars_dir: str | None) -> list[str]:
    """Jars in the project-local folder filled by ``make setup``."""
    if jars_dir is None:
        return []
    folder = Path(jars_dir)
    if not folder.is_dir() or not any(folder.glob("delta-spark_*.jar")):
        raise RuntimeError(
            f"Delta Lake jars not found in {folder}; run `make setup` (it fetches them with Maven)"
        )
    return sorted(str(p) for p in folder.glob("*.jar"))


def spark_conf(env: EnvConfig) -> dict[str, str]:
    """Every setting ``build_spark`` applies, as plain strings (handy to print or diff)."""
    conf: dict[str, str] = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(env.spark.shuffle_partitions),
        "spark.sql.session.timeZone": env.spark.timezone,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",  # Spark<->pandas hand-offs in Arrow
        "spark.ui.enabled": str(env.spark.ui_enabled).lower(),
        "spark.sql.warehouse.dir": env.warehouse_dir,
        # Writes stay in their partition and schemas are explicit; no silent evolution.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.debug.maxToStringFields": "500",  # silver tables are wide
    }
    jars = local_jars(env.jars_dir)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if env.spark.driver_memory:
        conf["spark.driver.memory"] = env.spark.driver_memory
    if env.metastore.kind == "derby":
        # Keep the embedded metastore (and derby.log) inside the lake, not in the cwd.
        home = join_uri(env.lake_root, "_metastore")
        Path(home).mkdir(parents=True, exist_ok=True)
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={home}/metastore_db;create=true"
        )
        conf["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={home}"
    elif env.metastore.kind == "hive" and env.metastore.uri:
        conf["spark.hadoop.hive.metastore.uris"] = env.metastore.uri
    conf.update(env.spark.extra)
    return conf


# Warnings that are expected in this setup and say nothing actionable: Delta tables are not
# Hive SerDe tables; an embedded metastore has no schema version; local checkpoints are
# deliberate (graph rounds, ingestion flags).
NOISY_LOGGERS = (
    "org.apache.spark.sql.hive.HiveExternalCatalog",
    "org.apache.hadoop.hive.metastore.ObjectStore",
    "org.apache.hadoop.hive.conf.HiveConf",
    "org.apache.hadoop.hive.ql.session.SessionState",
    "org.apache.spark.rdd.MapPartitionsRDD",
)


def quiet_known_noise(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    level = jvm.org.apache.logging.log4j.Level.ERROR
    for name in NOISY_LOGGERS:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)


def build_spark(env: EnvConfig, app_name: str = "cradle") -> SparkSession:
    """Build (or return the running) SparkSession for ``env``.

    Example::

        spark = build_spark(load_env("local"))
        spark.table("cradle_ops.job_runs").show()
    """
    if env.spark.master and env.spark.master.startswith("local"):
        # Python workers must run the driver's interpreter (with cradle and pyarrow); in
        # local mode PySpark reads this variable, not spark.pyspark.python.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if env.spark.master:
        builder = builder.master(env.spark.master)
    for key, value in spark_conf(env).items():
        builder = builder.config(key, value)
    if env.metastore.kind in ("derby", "hive"):
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(env.spark.log_level)
    quiet_known_noise(spark)
    spark.sparkContext.setCheckpointDir(env.checkpoint_dir)
    log.info("Spark %s session for env %r, lake %s", spark.version, env.name, env.lake_root)
    return spark
