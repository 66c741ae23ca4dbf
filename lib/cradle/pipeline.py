"""The pipeline: stages in data order, and the runner every job and `cradle run` share.

A stage is a function ``run(job: Job) -> None`` in its own module, imported only when it
runs. Stages are listed in the order data flows (sources -> bronze -> silver -> identity
-> profiles -> segments -> audiences); ``cradle run all`` runs them in this order.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession

from cradle.catalog import all_tables
from cradle.config import EnvConfig
from cradle.lake import Lake
from cradle.runs import Job, RunContext, job_run, lake_lock, recover
from cradle.sources import load_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    target: str  # "module:function"
    description: str

    def load(self) -> Callable[[Job], None]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


# In data order. Each capability adds its stage here.
STAGES: tuple[Stage, ...] = (
    Stage("ingest", "cradle.ingest.stage:run", "landing files -> bronze, quarantine and silver"),
    Stage("identity", "cradle.identity.stage:run", "silver identifiers -> OneID, audit, graph stats"),
    Stage("profile", "cradle.profile.stage:run", "OneID + silver -> profiles: life stage, journey, value"),
    Stage("tags", "cradle.tags.stage:run", "conf/tags.yaml rules + DMP tags -> member_tags with history"),
    Stage("segments", "cradle.segments.stage:run", "conf/segments.yaml -> segment members and sizes"),
)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in STAGES) or "none yet"
    raise KeyError(f"unknown stage {name!r}; stages: {known}, or 'all'")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def make_context(env: EnvConfig, run_date: date, run_id: str | None, full: bool = False) -> RunContext:
    return RunContext(env=env.name, run_date=run_date, run_id=run_id or new_run_id(), full=full)


def run_stages(spark: SparkSession, env: EnvConfig, names: list[str], ctx: RunContext) -> None:
    """Run the named stages (or every stage for ``["all"]``) in data order.

    Holds the lake's write lock throughout; first rolls back any attempt a killed process
    left behind, then runs each stage as one atomic attempt (see ``cradle.runs``).
    """
    selected = list(STAGES) if names == ["all"] else [stage(n) for n in names]
    lake = Lake(spark, env.lake_root)
    tables = list(all_tables(load_sources().sources).values())
    with lake_lock(lake, ctx, "run " + " ".join(s.name for s in selected)):
        lake.ensure_databases()
        recover(lake, tables)
        for s in selected:
            func = s.load()
            with job_run(lake, s.name, ctx, tables) as recorder:
                func(Job(spark=spark, lake=lake, env=env, ctx=ctx, run=recorder))
