"""Run records: every job attempt appends one row to ``cradle_ops.job_runs``.

    with job_run(lake, "ingest", ctx) as run:
        rows = lake.read(SOME_TABLE); run.read(SOME_TABLE, rows.count())
        run.wrote(lake.merge(OTHER_TABLE, out))

A failure is recorded with its error text and then re-raised, so the scheduler sees it.
"""

from __future__ import annotations

import logging
import platform
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from cradle.catalog import JOB_RUNS, Table
from cradle.lake import Lake, WriteResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What a job was asked to do: the environment, the business date and an id."""

    env: str
    run_date: date
    run_id: str
    full: bool = False


@dataclass
class RunRecorder:
    job: str
    ctx: RunContext
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def read(self, table: Table | str, rows: int) -> None:
        name = table if isinstance(table, str) else table.qualified_name
        self.rows_read[name] = self.rows_read.get(name, 0) + rows

    def wrote(self, result: WriteResult) -> None:
        self.rows_written[result.table] = self.rows_written.get(result.table, 0) + result.rows_written

    def detail(self, key: str, value: object) -> None:
        self.details[key] = str(value)


def versions(spark_version: str) -> dict[str, str]:
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "spark": spark_version,
        "delta": version("delta-spark"),
        "cradle": version("cradle"),
    }


@contextmanager
def job_run(lake: Lake, job: str, ctx: RunContext) -> Iterator[RunRecorder]:
    recorder = RunRecorder(job=job, ctx=ctx)
    started, t0 = datetime.now(), time.monotonic()
    status, error = "succeeded", None
    log.info("job %s run_date=%s run_id=%s started", job, ctx.run_date, ctx.run_id)
    try:
        yield recorder
    except BaseException as exc:
        status = "failed"
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:4000]
        raise
    finally:
        row = {
            "run_id": ctx.run_id,
            "job": job,
            "run_date": ctx.run_date,
            "env": ctx.env,
            "status": status,
            "started_at": started,
            "ended_at": datetime.now(),
            "duration_s": round(time.monotonic() - t0, 3),
            "rows_read": recorder.rows_read,
            "rows_written": recorder.rows_written,
            "versions": versions(lake.spark.version),
            "details": recorder.details,
            "error": error,
        }
        lake.append(JOB_RUNS, lake.spark.createDataFrame([row], JOB_RUNS.schema))
        log.info("job %s %s in %.1fs", job, status, row["duration_s"])
