"""Evaluators: each measures one capability and returns one JSON-able dict.

``cradle eval WHAT --json`` prints it. A result with ``"passed": false`` makes the
command exit non-zero, so evaluators double as acceptance checks.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from cradle.config import EnvConfig

EVALUATORS: dict[str, str] = {
    "graphs": "cradle.evals.graphs:evaluate",
    "ingest": "cradle.evals.ingest:evaluate",
    "identity": "cradle.evals.identity:evaluate",
    "lifestage": "cradle.evals.lifestage:evaluate",
}


def evaluate(what: str, env: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    module, func = EVALUATORS[what].split(":")
    return getattr(importlib.import_module(module), func)(env, args)
