"""``cradle segment preview "EXPR"``: size a segment and show a masked sample, writing nothing.

The sample shows one_id and the masked mobile (138****8000) from CRM only; plain
personal data is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cradle.catalog import IDENTITY_MAP, silver_tables
from cradle.config import ConfigError
from cradle.lake import Lake
from cradle.segments.expressions import parse, to_column
from cradle.segments.members import check_expressions, masked_contacts, sample
from cradle.segments.settings import load_segments, profile_fields
from cradle.segments.stage import read_inputs, runnable
from cradle.sources import load_sources
from cradle.tags.engine import with_one_id
from cradle.tags.settings import load_tags

PREVIEW = "preview"


@dataclass(frozen=True)
class Preview:
    expression: str
    as_of: date
    size: int
    people: int  # everyone the expression was evaluated over
    sample: list[tuple[str, str | None]]  # (one_id, mobile_masked)


def preview(lake: Lake, text: str, as_of: date, limit: int = 10) -> Preview:
    """Evaluate ``text`` as of ``as_of`` over the lake's profile and tags; write nothing."""
    tag_names = load_tags().tag_names()
    expression = parse(PREVIEW, text, profile_fields(), tag_names, load_segments().limits.limits())
    inputs = read_inputs(lake, as_of, tag_names)
    ready, skipped = runnable({PREVIEW: expression}, inputs.has_profile)
    if skipped:
        raise ConfigError(f"segment '{PREVIEW}': {skipped[PREVIEW]}")
    check_expressions(inputs.wide, ready, as_of)
    wide = inputs.wide.localCheckpoint()
    matches = wide.where(to_column(expression, as_of)).select("one_id").localCheckpoint()
    crm_table = silver_tables(load_sources().sources)["crm_members"]
    if lake.exists(crm_table) and lake.exists(IDENTITY_MAP):
        crm = with_one_id(lake.read(crm_table), lake.read(IDENTITY_MAP), "crm_members", crm_table.keys)
        contacts = masked_contacts(crm)
    else:
        contacts = lake.spark.createDataFrame([], "one_id string, mobile_masked string")
    rows = sample(matches, contacts, limit).collect()
    return Preview(
        expression=text,
        as_of=as_of,
        size=matches.count(),
        people=wide.count(),
        sample=[(r["one_id"], r["mobile_masked"]) for r in rows],
    )
