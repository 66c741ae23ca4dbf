"""The `cradle` command. Every subcommand has --help."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from cradle.config import ConfigError, EnvConfig, load_env
from cradle.privacy import MaskingFilter, mask_text_str
from cradle.runs import LakeLocked

log = logging.getLogger("cradle")


def setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    """Console logging (INFO, or DEBUG with --verbose) and, when given, a full DEBUG log file.
    Every handler masks mobiles and long digit runs (``cradle.privacy.MaskingFilter``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(MaskingFilter())
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose or log_file is not None else logging.INFO)
    for noisy in ("py4j", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_file_for(env: EnvConfig, command: str) -> Path | None:
    if env.log_dir is None:
        return None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(env.log_dir) / f"cradle-{command}-{stamp}-{os.getpid()}.log"


DERBY_BUSY = "Another instance of Derby may have already booted the database"


def one_line(err: BaseException, env: EnvConfig | None) -> str:
    """What went wrong, in one masked line a user can act on."""
    text = str(err)
    if DERBY_BUSY in text or "XSDB6" in text:
        holder = ""
        if env is not None:
            lock = Path(env.lake_root) / "_ops" / "lock"
            if lock.is_file():
                try:
                    info = json.loads(lock.read_text(encoding="utf-8"))
                    holder = f" by run {info.get('run_id')} ({info.get('command')}, pid {info.get('pid')})"
                except (OSError, ValueError):
                    holder = ""
        where = f" in {env.lake_root}/_metastore" if env is not None else ""
        return (
            f"the lake's embedded metastore{where} is in use{holder or ' by another process'} "
            "(embedded Derby allows one process at a time): wait for it, or close the notebook or "
            "command holding it"
        )
    if isinstance(err, (ConfigError, LakeLocked)):
        first = text.strip()
    else:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        first = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return mask_text_str(first)[:500]


def report_failure(command: str, err: BaseException, env: EnvConfig | None, log_file: Path | None) -> int:
    log.debug("cradle %s failed", command, exc_info=err)
    where = (
        f" (full trace: {log_file}; --verbose shows it here)" if log_file else " (--verbose shows the trace)"
    )
    print(f"cradle {command}: {one_line(err, env)}{where}", file=sys.stderr)
    return 1


def run_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def add_env_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="local", help="environment profile in conf/env (default: local)")
    parser.add_argument("--lake", default=None, help="lake root, overriding the profile's lake_root")
    parser.add_argument(
        "--landing", default=None, help="landing folder, overriding the profile's landing_root"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=run_date, default=date.today(), help="business date, YYYY-MM-DD")
    parser.add_argument("--run-id", default=None, help="id recorded in cradle_ops.job_runs (default: new)")
    parser.add_argument("--full", action="store_true", help="rebuild from scratch instead of incrementally")


def job_parser(stage_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"jobs/{stage_name}.py", description=f"Run the {stage_name} stage.")
    add_env_args(parser)
    add_run_args(parser)
    return parser


def main_for_job(stage_name: str, argv: list[str] | None = None) -> int:
    """Entry point shared by the thin scripts in ``jobs/`` (spark-submit)."""
    from cradle.pipeline import make_context, run_stages
    from cradle.spark import build_spark

    args = job_parser(stage_name).parse_args(argv)
    setup_logging(args.verbose)
    env: EnvConfig | None = None
    log_file = None
    try:
        env = load_env(args.env, lake=args.lake, landing=args.landing)
        log_file = log_file_for(env, stage_name)
        setup_logging(args.verbose, log_file)
        spark = build_spark(env, app_name=f"cradle-{stage_name}")
        run_stages(spark, env, [stage_name], make_context(env, args.run_date, args.run_id, args.full))
    except Exception as err:
        return report_failure(f"job {stage_name}", err, env, log_file)
    return 0


# --- subcommands ---------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.doctor import report

    return report(env)


