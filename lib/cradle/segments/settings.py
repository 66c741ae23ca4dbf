"""Typed view of ``conf/segments.yaml``.

    >>> segments = load_segments()
    >>> expressions = parse_segments(segments, profile_fields(), load_tags().tag_names())

Every expression is parsed at load: a syntax error, an unknown field, tag or function is a
:class:`ConfigError` naming the segment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from cradle.catalog import MEMBER_PROFILE
from cradle.config import Frozen, load_model, require_snake_case
from cradle.segments.expressions import Expression, parse

SEGMENTS_FILE = "segments.yaml"


class SegmentSpec(Frozen):
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expression: str = Field(min_length=1)


class SegmentsConfig(Frozen):
    segments: dict[str, SegmentSpec]

    @field_validator("segments")
    @classmethod
    def _names(cls, value: dict[str, SegmentSpec]) -> dict[str, SegmentSpec]:
        require_snake_case(value, "segment names")
        return value


def profile_fields() -> frozenset[str]:
    """Fields a segment may name: the profile table's columns."""
    return frozenset(MEMBER_PROFILE.schema.fieldNames())


def parse_segments(
    config: SegmentsConfig, fields: frozenset[str] | set[str], tags: tuple[str, ...] | set[str]
) -> dict[str, Expression]:
    """Parse every segment's expression (ConfigError naming the first bad segment)."""
    return {name: parse(name, spec.expression, fields, set(tags)) for name, spec in config.segments.items()}


def load_segments(directory: Path | None = None) -> SegmentsConfig:
    return load_model(SegmentsConfig, SEGMENTS_FILE, directory)
