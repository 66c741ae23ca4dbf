"""Every CLI failure is one actionable, masked line; the full trace goes to the log file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from cradle.cli import main, one_line, setup_logging
from cradle.config import ConfigError
from cradle.lake import Lake
from cradle.runs import RunContext, lake_lock


def test_a_failing_command_prints_one_line_and_logs_the_trace(
    env, spark, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "no_such_stage", "--run-date", "2026-03-01", "--lake", env.lake_root])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    failure = [line for line in err if line.startswith("cradle run:")]
    assert len(failure) == 1, err
    assert "unknown stage 'no_such_stage'" in failure[0] and "stages: ingest" in failure[0]
    log_file = Path(failure[0].split("full trace: ")[1].split(";")[0])
    assert log_file.is_file() and "Traceback" in log_file.read_text(encoding="utf-8")
    assert not any(line.startswith("Traceback") for line in err)
    setup_logging(False)


def test_errors_and_logs_never_show_a_plain_mobile(tmp_path: Path, capsys) -> None:
    assert one_line(ValueError("bad value '+86 139-1234-0070' in row 3\nmore"), None) == (
        "ValueError: bad value '139****0070' in row 3"
    )
    assert one_line(ConfigError("tags.yaml: tag 'x': line one"), None) == "tags.yaml: tag 'x': line one"
    log_file = tmp_path / "x.log"
    setup_logging(False, log_file)
    try:
        raise RuntimeError("mobile 13912340070 rejected")
    except RuntimeError:
        logging.getLogger("cradle.test").exception("while loading 8613912340070")
    text = log_file.read_text(encoding="utf-8")
    assert "139****0070" in text and "13912340070" not in text
    setup_logging(False)


def test_the_embedded_metastore_busy_error_is_translated(env) -> None:
    derby = RuntimeError(
        "Unable to instantiate SessionHiveMetaStoreClient\n... Caused by: ERROR XSDB6: Another instance "
        "of Derby may have already booted the database /x/metastore_db.\n" + "at org.apache...\n" * 50
    )
    line = one_line(derby, env)
    assert "embedded metastore" in line and "in use" in line and "\n" not in line


def test_a_second_writer_stops_at_once_naming_the_holder(spark, tmp_path: Path) -> None:
    """While this process holds the lake (through the same lock a run takes), a real
    `cradle run` process on that lake stops with one line that names the holder, and
    changes nothing; once the holder is done, the same command succeeds."""
    lake = Lake(spark, str(tmp_path / "lake"))
    landing = tmp_path / "landing"
    landing.mkdir()
    command = [sys.executable, "-m", "cradle", "run", "ingest", "--run-date", "2026-01-02"]
    command += ["--lake", lake.root, "--landing", str(landing)]
    holder = RunContext(env="local", run_date=date(2026, 1, 2), run_id="holder-run")
    with lake_lock(lake, holder, "run all"):
        second = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
        lock = json.loads((tmp_path / "lake" / "_ops" / "lock").read_text(encoding="utf-8"))
        assert lock["pid"] == os.getpid()
    lines = [line for line in second.stderr.splitlines() if line.startswith("cradle run:")]
    assert second.returncode == 1 and len(lines) == 1, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert "in use by run holder-run (run all, pid " + str(os.getpid()) in lines[0], lines[0]
    assert not (tmp_path / "lake" / "_ops" / "journal").exists() or not any(
        (tmp_path / "lake" / "_ops" / "journal").iterdir()
    )
    again = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
