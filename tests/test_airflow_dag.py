"""The DAG file is checked without Airflow installed: its imports, and its stage order."""

from __future__ import annotations

import ast

from cradle.config import PROJECT_ROOT
from cradle.pipeline import STAGES

DAG_FILE = PROJECT_ROOT / "airflow_dags" / "cradle_daily.py"


def test_dag_imports_neither_pyspark_nor_cradle() -> None:
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"))
    modules = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert modules.isdisjoint({"pyspark", "cradle", "delta", "graphframes"}), modules


def test_dag_runs_every_stage_in_pipeline_order() -> None:
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"))
    stages = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "STAGES"
    )
    assert stages == tuple(s.name for s in STAGES)
    for stage in stages:
        assert (PROJECT_ROOT / "jobs" / f"{stage}.py").is_file(), f"jobs/{stage}.py is missing"
