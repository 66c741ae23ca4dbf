"""The identity stage: ``cradle run identity --run-date D [--full]``.

Incremental (default): the silver rows written by ingest runs this stage has not yet
consumed are the batch. Their identifiers, and the old identifiers of changed records,
are the touched values; the scope is every record of the components (before splitting)
that hold a record carrying a touched *linking* value, plus the batch. Hubs and blocked
values do not propagate the touch: they link nothing. Only the scope is re-clustered,
re-guarded and re-assigned; records outside it keep their one_id untouched.

``--full`` takes every silver record as the scope and rebuilds all state; it still
applies the stable-id rule against the previous assignment, so it yields the same
clusters (and ids) as the incremental runs that led up to it.
"""

from __future__ import annotations

import logging
import time
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cradle.catalog import (
    IDENTITY_AUDIT,
    IDENTITY_GRAPH_STATS,
    IDENTITY_MAP,
    IDENTITY_RECORDS,
    IDENTITY_VALUES,
    JOB_RUNS,
    ONE_ID_MERGES,
    Table,
    silver_tables,
)
from cradle.graph import resolve_engine
from cradle.identity.graph import identifier_occurrences, records
from cradle.identity.guards import blocked_list, cluster_records, value_stats, with_blocked, with_status
from cradle.identity.settings import load_identity
from cradle.identity.stable_ids import assign_one_ids, id_events
from cradle.privacy import load_keys
from cradle.runs import Job, fault_point
from cradle.sources import load_sources

log = logging.getLogger(__name__)

SIZE_BUCKETS = (
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 5, "3-5"),
    (6, 10, "6-10"),
    (11, 50, "11-50"),
    (51, 200, "51-200"),
)


class Phases:
    """Wall time per phase, logged and kept in the run record (the benchmark reads them)."""

    def __init__(self, job: Job) -> None:
        self.job, self.last = job, time.monotonic()

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.job.run.detail(f"seconds.{phase}", round(now - self.last, 2))
        log.info("identity: %s in %.1fs", phase, now - self.last)
        self.last = now


def run(job: Job) -> None:
    t0 = time.monotonic()
    phases = Phases(job)
    registry = load_identity()
    tables = silver_tables(load_sources().sources)
    lake, ctx = job.lake, job.ctx
    state = lake.read(IDENTITY_RECORDS)
    has_state = lake.exists(IDENTITY_RECORDS) and state.limit(1).count() > 0
    pending = pending_ingest_runs(lake.read(JOB_RUNS), lake.read(IDENTITY_GRAPH_STATS))
    full = ctx.full or not has_state
    if not full and not pending:
        # Nothing to consume: no table is written, so the stage costs two small reads.
        log.info("identity %s: no new ingest runs since the last identity run; nothing to do", ctx.run_date)
        job.run.detail("mode", "nothing new")
        return
    silver_keys = {name: tables[name].keys for name in registry.tables()}
    silver_all = {name: lake.read(tables[name]) for name in registry.tables()}
    references = {name: lake.read(tables[name]) for name in registry.reference_tables()}
    blocked = blocked_list(job.spark, registry, load_keys(job.env).token_key, references)
    silver = (
        silver_all
        if full
        else {n: rows.where(F.col("_ingest_run_id").isin(*pending)) for n, rows in silver_all.items()}
    )
    batch_records = records(silver, silver_keys).localCheckpoint()
    batch_occ = identifier_occurrences(silver, silver_keys, registry).localCheckpoint()
    job.run.read("identity.batch_records", batch_records.count())
    phases.done("batch")

    previous_values = lake.read(IDENTITY_VALUES)
    if full:
        scope_records, scope_occ = batch_records, batch_occ
        hub_deltas = None
    else:
        scope_records, scope_occ, hub_deltas = incremental_scope(
            state, previous_values, batch_records, batch_occ
        )
    scope_records = scope_records.localCheckpoint()
    scope_occ = scope_occ.localCheckpoint()
    phases.done("scope")

    marked = with_blocked(scope_occ, blocked, registry)
    stats = value_stats(marked, registry)
    if hub_deltas is not None:
        stats = carry_hubs(stats, previous_values, hub_deltas)
    values = with_status(stats, registry)
    if hub_deltas is not None:
        # Hubs are monotone: once a value joined too many people it never links again,
        # whatever share of its records the scope happens to hold.
        values = keep_hubs(values, previous_values)
    values = values.localCheckpoint()
    phases.done("guards")

    engine = resolve_engine(job.spark, job.env.graph.engine)
    clusters, clustered, split_audit = cluster_records(
        scope_records,
        scope_occ,
        values,
        registry,
        engine,
        job.env.graph.algorithm,
        job.env.graph.checkpoint_interval,
        job.env.graph.single_task_rows,
    )
    clusters = clusters.localCheckpoint()
    phases.done("components")
    previous_ids = state.select("record_id", "one_id", "one_id_since")
    assigned = assign_one_ids(clusters, previous_ids, ctx.run_date).localCheckpoint()
    events = id_events(assigned, clustered).localCheckpoint()
    phases.done("stable_ids")

    new_state = build_state(scope_records, scope_occ, clusters, assigned, ctx.run_id)
    write_outputs(job, full, new_state, values, previous_values, split_audit, events)
    phases.done("write")
    write_stats(job, full, engine, pending, scope_records, values, events, split_audit, time.monotonic() - t0)


