"""Typed view of ``conf/segments.yaml``.

    >>> segments = load_segments()
    >>> expressions = parse_segments(segments, profile_fields(), load_tags().tag_names())

Every expression is parsed at load: a syntax error, an unknown field, tag or function, or
an expression over the size limits (``limits:``), is a :class:`ConfigError` naming the
segment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from cradle.catalog import MEMBER_PROFILE
from cradle.config import Frozen, load_model, require_snake_case
from cradle.segments.expressions import (
    DEPTH_CEILING,
    MAX_DEPTH,
    MAX_TOKENS,
    TOKENS_CEILING,
    Expression,
    Limits,
    parse,
)

SEGMENTS_FILE = "segments.yaml"


class SegmentSpec(Frozen):
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expression: str = Field(min_length=1)


class LimitsSpec(Frozen):
    """Size limits for every expression (see :class:`cradle.segments.expressions.Limits`).
    The ceilings keep parsing clear of Python's recursion limit whatever is configured."""

    max_tokens: int = Field(MAX_TOKENS, ge=10, le=TOKENS_CEILING)
    max_depth: int = Field(MAX_DEPTH, ge=2, le=DEPTH_CEILING)

    def limits(self) -> Limits:
        return Limits(self.max_tokens, self.max_depth)


class SegmentsConfig(Frozen):
    segments: dict[str, SegmentSpec]
    limits: LimitsSpec = LimitsSpec()

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
    limits, tag_set = config.limits.limits(), set(tags)
    return {name: parse(name, s.expression, fields, tag_set, limits) for name, s in config.segments.items()}


def load_segments(directory: Path | None = None) -> SegmentsConfig:
    return load_model(SegmentsConfig, SEGMENTS_FILE, directory)
