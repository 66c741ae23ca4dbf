"""`cradle generate`: realistic landing files for every source, plus ground truth.

    cradle generate --members 3000 --days 90 --start 2026-01-01 --seed 7 --out landing
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from cradle.config import ConfigError, EnvConfig
from cradle.generate.engine import generate
from cradle.generate.settings import Params, load_settings

log = logging.getLogger(__name__)


def run_generate(args: argparse.Namespace, env: EnvConfig) -> int:
    """Entry point wired in cradle.cli; returns the process exit code."""
    try:
        settings = load_settings(args.config)
        params = Params(members=args.members, days=args.days, start=args.start,
                        seed=args.seed, out=args.out or env.landing_root, workers=args.workers)
    except (ConfigError, ValueError) as err:
        print(f"cradle generate: {err}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    manifest = generate(settings, params)
    rows = sum(v["rows"] for v in manifest["sources"].values())
    files = sum(v["files"] for v in manifest["sources"].values())
    log.info("landing %s: %d files, %d rows, truth in %s/_truth (%.1fs)", params.out, files,
             rows, params.out, time.monotonic() - t0)
    return 0
