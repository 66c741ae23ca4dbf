"""Cradle's daily pipeline on a Spark cluster.

One task per stage, in data order, each a ``spark-submit`` of the stage's thin entry point
in ``jobs/`` for the run's logical date (``{{ ds }}``). Retries and backfills are safe:
every stage's writes are idempotent for a date. This file imports neither pyspark nor
cradle (Airflow best practice: DAG files parse fast and carry no job code).

Variables (Airflow Variables, with defaults):
    cradle_home     folder holding jobs/, the built wheel in dist/ and .jars/
    cradle_lake     lake root URI, e.g. s3a://brand-lake/cradle
Connection ``spark_default`` points at the cluster (YARN, Kubernetes or standalone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.models import Variable
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG

# Must match cradle.pipeline.STAGES (tests/test_airflow_dag.py checks it).
STAGES = ("ingest", "identity", "profile", "tags", "segments")

with DAG(
    dag_id="cradle_daily",
    description="Landing files -> bronze/silver -> OneID -> profiles, tags, segments; one date per run",
    schedule="0 3 * * *",  # after the sources' nightly deliveries
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # the stages of one date read what the previous date wrote
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["cradle"],
) as dag:
    home = Variable.get("cradle_home", default="/opt/cradle")
    lake = Variable.get("cradle_lake", default="s3a://cradle-lake/prod")
    previous = None
    for stage in STAGES:
        task = SparkSubmitOperator(
            task_id=stage,
            application=f"{home}/jobs/{stage}.py",
            py_files=f"{home}/dist/cradle-0.1.0-py3-none-any.whl",
            jars=f"{home}/.jars/*",
            conn_id="spark_default",
            application_args=[
                "--env",
                "cluster",
                "--lake",
                lake,
                "--run-date",
                "{{ ds }}",
                "--run-id",
                "{{ run_id }}-" + stage,
            ],
            name=f"cradle-{stage}-{{{{ ds }}}}",
        )
        if previous is not None:
            previous >> task
        previous = task
