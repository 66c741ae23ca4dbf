"""Typed view of ``conf/sources.yaml`` (sources) and ``conf/regions.yaml`` (region codes)."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pyspark.sql import types as T

from cradle.config import Frozen, load_model

SIMPLE_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}
SPECIAL_TYPES = {"mobile", "md5", "device_id", "mac", "name", "address", "province", "city"}
DDL_PRIMITIVES = {**SIMPLE_TYPES, "bigint": T.LongType(), "boolean": T.BooleanType()}


def parse_ddl(text: str) -> T.DataType:
    """Parse nested DDL such as ``array<struct<sku:string,qty:int>>`` without a JVM.

    Supports the primitive names above, ``array<T>``, ``map<K,V>`` and ``struct<n:T,...>``.
    """
    type_, rest = _parse_type(text.replace(" ", ""))
    if rest:
        raise ValueError(f"unexpected text {rest!r} in type {text!r}")
    return type_


def _split_top(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]]


def _parse_type(text: str) -> tuple[T.DataType, str]:
    match = re.match(r"^(array|map|struct)<", text)
    if not match:
        name = re.match(r"^[a-z]+", text)
        if not name or name.group() not in DDL_PRIMITIVES:
            raise ValueError(f"unknown type at {text!r}")
        return DDL_PRIMITIVES[name.group()], text[name.end() :]
    depth, end = 0, None
    for i, ch in enumerate(text):
        depth += (ch == "<") - (ch == ">")
        if ch == ">" and depth == 0:
            end = i
            break
    if end is None:
        raise ValueError(f"unbalanced '<' in {text!r}")
    body, rest = text[match.end() : end], text[end + 1 :]
    kind = match.group(1)
    if kind == "array":
        return T.ArrayType(parse_ddl(body)), rest
    if kind == "map":
        key, value = _split_top(body)
        return T.MapType(parse_ddl(key), parse_ddl(value)), rest
    fields = []
    for part in _split_top(body):
        name, _, type_text = part.partition(":")
        fields.append(T.StructField(name, parse_ddl(type_text)))
    return T.StructType(fields), rest


class FieldSpec(Frozen):
    type: str
    required: bool = False
    # A child's data (birth or due date): sensitive personal information under PIPL, read
    # only by the profile stage and hidden from every rule a user writes.
    sensitive: bool = False
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    pattern: str | None = None

    @field_validator("type")
    @classmethod
    def known_type(cls, value: str) -> str:
        if value in SIMPLE_TYPES or value in SPECIAL_TYPES:
            return value
        try:
            parse_ddl(value)
        except ValueError:
            known = ", ".join([*SIMPLE_TYPES, *sorted(SPECIAL_TYPES)])
            raise ValueError(
                f"unknown field type {value!r}; use one of {known} or a Spark DDL type"
            ) from None
        return value

    @field_validator("pattern")
    @classmethod
    def valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @property
    def is_nested(self) -> bool:
        return self.type not in SIMPLE_TYPES and self.type not in SPECIAL_TYPES

    def spark_type(self) -> T.DataType:
        if self.type in SIMPLE_TYPES:
            return SIMPLE_TYPES[self.type]
        if self.is_nested:
            return parse_ddl(self.type)
        return T.StringType()


class Rule(Frozen):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    check: str
    action: Literal["reject"] = "reject"


class SourceSpec(Frozen):
    description: str
    format: Literal["csv", "jsonl"]
    files: str
    key: tuple[str, ...]
    event_time: str | None = None
    version_by: tuple[str, ...] = ()
    partitioned: bool = True  # by event_date, when event_time is set
    fields: dict[str, FieldSpec]
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def names_exist(self) -> SourceSpec:
        for role, names in (("key", self.key), ("version_by", self.version_by)):
            for name in names:
                if name not in self.fields:
                    raise ValueError(f"{role} field {name!r} is not declared under fields")
                if self.fields[name].type in ("mobile", "name", "address"):
                    raise ValueError(f"{role} field {name!r} is personal data and cannot be a key")
        if self.event_time and self.event_time not in self.fields:
            raise ValueError(f"event_time field {self.event_time!r} is not declared under fields")
        return self

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.fields.items() if spec.required)

    @property
    def has_event_date(self) -> bool:
        return self.event_time is not None


class SourcesConfig(Frozen):
    sources: dict[str, SourceSpec]


class RegionsConfig(Frozen):
    provinces: dict[str, tuple[str, ...]]
    cities: dict[str, tuple[str, int]]

    @cached_property
    def province_rows(self) -> list[tuple[str, str, str]]:
        """(alias, code, standard name) for every province alias."""
        return [(alias, code, names[0]) for code, names in self.provinces.items() for alias in names]

    @cached_property
    def city_rows(self) -> list[tuple[str, str, str, int]]:
        """(alias, code, standard name, tier); the alias drops the 市/地区 suffix too."""
        rows = []
        for code, (name, tier) in self.cities.items():
            short = re.sub(r"(市|地区)$", "", name)
            rows += [(alias, code, name, tier) for alias in dict.fromkeys((name, short))]
        return rows

    model_config = Frozen.model_config | {"ignored_types": (cached_property,)}


def load_sources(directory: Path | None = None) -> SourcesConfig:
    return load_model(SourcesConfig, "sources.yaml", directory)


def load_regions(directory: Path | None = None) -> RegionsConfig:
    return load_model(RegionsConfig, "regions.yaml", directory)