def pending_ingest_runs(job_runs: DataFrame, stats: DataFrame) -> list[str]:
    """Succeeded ingest runs whose silver rows no identity run has consumed (one per day)."""
    done = stats.select(F.explode("ingest_runs").alias("run_id"))
    pending = (
        job_runs.where((F.col("job") == "ingest") & (F.col("status") == "succeeded"))
        .select("run_id")
        .join(done, on="run_id", how="left_anti")
        .distinct()
    )
    return sorted(r["run_id"] for r in pending.collect())


def incremental_scope(
    state: DataFrame, previous_values: DataFrame, batch_records: DataFrame, batch_occ: DataFrame
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Records and occurrences to recompute, and per-value record-count deltas."""
    old_occ = state_occurrences(state)
    changed_old = old_occ.join(batch_records.select("record_id"), on="record_id", how="left_semi")
    touched = batch_occ.select("value_id").unionByName(changed_old.select("value_id")).distinct()
    not_linking = previous_values.where(F.col("status").isin("hub", "blocked", "attribute")).select(
        "value_id"
    )
    touched_links = touched.join(not_linking, on="value_id", how="left_anti")
    touched_components = (
        old_occ.join(touched_links, on="value_id", how="left_semi")
        .select("record_id")
        .distinct()
        .join(state.select("record_id", "component"), on="record_id", how="inner")
        .select("component")
        .distinct()
    )
    kept_state = state.join(touched_components, on="component", how="left_semi").join(
        batch_records.select("record_id"), on="record_id", how="left_anti"
    )
    scope_records = kept_state.select(
        "record_id",
        "source",
        "source_key",
        "_file",
        "_line",
        F.lit(None).cast("string").alias("_ingest_run_id"),
    ).unionByName(batch_records)
    scope_occ = state_occurrences(kept_state).unionByName(batch_occ)
    deltas = (
        batch_occ.select("value_id", F.lit(1).alias("d"))
        .unionByName(changed_old.select("value_id", F.lit(-1).alias("d")))
        .groupBy("value_id")
        .agg(F.sum("d").cast("long").alias("delta"))
    )
    return scope_records, scope_occ, deltas


def state_occurrences(state: DataFrame) -> DataFrame:
    """The identifier occurrences kept in ``identity_records``."""
    return state.select("record_id", "source", "source_key", F.explode("identifiers").alias("i")).select(
        "record_id",
        "source",
        "source_key",
        F.col("i.id_type").alias("id_type"),
        F.col("i.priority").alias("priority"),
        F.col("i.value").alias("value"),
        F.col("i.value_id").alias("value_id"),
        F.col("i.is_verified").alias("is_verified"),
    )


def carry_hubs(stats: DataFrame, previous_values: DataFrame, deltas: DataFrame) -> DataFrame:
    """For values that did not link before, the scope holds only some of their records:
    their count is the previous count plus this batch's change."""
    prev = previous_values.where(F.col("status") != "link").select(
        "value_id", F.col("records").alias("prev_records"), F.col("persons").alias("prev_persons")
    )
    return (
        stats.join(prev, on="value_id", how="left")
        .join(deltas, on="value_id", how="left")
        .withColumn(
            "records",
            F.when(
                F.col("prev_records").isNotNull(),
                F.col("prev_records") + F.coalesce(F.col("delta"), F.lit(0)),
            ).otherwise(F.col("records")),
        )
        .withColumn("persons", F.greatest(F.col("persons"), F.coalesce(F.col("prev_persons"), F.lit(0))))
        .drop("prev_records", "prev_persons", "delta")
    )


def keep_hubs(values: DataFrame, previous_values: DataFrame) -> DataFrame:
    prev = previous_values.where(F.col("status") == "hub").select(
        "value_id", F.col("reason").alias("prev_reason"), F.lit(True).alias("was_hub")
    )
    joined = values.join(prev, on="value_id", how="left")
    stays = F.col("was_hub") & (F.col("status") == "link")
    return joined.select(
        "value_id",
        "id_type",
        "value",
        "records",
        "persons",
        F.when(stays, F.lit("hub")).otherwise(F.col("status")).alias("status"),
        F.when(stays, F.col("prev_reason")).otherwise(F.col("reason")).alias("reason"),
    )


def build_state(
    scope_records: DataFrame, scope_occ: DataFrame, clusters: DataFrame, assigned: DataFrame, run_id: str
) -> DataFrame:
    identifiers = scope_occ.groupBy("record_id").agg(
        F.array_sort(
            F.collect_list(F.struct("value_id", "id_type", "priority", "value", "is_verified"))
        ).alias("identifiers")
    )
    return (
        scope_records.join(identifiers, on="record_id", how="left")
        .join(clusters, on="record_id", how="inner")
        .join(assigned.select("record_id", "one_id", "one_id_since"), on="record_id", how="inner")
        .select(
            "record_id",
            "source",
            "source_key",
            "_file",
            "_line",
            F.coalesce(
                F.col("identifiers"), F.array().cast(IDENTITY_RECORDS.schema["identifiers"].dataType)
            ).alias("identifiers"),
            "component",
            "cluster",
            "one_id",
            "one_id_since",
            F.lit(run_id).alias("run_id"),
        )
    )


def map_changes(new_state: DataFrame, current_map: DataFrame, run_date: date, run_id: str) -> DataFrame:
    """identity_map rows to upsert: closed old rows and new current rows."""
    cur = current_map.where(F.col("valid_to").isNull()).select(
        "source", "source_key", F.col("one_id").alias("cur_one_id"), F.col("valid_from").alias("cur_from")
    )
    joined = new_state.select("source", "source_key", "record_id", "one_id").join(
        cur, on=["source", "source_key"], how="left"
    )
    changed = joined.where(F.col("cur_one_id").isNull() | (F.col("cur_one_id") != F.col("one_id")))
    opened = changed.select(
        "source",
        "source_key",
        "record_id",
        "one_id",
        F.lit(run_date).alias("valid_from"),
        F.lit(None).cast("date").alias("valid_to"),
        F.lit(run_id).alias("run_id"),
    )
    # A row opened earlier the same day is replaced, not closed (re-runs, full after daily).
    closed = changed.where(F.col("cur_one_id").isNotNull() & (F.col("cur_from") < F.lit(run_date))).select(
        "source",
        "source_key",
        "record_id",
        F.col("cur_one_id").alias("one_id"),
        F.col("cur_from").alias("valid_from"),
        F.lit(run_date).alias("valid_to"),
        F.lit(run_id).alias("run_id"),
    )
    return opened.unionByName(closed)


def write_outputs(
    job: Job,
    full: bool,
    new_state: DataFrame,
    values: DataFrame,
    previous_values: DataFrame,
    split_audit: DataFrame,
    events: DataFrame,
) -> None:
    lake, ctx = job.lake, job.ctx
    new_state = new_state.localCheckpoint()
    current_map = lake.read(IDENTITY_MAP)
    changes = map_changes(new_state, current_map, ctx.run_date, ctx.run_id)
    if full:
        # Records that left silver (a corrected file dropped them) are closed.
        gone = (
            current_map.where(F.col("valid_to").isNull())
            .join(new_state.select("record_id"), on="record_id", how="left_anti")
            .select(
                "source",
                "source_key",
                "record_id",
                "one_id",
                "valid_from",
                F.lit(ctx.run_date).alias("valid_to"),
                F.lit(ctx.run_id).alias("run_id"),
            )
        )
        changes = changes.unionByName(gone)
    changes = changes.localCheckpoint()
    audit = audit_rows(values, previous_values, split_audit, ctx.run_id, ctx.run_date).localCheckpoint()
    # Fault points (CRADLE_FAULT) between the writes: a kill anywhere here must leave
    # tables that the next run rolls back and recomputes exactly (tests/test_identity_faults.py).
    fault_point("identity.before_writes")
    job.run.wrote(lake.merge(IDENTITY_MAP, changes))
    fault_point("identity.after_map")
    job.run.wrote(lake.merge(IDENTITY_AUDIT, audit))
    job.run.wrote(
        lake.merge(
            ONE_ID_MERGES,
            events.select(
                F.lit(ctx.run_date).alias("run_date"), F.lit(ctx.run_id).alias("run_id"), *events.columns
            ),
        )
    )
    fault_point("identity.between_writes")
    values_out = values.withColumn("run_id", F.lit(ctx.run_id))
    if full:
        job.run.wrote(lake.overwrite(IDENTITY_VALUES, values_out))
        job.run.wrote(lake.overwrite(IDENTITY_RECORDS, new_state))
    else:
        # Only rows whose content changed are updated: a record in a re-clustered
        # component that kept its id, cluster and identifiers keeps its row and run_id.
        job.run.wrote(lake.merge(IDENTITY_VALUES, values_out, update_when=changed(IDENTITY_VALUES)))
        job.run.wrote(lake.merge(IDENTITY_RECORDS, new_state, update_when=changed(IDENTITY_RECORDS)))
    fault_point("identity.before_stats")


def changed(table: Table) -> str:
    """MERGE update condition: some column other than ``run_id`` differs (null-safe)."""
    same = " AND ".join(f"t.`{f.name}` <=> s.`{f.name}`" for f in table.schema if f.name != "run_id")
    return f"NOT ({same})"


def audit_rows(
    values: DataFrame, previous_values: DataFrame, split_audit: DataFrame, run_id: str, run_date: date
) -> DataFrame:
    """Decisions this run made: values newly blocked or hub, split and unresolved components."""
    before = previous_values.select("value_id", F.col("status").alias("prev_status"))
    decided = (
        values.where(F.col("status").isin("blocked", "hub"))
        .join(before, on="value_id", how="left")
        .where(F.col("prev_status").isNull() | (F.col("prev_status") != F.col("status")))
        .select(
            F.lit(run_id).alias("run_id"),
            F.lit(run_date).alias("run_date"),
            F.col("status").alias("decision"),
            "id_type",
            "value_id",
            "value",
            F.lit(None).cast("long").alias("component"),
            "records",
            "persons",
            "reason",
        )
    )
    splits = split_audit.groupBy("component", "outcome").agg(
        F.array_join(F.array_sort(F.collect_set("id_type")), ",").alias("id_type"),
        F.max("values").alias("values"),
        F.max("level").alias("level"),
    )
    split_rows = splits.select(
        F.lit(run_id).alias("run_id"),
        F.lit(run_date).alias("run_date"),
        F.col("outcome").alias("decision"),
        "id_type",
        F.lit(None).cast("long").alias("value_id"),
        F.lit(None).cast("string").alias("value"),
        "component",
        F.lit(None).cast("long").alias("records"),
        F.lit(None).cast("long").alias("persons"),
        F.when(
            F.col("outcome") == "split",
            F.format_string(
                "%d values of %s exceed max_per_person; unverified edges dropped (level %d)",
                F.col("values"),
                F.col("id_type"),
                F.col("level"),
            ),
        )
        .otherwise(
            F.format_string(
                "%d values of %s remain after both split levels", F.col("values"), F.col("id_type")
            )
        )
        .alias("reason"),
    )
    return decided.unionByName(split_rows)


def size_distribution(sizes: DataFrame) -> dict[str, int]:
    bucket = F.lit(f">{SIZE_BUCKETS[-1][1]}")
    for lo, hi, name in reversed(SIZE_BUCKETS):
        bucket = F.when(F.col("n").between(lo, hi), F.lit(name)).otherwise(bucket)
    return {r["bucket"]: int(r["count"]) for r in sizes.groupBy(bucket.alias("bucket")).count().collect()}


def write_stats(
    job: Job,
    full: bool,
    engine: str,
    pending: list[str],
    scope_records: DataFrame,
    values: DataFrame,
    events: DataFrame,
    split_audit: DataFrame,
    seconds: float,
) -> None:
    lake, ctx = job.lake, job.ctx
    state = lake.read(IDENTITY_RECORDS)
    sizes = state.groupBy("one_id").agg(F.count("*").alias("n")).localCheckpoint()
    totals = sizes.agg(
        F.sum("n").alias("records"),
        F.count("*").alias("components"),
        F.sum(F.when(F.col("n") == 1, 1).otherwise(0)).alias("singletons"),
        F.max("n").alias("largest"),
    ).first()
    all_values = lake.read(IDENTITY_VALUES)
    status_counts = {r["status"]: int(r["count"]) for r in all_values.groupBy("status").count().collect()}
    event_counts = {r["event"]: int(r["count"]) for r in events.groupBy("event").count().collect()}
    outcome_counts = {
        r["outcome"]: int(r["n"])
        for r in split_audit.groupBy("outcome").agg(F.countDistinct("component").alias("n")).collect()
    }
    row = {
        "run_id": ctx.run_id,
        "run_date": ctx.run_date,
        "mode": "full" if full else "incremental",
        "engine": engine,
        "algorithm": job.env.graph.algorithm,
        "ingest_runs": pending,
        "records": int(totals["records"] or 0),
        "records_in_scope": scope_records.count(),
        "values_in_scope": values.count(),
        "components": int(totals["components"] or 0),
        "singletons": int(totals["singletons"] or 0),
        "largest": int(totals["largest"] or 0),
        "size_distribution": size_distribution(sizes),
        "merges": event_counts.get("merge", 0),
        "splits": event_counts.get("split", 0),
        "blocked_values": status_counts.get("blocked", 0),
        "hubs": status_counts.get("hub", 0),
        "split_components": outcome_counts.get("split", 0),
        "unresolved_components": outcome_counts.get("unresolved", 0),
        "seconds": round(seconds, 2),
    }
    job.run.wrote(
        lake.merge(IDENTITY_GRAPH_STATS, job.spark.createDataFrame([row], IDENTITY_GRAPH_STATS.schema))
    )
    for key in (
        "mode",
        "records_in_scope",
        "components",
        "largest",
        "merges",
        "splits",
        "hubs",
        "blocked_values",
    ):
        job.run.detail(key, row[key])
    log.info(
        "identity %s (%s): %d records in scope, %d people, largest %d, %d merges, %d splits, %d hubs",
        ctx.run_date,
        row["mode"],
        row["records_in_scope"],
        row["components"],
        row["largest"],
        row["merges"],
        row["splits"],
        row["hubs"],
    )