def cmd_run(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.pipeline import make_context, run_stages
    from cradle.spark import build_spark

    spark = build_spark(env, app_name="cradle-run")
    run_stages(spark, env, args.stages, make_context(env, args.run_date, args.run_id, args.full))
    return 0


def cmd_eval(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.evals import evaluate

    result = evaluate(args.what, env, args)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result.get("passed", True) else 1


def cmd_generate(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.generate.cli import run_generate

    return run_generate(args, env)


def cmd_tables(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.catalog import LAYERS, all_tables
    from cradle.config import join_uri
    from cradle.sources import load_sources

    tables = all_tables(load_sources().sources).values()
    for table in sorted(tables, key=lambda t: (LAYERS.index(t.layer), t.name)):
        print(f"{table.qualified_name}")
        print(f"    {table.description}")
        partitions = ", ".join(table.partition_by) or "-"
        print(f"    keys: {', '.join(table.keys)}; partitioned by: {partitions}")
        print(f"    path: {join_uri(env.lake_root, table.layer, table.name)}")
    return 0


def cmd_demo(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.demo import run_demo

    return run_demo(env, args)


def cmd_segment(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.lake import Lake
    from cradle.segments.preview import preview
    from cradle.spark import build_spark

    spark = build_spark(env, app_name="cradle-segment-preview")
    try:
        result = preview(Lake(spark, env.lake_root), args.expression, args.as_of, args.limit)
    except ConfigError as err:
        print(f"cradle segment preview: {err}", file=sys.stderr)
        return 2
    print(f"segment preview as of {result.as_of}: {result.expression.strip()}")
    print(f"  size: {result.size} of {result.people} people")
    for one_id, mobile in result.sample:
        print(f"  {one_id}  {mobile or '-'}")
    return 0


def cmd_maintain(args: argparse.Namespace, env: EnvConfig) -> int:
    from cradle.catalog import all_tables
    from cradle.lake import Lake
    from cradle.maintain import run_maintain
    from cradle.pipeline import new_run_id
    from cradle.runs import RunContext
    from cradle.sources import load_sources
    from cradle.spark import build_spark

    spark = build_spark(env, app_name="cradle-maintain")
    tables = sorted(all_tables(load_sources().sources).values(), key=lambda t: t.qualified_name)
    ctx = RunContext(env=env.name, run_date=date.today(), run_id=new_run_id())
    for line in run_maintain(Lake(spark, env.lake_root), tables, ctx, args.retention_days, args.apply):
        print(mask_text_str(line))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cradle.evals import EVALUATORS

    parser = argparse.ArgumentParser(
        prog="cradle",
        description="Cradle: member identity, profiles, segments and forecasts for formula brands.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check Python, Java, Spark, Delta and the graph engine")
    add_env_args(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("run", help="run pipeline stages for a date: `cradle run all --run-date D`")
    p.add_argument("stages", nargs="+", metavar="STAGE", help="stage names in data order, or 'all'")
    add_env_args(p)
    add_run_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("eval", help="measure a capability and print its metrics")
    p.add_argument("what", choices=sorted(EVALUATORS), help="what to evaluate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--data", default=None, help="input folder (evaluator-specific)")
    add_env_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("generate", help="write realistic landing files plus ground truth")
    p.add_argument("--members", type=int, default=3000, help="number of member households")
    p.add_argument("--days", type=int, default=90, help="days of activity to deliver")
    p.add_argument("--start", type=run_date, default=date(2026, 1, 1), help="first delivery date")
    p.add_argument("--seed", type=int, default=7, help="random seed; same seed, same bytes")
    p.add_argument("--out", default=None, help="landing folder (default: the profile's landing_root)")
    p.add_argument("--config", default=None, help="generator settings (default: conf/generator.yaml)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    add_env_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("tables", help="print the table catalogue: layer, keys, partitioning, path")
    add_env_args(p)
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("segment", help='size a segment expression: `cradle segment preview "EXPR"`')
    p.add_argument("action", choices=["preview"], help="preview: size and masked sample, writes nothing")
    p.add_argument("expression", help="segment expression, as in conf/segments.yaml")
    p.add_argument("--as-of", type=run_date, default=date.today(), help="date the tags held, YYYY-MM-DD")
    p.add_argument("--limit", type=int, default=10, help="sample rows to show (default: 10)")
    add_env_args(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("maintain", help="OPTIMIZE and VACUUM every lake table (dry run unless --apply)")
    p.add_argument("--apply", action="store_true", help="act; without it, only print what would be done")
    p.add_argument(
        "--retention-days",
        type=float,
        default=7.0,
        help="VACUUM keeps files this many days at least (minimum 7; raised to the longest job)",
    )
    add_env_args(p)
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("demo", help="set up, generate data, run the whole pipeline and show it")
    add_env_args(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    func: Callable[[argparse.Namespace, EnvConfig], int] = args.func
    try:
        env = load_env(args.env, lake=args.lake, landing=args.landing)
    except ConfigError as err:
        print(f"cradle: configuration error:\n{err}", file=sys.stderr)
        return 2
    log_file = log_file_for(env, args.command)
    setup_logging(args.verbose, log_file)
    try:
        return func(args, env)
    except KeyboardInterrupt:
        print(f"cradle {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose:
            log.exception("cradle %s failed", args.command)
        return report_failure(args.command, err, env, log_file)


if __name__ == "__main__":
    sys.exit(main())
