"""Running a stage safely: the run record, the lake's write lock, and crash recovery.

    with lake_lock(lake, ctx, "ingest"):
        recover(lake, tables)                       # roll back any attempt that was killed
        with job_run(lake, "ingest", ctx, tables) as run:
            run.wrote(lake.merge(OTHER_TABLE, out))

Policy:

* **One writer per lake.** ``lake_lock`` creates ``<lake>/_ops/lock`` exclusively, holding
  the holder's run, command, host, pid and start time. A second writer stops at once with
  one line naming the holder. A lock whose holder process is gone (same host, pid no longer
  alive or reused) is stale and taken over; on another host it cannot be checked, and the
  message says how to remove it.
* **A stage attempt is atomic.** Before a stage writes, ``job_run`` records every table's
  Delta version in a journal (``<lake>/_ops/journal/<run_id>.<job>.json``). When the stage
  succeeds the journal is removed. When it raises, every table it changed is restored to
  its recorded version (Delta ``RESTORE``), so a failed attempt leaves no trace but its
  ``job_runs`` row. When the process is killed (SIGKILL, OOM, a lost node), the journal
  stays; the next run on the lake, holding the lock, restores the tables, removes the
  attempt's staging data and appends a ``job_runs`` row with status ``abandoned``.
  Re-running the date then gives exactly the tables an uninterrupted run gives.
* ``job_runs`` is append-only, one row per attempt (``running`` never reaches it: an
  attempt is ``succeeded``, ``failed`` or ``abandoned``). It is never restored. Its row is
  the attempt's commit point: the journal is removed after it, and a journal whose attempt
  already has its row is only tidied away.

Restoring needs the files of the recorded versions, so ``cradle maintain`` never vacuums
with a retention shorter than the longest job.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import socket
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cradle.catalog import DOCTOR_PROBE, JOB_RUNS, Table
from cradle.config import EnvConfig, join_uri
from cradle.lake import Lake, WriteResult, delete_path, list_names, read_text, write_text
from cradle.privacy import mask_text_str

log = logging.getLogger(__name__)

OPS_DIR = "_ops"
STAGING_DIR = "_staging"
# Never rolled back: the run log records attempts, the probe is scratch space.
UNJOURNALLED = (JOB_RUNS.qualified_name, DOCTOR_PROBE.qualified_name)


class LakeLocked(RuntimeError):
    """Another process holds the lake's write lock."""


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


@dataclass(frozen=True)
class Job:
    """Everything a stage receives: Spark, the lake, the environment and the run."""

    spark: SparkSession
    lake: Lake
    env: EnvConfig
    ctx: RunContext
    run: RunRecorder

    @property
    def staging(self) -> str:
        """This attempt's scratch folder; removed when the attempt ends or is recovered."""
        return staging_path(self.lake, self.run.job, self.ctx.run_id)


def staging_path(lake: Lake, job: str, run_id: str) -> str:
    return join_uri(lake.root, STAGING_DIR, job, run_id)


def versions(spark_version: str) -> dict[str, str]:
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "spark": spark_version,
        "delta": version("delta-spark"),
        "cradle": version("cradle"),
    }


