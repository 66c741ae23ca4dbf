"""Typed, frozen configuration loaded from ``conf/*.yaml``.

Every YAML file is validated into a pydantic model that forbids unknown keys, so a typo
fails at load time with the file, the key and what was expected, instead of being ignored
half-way through a nightly run.

    >>> env = load_env("local")                       # conf/env/local.yaml
    >>> env.spark.shuffle_partitions
    4
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONF_DIR = PROJECT_ROOT / "conf"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not match its schema."""


class Frozen(BaseModel):
    """Base for every config object: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# Names marketers give tags and segments: they become column-like identifiers.
SNAKE_NAME = r"^[a-z][a-z0-9_]{0,62}$"


def require_snake_case(names: Mapping[str, Any], what: str) -> None:
    """Raise ValueError naming every key of ``names`` that is not lower-case snake_case."""
    bad = [n for n in names if not re.match(SNAKE_NAME, n)]
    if bad:
        raise ValueError(f"{what} must match {SNAKE_NAME} (lower-case snake_case): {bad}")


class SparkConfig(Frozen):
    master: str | None = Field(None, description="None: taken from spark-submit")
    driver_memory: str | None = None
    shuffle_partitions: int = Field(4, ge=1)
    timezone: str = "Asia/Shanghai"
    ui_enabled: bool = False
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    extra: dict[str, str] = Field(default_factory=dict)


class MetastoreConfig(Frozen):
    kind: Literal["derby", "hive", "memory"] = "derby"
    uri: str | None = None


class GraphConfig(Frozen):
    engine: Literal["auto", "graphframes", "builtin"] = "auto"
    algorithm: Literal["two_phase", "randomized_contraction"] = "two_phase"
    checkpoint_interval: int = Field(1, ge=1)


class SecretsConfig(Frozen):
    # The development key may only be used where this is true (never on a cluster).
    allow_dev_key: bool = False
    key_file: str | None = None


class EnvConfig(Frozen):
    """One deployment environment: where the lake is and how Spark runs there."""

    name: str
    lake_root: str
    landing_root: str
    jars_dir: str | None = None
    spark: SparkConfig = SparkConfig()
    metastore: MetastoreConfig = MetastoreConfig()
    graph: GraphConfig = GraphConfig()
    secrets: SecretsConfig = SecretsConfig()

    @property
    def checkpoint_dir(self) -> str:
        return join_uri(self.lake_root, "_checkpoints")

    @property
    def warehouse_dir(self) -> str:
        return join_uri(self.lake_root, "_warehouse")

    @property
    def log_dir(self) -> str | None:
        """Where commands keep their full logs: ``<lake>/_logs`` for a lake on local disk;
        None on a cluster lake (the scheduler keeps the driver's output)."""
        scheme = self.lake_root.split("://", 1)[0] if "://" in self.lake_root else "file"
        return join_uri(self.lake_root.removeprefix("file://"), "_logs") if scheme == "file" else None


M = TypeVar("M", bound=BaseModel)


def conf_dir() -> Path:
    """The configuration folder: ``$CRADLE_CONF_DIR`` or the project's ``conf/``."""
    return Path(os.environ.get("CRADLE_CONF_DIR", DEFAULT_CONF_DIR))


def join_uri(root: str, *parts: str) -> str:
    """Join path parts onto a local path or a Hadoop URI (``s3a://bucket/x``)."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def resolve_local(path: str, base: Path = PROJECT_ROOT) -> str:
    """Make a relative local path absolute against ``base``; leave URIs untouched."""
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        hint = f"; files there: {', '.join(known)}" if known else ""
        raise ConfigError(f"{path}: no such configuration file{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def describe_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key '{key}'")
        elif item["type"] == "missing":
            lines.append(f"{path}: missing key '{key}'")
        else:
            lines.append(f"{path}: key '{key}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_model(model: type[M], data: Mapping[str, Any], path: Path) -> M:
    """Validate ``data`` (read from ``path``) into ``model`` with file-and-key errors."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(describe_errors(path, err)) from None


def load_model(model: type[M], name: str, directory: Path | None = None) -> M:
    """Load ``conf/<name>`` into ``model``."""
    path = (directory or conf_dir()) / name
    return parse_model(model, read_yaml(path), path)


def load_env(
    name: str = "local", directory: Path | None = None, lake: str | None = None, landing: str | None = None
) -> EnvConfig:
    """Load ``conf/env/<name>.yaml``; ``lake`` and ``landing`` (from ``--lake``, ``--landing``)
    override ``lake_root`` and ``landing_root``.

    Relative local paths are made absolute against the project root so that jobs behave
    the same whatever directory they are started from.
    """
    path = (directory or conf_dir()) / "env" / f"{name}.yaml"
    data = {"name": name, **read_yaml(path)}
    if lake is not None:
        data["lake_root"] = lake
    if landing is not None:
        data["landing_root"] = landing
    env = parse_model(EnvConfig, data, path)
    updates: dict[str, Any] = {
        "lake_root": resolve_local(env.lake_root, Path.cwd() if lake else PROJECT_ROOT),
        "landing_root": resolve_local(env.landing_root, Path.cwd() if landing else PROJECT_ROOT),
    }
    if env.jars_dir is not None:
        updates["jars_dir"] = resolve_local(env.jars_dir)
    return env.model_copy(update=updates)
