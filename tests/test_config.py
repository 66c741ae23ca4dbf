from __future__ import annotations

from pathlib import Path

import pytest

from cradle.cli import build_parser
from cradle.config import ConfigError, load_env


def write_env(tmp_path: Path, text: str, name: str = "x") -> Path:
    (tmp_path / "env").mkdir(exist_ok=True)
    (tmp_path / "env" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_shipped_profiles_load() -> None:
    local = load_env("local")
    cluster = load_env("cluster")
    assert local.spark.master == "local[*]"
    assert local.lake_root.endswith("/lakehouse") and Path(local.lake_root).is_absolute()
    assert cluster.spark.master is None
    assert cluster.lake_root.startswith("s3a://")
    assert cluster.secrets.allow_dev_key is False


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    conf = write_env(tmp_path, "lake_root: l\nlanding_root: x\nspark:\n  shufle_partitions: 3\n")
    with pytest.raises(ConfigError) as err:
        load_env("x", directory=conf)
    assert str(conf / "env" / "x.yaml") in str(err.value)
    assert "unknown key 'spark.shufle_partitions'" in str(err.value)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    conf = write_env(tmp_path, "lake_root: l\nlanding_root: x\nspark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"key 'spark.shuffle_partitions': .*integer.*'many'"):
        load_env("x", directory=conf)


def test_bad_choice_is_rejected(tmp_path: Path) -> None:
    conf = write_env(tmp_path, "lake_root: l\nlanding_root: x\ngraph:\n  engine: networkx\n")
    with pytest.raises(ConfigError, match=r"graph.engine.*'auto', 'graphframes' or 'builtin'"):
        load_env("x", directory=conf)


def test_missing_key_and_missing_file(tmp_path: Path) -> None:
    conf = write_env(tmp_path, "landing_root: x\n")
    with pytest.raises(ConfigError, match="missing key 'lake_root'"):
        load_env("x", directory=conf)
    with pytest.raises(ConfigError, match=r"nope.yaml: no such configuration file; files there: x.yaml"):
        load_env("nope", directory=conf)


def test_not_a_mapping(tmp_path: Path) -> None:
    conf = write_env(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_env("x", directory=conf)


def test_lake_flag_overrides_profile(tmp_path: Path) -> None:
    env = load_env("local", lake=str(tmp_path / "lk"))
    assert env.lake_root == str(tmp_path / "lk")
    assert env.checkpoint_dir == f"{tmp_path}/lk/_checkpoints"
    assert load_env("cluster", lake="hdfs://nn:8020/cradle").lake_root == "hdfs://nn:8020/cradle"


def test_config_objects_are_frozen() -> None:
    env = load_env("local")
    with pytest.raises(ValueError, match="frozen"):
        env.spark.shuffle_partitions = 9  # type: ignore[misc]


@pytest.mark.parametrize("command", ["doctor", "run", "eval", "demo", "generate"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"cradle {command}" in out and "--env" in out


def test_run_flags_parse_and_bad_date_fails(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["run", "all", "--run-date", "2026-03-01", "--run-id", "r1", "--lake", "/l"]
    )
    assert (str(args.run_date), args.run_id, args.lake, args.stages) == ("2026-03-01", "r1", "/l", ["all"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "all", "--run-date", "2026-02-30"])
    assert "not a date in YYYY-MM-DD form: '2026-02-30'" in capsys.readouterr().err
