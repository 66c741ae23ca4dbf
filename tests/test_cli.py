"""Every CLI failure is one actionable, masked line; the full trace goes to the log file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cradle.cli import main, one_line, setup_logging
from cradle.config import ConfigError


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
