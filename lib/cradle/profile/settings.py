"""Typed view of ``conf/profile.yaml``: life-stage, journey, orders-feed, RFM and state rules.

>>> cfg = load_profile()
>>> cfg.state.dormant_days
365
>>> Age.parse("6m").months, Age.parse("-280d").days
(6, -280)
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cradle.config import Frozen, load_model

PROFILE_FILE = "profile.yaml"
AGE_RE = re.compile(r"^(-?\d+)([dmy])$")


class Age(Frozen):
    """An age as whole calendar months or days (negative: before birth)."""

    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Age:
        m = AGE_RE.match(text.strip())
        if not m:
            raise ValueError(f"age {text!r}: expected '<n>m', '<n>d' or '<n>y' (e.g. 6m, -280d, 6y)")
        n, unit = int(m.group(1)), m.group(2)
        if unit == "d":
            return cls(days=n)
        return cls(months=n * (12 if unit == "y" else 1))

    def approx_days(self) -> float:
        return self.months * 30.4375 + self.days


def _age(value: object) -> object:
    return Age.parse(value) if isinstance(value, str) else value


class AgeRange(Frozen):
    """Ages [from, to); an open end is null."""

    from_: Age | None = Field(None, alias="from")
    to: Age | None = None

    _parse = field_validator("from_", "to", mode="before")(classmethod(lambda cls, v: _age(v)))

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.from_ is None and self.to is None:
            raise ValueError("an age range needs 'from' or 'to'")
        if self.from_ and self.to and self.from_.approx_days() >= self.to.approx_days():
            raise ValueError("'from' must be before 'to'")
        return self


class StageSpec(AgeRange):
    name: str


class FormulaStageSpec(AgeRange):
    stage: int = Field(ge=0, le=9)


class StatedRules(Frozen):
    new_pregnancy_after_days: int = Field(180, ge=0)
    confidence: dict[Literal["stated_birth_date", "stated_due_date", "stated_due_date_passed"], float]
    override_min_confidence: float = Field(0.9, ge=0, le=1)
    override_min_gap_days: int = Field(270, ge=0)


SignalKind = Literal["formula", "sample", "article_topic", "dmp_tag", "category_sku", "hospital"]


class SignalSpec(Frozen):
    name: str
    kind: SignalKind
    error: float = Field(gt=0, lt=0.5)
    min_score: float | None = None
    # Only the upper age bound holds for the youngest child (an older sibling's formula
    # says the youngest is at most that old, not that she is that old).
    youngest_bound_only: bool = False
    classes: dict[str, AgeRange] = Field(min_length=1)


class PriorRules(Frozen):
    from_stated: bool = True
    smoothing: float = Field(1.0, ge=0)
    preparing_vs_pregnant: float = Field(0.5, ge=0)


class LearningRules(Frozen):
    """How signal weights and confidence are learned from members with a stated date."""

    # Pseudo-events at the configured error rate that a class's learned agreement is
    # shrunk towards (a class few stated members show keeps near its prior).
    prior_weight: float = Field(20.0, ge=0)
    # Equal-width bins of the raw posterior share for isotonic calibration.
    calibration_bins: int = Field(20, ge=2, le=200)


class InferenceRules(Frozen):
    lookback_days: int = Field(ge=1)
    prior: PriorRules = PriorRules()
    learning: LearningRules = LearningRules()
    prior_from: Age
    prior_to: Age
    min_confidence: float = Field(ge=0, le=1)
    signals: tuple[SignalSpec, ...] = Field(min_length=1)

    _parse = field_validator("prior_from", "prior_to", mode="before")(classmethod(lambda cls, v: _age(v)))

    @field_validator("signals")
    @classmethod
    def _unique(cls, value: tuple[SignalSpec, ...]) -> tuple[SignalSpec, ...]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"signal names must be unique, got {names}")
        return value


class LifeStageRules(Frozen):
    stages: tuple[StageSpec, ...] = Field(min_length=2)
    formula_stages: tuple[FormulaStageSpec, ...]
    stated: StatedRules
    inference: InferenceRules

    @field_validator("stages")
    @classmethod
    def _contiguous(cls, value: tuple[StageSpec, ...]) -> tuple[StageSpec, ...]:
        if value[0].from_ is not None or value[-1].to is not None:
            raise ValueError("the first stage must have no 'from' and the last no 'to'")
        for a, b in itertools.pairwise(value):
            if a.to != b.from_:
                raise ValueError(f"stage {b.name!r} must start where {a.name!r} ends")
        return value

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)


class JourneyRules(Frozen):
    own_series: tuple[str, ...] = Field(min_length=1)
    formula_categories: tuple[str, ...] = Field(min_length=1)
    sample_categories: tuple[str, ...] = ()
    sample_events: tuple[str, ...] = ()
    loyal_min_orders: int = Field(2, ge=2)
    lost_after_days: int = Field(ge=1)
    member_tier: dict[Literal["education", "trial", "new_customer", "loyal", "lost"], str]

    @field_validator("member_tier")
    @classmethod
    def _all_stages(cls, value: dict[str, str]) -> dict[str, str]:
        missing = {"education", "trial", "new_customer", "loyal", "lost"} - set(value)
        if missing:
            raise ValueError(f"member_tier needs every journey stage; missing {sorted(missing)}")
        return value


class OrdersFeed(Frozen):
    """How one table's columns map to the order contract (Spark SQL expressions)."""

    table: str
    customer: str
    order_id: str
    order_date: str
    amount: str
    channel: str = "null"
    store_id: str = "null"
    where: str | None = None


class RfmRules(Frozen):
    window_days: int = Field(365, ge=1)
    quintiles: int = Field(5, ge=2, le=10)
    value_tiers: dict[Literal["high", "medium", "low"], int]

    @model_validator(mode="after")
    def _tiers(self) -> RfmRules:
        t = self.value_tiers
        if set(t) != {"high", "medium", "low"} or not t["high"] > t["medium"] > t["low"]:
            raise ValueError("value_tiers needs high > medium > low (minimum R+F+M per tier)")
        return self


class ChurnRules(Frozen):
    medium_after_days: int = Field(ge=1)
    high_after_days: int = Field(ge=1)


class Interaction(Frozen):
    table: str
    date: str
    where: str | None = None


class StateRules(Frozen):
    dormant_days: int = Field(365, ge=1)
    churn_risk: ChurnRules
    interactions: tuple[Interaction, ...] = Field(min_length=1)


class AgeBand(Frozen):
    name: str
    from_: int | None = Field(None, alias="from")
    to: int | None = None


class Demographics(Frozen):
    age_bands: tuple[AgeBand, ...] = Field(min_length=1)
    regions: dict[str, tuple[str, ...]]

    @field_validator("regions")
    @classmethod
    def _prefixes_once(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        seen: dict[str, str] = {}
        for region, prefixes in value.items():
            for p in prefixes:
                if p in seen:
                    raise ValueError(f"province prefix {p} is in both {seen[p]} and {region}")
                seen[p] = region
        return value


class ProfileConfig(Frozen):
    life_stage: LifeStageRules
    journey: JourneyRules
    orders: tuple[OrdersFeed, ...] = Field(min_length=1)
    rfm: RfmRules
    state: StateRules
    demographics: Demographics
    consent_purposes: tuple[str, ...] = Field(min_length=1)


def load_profile(directory: Path | None = None) -> ProfileConfig:
    """Load and validate ``conf/profile.yaml``."""
    return load_model(ProfileConfig, PROFILE_FILE, directory)