def fault_point(name: str) -> None:
    """A named point where fault-injection tests kill the process (``CRADLE_FAULT=name``).

    SIGKILL, like the OOM killer or a lost node: no ``finally`` runs, nothing is flushed.
    A no-op unless the variable names this point.
    """
    if os.environ.get("CRADLE_FAULT") == name:
        log.warning("fault injection: killing the process at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)


# --- the lock ------------------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_is_gone(holder: dict) -> bool:
    """Whether the process named in a lock file has ended (only knowable on its own host)."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = int(holder.get("pid", -1))
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started = process_start(pid)
    return started is not None and holder.get("proc_start") not in (None, started)


def describe_holder(holder: dict) -> str:
    return (
        f"run {holder.get('run_id')} ({holder.get('command')}, pid {holder.get('pid')} on "
        f"{holder.get('host')}, since {holder.get('since')})"
    )


def lock_path(lake: Lake) -> str:
    return join_uri(lake.root, OPS_DIR, "lock")


def read_holder(lake: Lake) -> dict | None:
    try:
        return json.loads(read_text(lake.spark, lock_path(lake)))
    except Exception:  # absent or half-written: nothing useful to say about it
        return None


@contextmanager
def lake_lock(lake: Lake, ctx: RunContext, command: str) -> Iterator[None]:
    """Hold the lake's write lock for the duration of the block (see the module policy)."""
    pid = os.getpid()
    me = {
        "run_id": ctx.run_id,
        "command": command,
        "host": socket.gethostname(),
        "pid": pid,
        "proc_start": process_start(pid),
        "since": datetime.now().isoformat(timespec="seconds"),
    }
    path = lock_path(lake)
    if not write_text(lake.spark, path, json.dumps(me), overwrite=False):
        holder = read_holder(lake) or {}
        if not holder_is_gone(holder):
            raise LakeLocked(
                f"the lake {lake.root} is in use by {describe_holder(holder)}; wait for it to finish, "
                f"or if that process is gone, remove {path}"
            )
        log.warning("taking over the lock left by %s, which is no longer running", describe_holder(holder))
        delete_path(lake.spark, path)
        if not write_text(lake.spark, path, json.dumps(me), overwrite=False):
            raise LakeLocked(f"the lake {lake.root} is in use by {describe_holder(read_holder(lake) or {})}")
    try:
        yield
    finally:
        holder = read_holder(lake)
        if holder and holder.get("run_id") == ctx.run_id and holder.get("pid") == pid:
            delete_path(lake.spark, path)


# --- the journal -----------------------------------------------------------------------------


def journal_dir(lake: Lake) -> str:
    return join_uri(lake.root, OPS_DIR, "journal")


def journalled(tables: Iterable[Table]) -> list[Table]:
    return [t for t in tables if t.qualified_name not in UNJOURNALLED]


def open_journal(lake: Lake, job: str, ctx: RunContext, tables: Iterable[Table], started: datetime) -> str:
    """Record every table's version before a stage writes; returns the journal's path."""
    entry = {
        "run_id": ctx.run_id,
        "job": job,
        "run_date": ctx.run_date.isoformat(),
        "env": ctx.env,
        "started_at": started.isoformat(),
        "pid": os.getpid(),
        "versions": {t.qualified_name: lake.version(t) for t in journalled(tables)},
    }
    path = join_uri(journal_dir(lake), f"{ctx.run_id}.{job}.json")
    write_text(lake.spark, path, json.dumps(entry))
    return path


def roll_back(lake: Lake, tables: Iterable[Table], recorded: dict[str, int | None]) -> list[str]:
    """Restore every table that moved past its recorded version; returns their names."""
    restored = []
    for table in journalled(tables):
        if table.qualified_name not in recorded:
            continue
        before, now = recorded[table.qualified_name], lake.version(table)
        if now is None or (before is not None and now <= before):
            continue
        if before is None:  # created by the attempt: empty it (its schema is the catalogue's)
            lake.delete_where(table, "true")
        else:
            lake.restore(table, before)
        restored.append(table.qualified_name)
    return restored


def recover(lake: Lake, tables: Iterable[Table]) -> list[str]:
    """Roll back every attempt whose process died mid-stage (call while holding the lock).

    Returns the ``run_id.job`` of each attempt recovered.
    """
    tables = list(tables)
    recovered = []
    for name in sorted(list_names(lake.spark, journal_dir(lake))):
        if not name.endswith(".json"):
            continue
        path = join_uri(journal_dir(lake), name)
        entry = json.loads(read_text(lake.spark, path))
        started = datetime.fromisoformat(entry["started_at"])
        if attempt_recorded(lake, entry["run_id"], entry["job"], started):
            # Killed after its row was written: the attempt finished; only tidy up.
            delete_path(lake.spark, path)
            continue
        restored = roll_back(lake, tables, entry["versions"])
        delete_path(lake.spark, staging_path(lake, entry["job"], entry["run_id"]))
        record_attempt(
            lake,
            {
                "run_id": entry["run_id"],
                "job": entry["job"],
                "run_date": date.fromisoformat(entry["run_date"]),
                "env": entry["env"],
                "status": "abandoned",
                "started_at": started,
                "ended_at": None,
                "duration_s": None,
                "rows_read": {},
                "rows_written": {},
                "versions": versions(lake.spark.version),
                "details": {"restored": ",".join(restored)},
                "error": "the process ended before the stage finished (killed or lost); "
                f"its writes were rolled back: {', '.join(restored) or 'none had been made'}",
            },
        )
        delete_path(lake.spark, path)
        log.warning(
            "recovered interrupted %s run %s (%s): rolled back %s",
            entry["job"],
            entry["run_id"],
            entry["run_date"],
            ", ".join(restored) or "nothing",
        )
        recovered.append(f"{entry['run_id']}.{entry['job']}")
    return recovered


def attempt_recorded(lake: Lake, run_id: str, job: str, started: datetime) -> bool:
    """Whether ``job_runs`` already holds this attempt's final row."""

    rows = (
        lake.read(JOB_RUNS)
        .where((F.col("run_id") == run_id) & (F.col("job") == job))
        .select("started_at")
        .collect()
    )
    return any(r["started_at"] == started for r in rows)


def record_attempt(lake: Lake, row: dict) -> None:
    lake.append(JOB_RUNS, lake.spark.createDataFrame([row], JOB_RUNS.schema))


@contextmanager
def job_run(lake: Lake, job: str, ctx: RunContext, tables: Iterable[Table] = ()) -> Iterator[RunRecorder]:
    """Run one stage attempt: journal ``tables`` first, roll them back if the stage raises,
    and append the attempt's row to ``cradle_ops.job_runs``. A failure is re-raised."""
    recorder = RunRecorder(job=job, ctx=ctx)
    tables = list(tables)
    started, t0 = datetime.now(), time.monotonic()
    status, error = "succeeded", None
    journal = open_journal(lake, job, ctx, tables, started) if tables else None
    log.info("job %s run_date=%s run_id=%s started", job, ctx.run_date, ctx.run_id)
    try:
        yield recorder
    except BaseException as exc:
        status = "failed"
        error = mask_text_str("".join(traceback.format_exception_only(type(exc), exc)).strip())[:4000]
        if journal is not None:
            recorded = json.loads(read_text(lake.spark, journal))["versions"]
            restored = roll_back(lake, tables, recorded)
            recorder.detail("restored", ",".join(restored))
            if restored:
                log.warning("job %s failed; rolled back %s", job, ", ".join(restored))
        raise
    finally:
        delete_path(lake.spark, staging_path(lake, job, ctx.run_id))
        record_attempt(
            lake,
            {
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
            },
        )
        if journal is not None:
            delete_path(lake.spark, journal)
        log.info("job %s %s in %.1fs", job, status, time.monotonic() - t0)
