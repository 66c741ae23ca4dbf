"""Typed view of ``conf/identity.yaml``: the identifier registry.

    >>> registry = load_identity()
    >>> registry.identifiers["mobile"].max_per_person
    1

Blocked mobiles are configured as plain test numbers but silver only holds keyed tokens,
so ``blocked_tokens`` turns them into tokens with the same key and hashing as ingestion.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cradle.config import Frozen, load_model
from cradle.privacy import hmac_hex

IDENTITY_FILE = "identity.yaml"
Normalise = Literal["trim", "upper", "lower", "digits"]


class SourceColumn(Frozen):
    """One silver column that carries an identifier type."""

    table: str
    column: str
    where: str | None = None
    verified: bool = False


class ReferenceColumn(Frozen):
    """A reference-table column whose values are known placeholders (e.g. store phones)."""

    table: str
    column: str


class IdentifierSpec(Frozen):
    priority: int = Field(ge=1)
    links: bool = True
    normalise: tuple[Normalise, ...] = ()
    scope_column: str | None = None
    plain_hash: Literal["token", "md5_token"] | None = None
    blocked_values: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()
    blocked_plain: tuple[str, ...] = ()
    blocked_from: tuple[ReferenceColumn, ...] = ()
    max_per_person: int | None = Field(None, ge=1)
    hub_max_records: int = Field(ge=1)
    hub_max_persons: int = Field(ge=1)
    columns: tuple[SourceColumn, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _plain_needs_hash(self) -> IdentifierSpec:
        if self.blocked_plain and self.plain_hash is None:
            raise ValueError("blocked_plain needs plain_hash (token or md5_token) to compare with silver")
        return self

    def blocked_tokens(self, token_key: bytes) -> tuple[str, ...]:
        """``blocked_plain`` as the keyed tokens silver holds (same key, same hashing)."""
        if self.plain_hash == "token":
            return tuple(hmac_hex(token_key, v) for v in self.blocked_plain)
        if self.plain_hash == "md5_token":
            return tuple(
                hmac_hex(token_key, hashlib.md5(v.encode("utf-8")).hexdigest()) for v in self.blocked_plain
            )
        return ()


class IdentityConfig(Frozen):
    identifiers: dict[str, IdentifierSpec]

    @field_validator("identifiers")
    @classmethod
    def _not_empty(cls, value: dict[str, IdentifierSpec]) -> dict[str, IdentifierSpec]:
        if not value:
            raise ValueError("at least one identifier type is required")
        return value

    def tables(self) -> tuple[str, ...]:
        """Silver tables that carry identifiers, in first-mentioned order."""
        seen: dict[str, None] = {}
        for spec in self.identifiers.values():
            for col in spec.columns:
                seen.setdefault(col.table, None)
        return tuple(seen)

    def reference_tables(self) -> tuple[str, ...]:
        return tuple(sorted({r.table for s in self.identifiers.values() for r in s.blocked_from}))


def load_identity(directory: Path | None = None) -> IdentityConfig:
    """Load and validate ``conf/identity.yaml``."""
    return load_model(IdentityConfig, IDENTITY_FILE, directory)
