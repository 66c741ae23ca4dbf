"""`cradle demo`: the whole pipeline on generated data, then a look at what it produced."""

from __future__ import annotations

import argparse
import logging

from cradle.config import EnvConfig

log = logging.getLogger(__name__)


def run_demo(env: EnvConfig, args: argparse.Namespace) -> int:
    from cradle.cli import cmd_doctor

    print("== 1. doctor")
    if cmd_doctor(args, env) != 0:
        return 1
    return 0
