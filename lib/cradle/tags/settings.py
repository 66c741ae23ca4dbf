"""Typed view of ``conf/tags.yaml``: tag rules and the third-party (DMP) merge.

    >>> tags = load_tags()
    >>> tags.tags["buyer_formula"].category
    'commerce'

What can be checked without data is checked here (names, categories, placeholders, a
window for ``{window_start}``); that the SQL names real tables and columns and returns
``(one_id, value)`` is checked by :func:`cradle.tags.engine.compile_rules` against Spark,
before the stage writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cradle.config import Frozen, load_model, require_snake_case

TAGS_FILE = "tags.yaml"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = ("run_date", "window_start", "window_days")

Category = Literal[
    "app",
    "media",
    "commerce",
    "social",
    "lbs",
    "third_party",
    "lifecycle",
    "value",
    "state",
    "demographic",
]


class TagSpec(Frozen):
    """One tag: who owns it, how often it refreshes and the Spark SQL rule that computes it."""

    description: str = Field(min_length=1)
    category: Category
    owner: str = Field(min_length=1)
    refresh: Literal["daily", "weekly"] = "daily"
    window_days: int | None = Field(None, ge=1, le=3650)
    rule: str = Field(min_length=1)

    @model_validator(mode="after")
    def _placeholders(self) -> TagSpec:
        used = set(PLACEHOLDER.findall(self.rule))
        unknown = sorted(used - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"rule uses unknown placeholder(s) {unknown}; known: {', '.join(PLACEHOLDERS)}")
        if used & {"window_start", "window_days"} and self.window_days is None:
            raise ValueError("rule uses {window_start}/{window_days} but the tag sets no window_days")
        return self


class ThirdPartySpec(Frozen):
    """How DMP tags (silver ``dmp_tags``) become member tags ``<prefix><tag>``."""

    owner: str = Field(min_length=1)
    prefix: str = Field("dmp_", pattern=r"^[a-z][a-z0-9_]*$")
    window_days: int = Field(90, ge=1, le=3650)
    min_score: float = Field(0.5, ge=0, le=1)
    high_score: float = Field(0.8, ge=0, le=1)
    # Only listed DMP tags are merged (a governed vocabulary); name -> description.
    tags: dict[str, str] = Field(min_length=1)

    @field_validator("tags")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        require_snake_case(value, "DMP tag names")
        return value

    def tag_names(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{t}" for t in self.tags)


class TagsConfig(Frozen):
    tags: dict[str, TagSpec]
    third_party: ThirdPartySpec | None = None

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: dict[str, TagSpec]) -> dict[str, TagSpec]:
        require_snake_case(value, "tag names")
        return value

    @model_validator(mode="after")
    def _no_clash(self) -> TagsConfig:
        if self.third_party is not None:
            clash = sorted(set(self.tags) & set(self.third_party.tag_names()))
            if clash:
                raise ValueError(f"tags {clash} clash with third-party tag names")
        return self

    def tag_names(self) -> tuple[str, ...]:
        """Every tag a segment may name: rule tags, then third-party tags."""
        dmp = self.third_party.tag_names() if self.third_party else ()
        return (*self.tags, *dmp)

    def category(self, tag: str) -> str:
        return self.tags[tag].category if tag in self.tags else "third_party"


def load_tags(directory: Path | None = None) -> TagsConfig:
    """Load and validate ``conf/tags.yaml`` (without Spark: see ``engine.compile_rules``)."""
    return load_model(TagsConfig, TAGS_FILE, directory)
