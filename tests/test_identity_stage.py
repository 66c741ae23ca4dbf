"""The identity stage end to end: literal landing files go through the real ingest stage,
identity runs after each day, and then:

* the incremental day gives every record the same one_id as ``--full`` on the same date;
* records of people the new day did not touch keep their rows (same run_id, same
  content), and the MERGE wrote exactly the rows that carry the new run's id;
* merges and splits are logged in ``one_id_merges`` with their cause;
* a run with nothing new returns before writing anything.

Members ``M7...``, store orders ``IDP..``, hospital sign-ups ``IH..``:

* day 1 (history): M1 has no mobile; IDP1 and IDP5 are orders on her card, IDP5 with a
  relative's mobile, which IH2 signs up with: one person. M2; IDP2 on a second card; M3;
  IDP8 on a card no member holds; IDP3 and IH1 share a mobile; M6 and IDP7 share a card.
* day 2 (the added day): M1 adds her own mobile (a changed CRM record): the person now
  holds two mobiles, the order's unverified mobile edge is dropped and IH2 splits off.
  IDP4 carries IDP2's card and M2's mobile, IDP9 IDP8's card and M3's mobile: two merges.
  A new member M5 with sign-up IH3. Untouched: {IDP3, IH1} and {M6, IDP7}.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import (
    IDENTITY_AUDIT,
    IDENTITY_GRAPH_STATS,
    IDENTITY_MAP,
    IDENTITY_RECORDS,
    IDENTITY_VALUES,
    JOB_RUNS,
    ONE_ID_MERGES,
)
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages

DAYS = [date(2026, 5, 1), date(2026, 5, 2)]
CRM_HEADER = "member_id,name,mobile,member_card_no,registered_at,updated_at\n"
POS_HEADER = "order_no,line_no,store_id,member_card_no,mobile,sku,qty,unit_price,amount,paid_at\n"
HOSPITAL_HEADER = "signup_id,hospital_id,name,mobile,signed_up_at\n"


def crm(day: date, *rows: tuple[str, str, str]) -> str:
    at = f"{day} 09:00:00"
    return CRM_HEADER + "".join(f"{m},王{m[-1]},{mobile},{card},{at},{at}\n" for m, mobile, card in rows)


def pos(day: date, *rows: tuple[str, str, str]) -> str:
    at = f"{day} 10:00:00"
    return POS_HEADER + "".join(
        f"{o},1,S70001,{card},{mobile},FS1-800,1,100,100,{at}\n" for o, card, mobile in rows
    )


def hospital(day: date, *rows: tuple[str, str]) -> str:
    at = f"{day} 08:00:00"
    return HOSPITAL_HEADER + "".join(f"{s},HP7,李{s[-1]},{mobile},{at}\n" for s, mobile in rows)


def mob(n: int) -> str:
    return f"158123400{n:02d}"


def card(n: int) -> str:
    return f"7000000000{n:02d}"


LANDING = {
    DAYS[0]: {
        "crm_members": crm(
            DAYS[0],
            ("M700000001", "", card(1)),
            ("M700000002", mob(2), card(2)),
            ("M700000003", mob(3), card(3)),
            ("M700000006", mob(10), card(6)),
        ),
        "pos_orders": pos(
            DAYS[0],
            ("IDP1", card(1), ""),
            ("IDP5", card(1), mob(7)),
            ("IDP2", card(12), ""),
            ("IDP3", "", mob(6)),
            ("IDP7", card(6), ""),
            ("IDP8", card(9), ""),
        ),
        "hospital_signups": hospital(DAYS[0], ("IH1", mob(6)), ("IH2", mob(7))),
    },
    DAYS[1]: {
        "crm_members": crm(DAYS[1], ("M700000001", mob(1), card(1)), ("M700000005", mob(8), card(5))),
        "pos_orders": pos(DAYS[1], ("IDP4", card(12), mob(2)), ("IDP9", card(9), mob(3))),
        "hospital_signups": hospital(DAYS[1], ("IH3", mob(8))),
    },
}
PEOPLE_AFTER_DAY_1 = {
    "IDP1|1": ["M700000001", "IDP1|1", "IDP5|1", "IH2"],
    "M700000002": ["M700000002"],
    "IDP2|1": ["IDP2|1"],
    "M700000003": ["M700000003"],
    "IDP8|1": ["IDP8|1"],
    "IDP3|1": ["IDP3|1", "IH1"],
    "IDP7|1": ["M700000006", "IDP7|1"],
}
PEOPLE_AFTER_DAY_2 = {
    "IDP1|1": ["M700000001", "IDP1|1", "IDP5|1"],
    "IH2": ["IH2"],
    "IDP2|1": ["M700000002", "IDP2|1", "IDP4|1"],
    "IDP8|1": ["M700000003", "IDP8|1", "IDP9|1"],
    "IDP3|1": ["IDP3|1", "IH1"],
    "IDP7|1": ["M700000006", "IDP7|1"],
    "IH3": ["M700000005", "IH3"],
}
UNTOUCHED_ON_DAY_2 = ["IDP3|1", "IH1", "M700000006", "IDP7|1"]
MINE = r"^(M70000000\d|IDP\d\|1|IH\d)$"  # this module's source keys
IDENTITY_TABLES = (
    IDENTITY_MAP,
    IDENTITY_RECORDS,
    IDENTITY_VALUES,
    IDENTITY_AUDIT,
    ONE_ID_MERGES,
    IDENTITY_GRAPH_STATS,
)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("identity_landing")
    for day, files in LANDING.items():
        for source, text in files.items():
            path = root / source / day.isoformat() / f"{source}_{day:%Y%m%d}_idt.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return root


def run(spark: SparkSession, env, stages: list[str], day: date, run_id: str, full: bool = False) -> None:
    run_stages(spark, env, stages, make_context(env, day, run_id, full=full))


def rows_of(lake: Lake) -> DataFrame:
    return lake.read(IDENTITY_RECORDS).where(F.col("source_key").rlike(MINE)).localCheckpoint()


def labelled(records: DataFrame, column: str = "one_id") -> dict[str, str]:
    """source_key -> smallest source key holding the same value of ``column`` (id-free)."""
    out = {}
    rows = records.select("source_key", column).collect()
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r[column], []).append(r["source_key"])
    for r in rows:
        out[r["source_key"]] = min(groups[r[column]])
    return out


def events_of(lake: Lake, day: date, before: DataFrame, after: DataFrame) -> list[tuple]:
    """The day's logged events of this module's records, each id replaced by the smallest
    source key that held it before the run (or after it, for an id the run issued)."""

    def smallest_key(rows: DataFrame) -> dict[str, str]:
        out: dict[str, str] = {}
        for r in rows.select("source_key", "one_id").collect():
            out[r["one_id"]] = min(out.get(r["one_id"], r["source_key"]), r["source_key"])
        return out

    old, new = smallest_key(before), smallest_key(after)
    events = lake.read(ONE_ID_MERGES).where(F.col("run_date") == F.lit(day)).collect()
    return sorted(
        (
            e["event"],
            old[e["old_one_id"]],
            old.get(e["one_id"], new.get(e["one_id"])),
            e["cause_type"],
            e["records"],
        )
        for e in events
        if e["old_one_id"] in old
    )


def people(groups: dict[str, list[str]]) -> dict[str, str]:
    return {key: label for label, keys in groups.items() for key in keys}


def test_incremental_day_matches_full_rewrites_only_touched_records_and_logs_events(
    spark: SparkSession, env, lake: Lake, landing: Path
) -> None:
    env = env.model_copy(update={"landing_root": str(landing)})
    run(spark, env, ["ingest", "identity"], DAYS[0], "idt-d1")
    after_d1 = rows_of(lake)
    assert labelled(after_d1) == people(PEOPLE_AFTER_DAY_1)
    run(spark, env, ["ingest", "identity"], DAYS[1], "idt-d2")
    after_d2 = rows_of(lake)
    assert labelled(after_d2) == people(PEOPLE_AFTER_DAY_2)

    # The day's events, ids replaced by the people that held them. Which of two merged
    # ids survives depends on the ids; the cause is the identifier the old id's holders
    # share with the others.
    events = events_of(lake, DAYS[1], after_d1, after_d2)
    assert [e for e in events if e[0] == "split"] == [("split", "IDP1|1", "IH2", None, 1)]
    merges = sorted((e for e in events if e[0] == "merge"), key=lambda e: min(e[1], e[2]))
    assert [{e[1], e[2]} for e in merges] == [{"IDP2|1", "M700000002"}, {"IDP8|1", "M700000003"}]
    for event, card_side in zip(merges, ("IDP2|1", "IDP8|1"), strict=True):
        assert event[3] == ("member_card" if event[1] == card_side else "mobile") and event[4] == 1
    assert len(events) == 3

    # Untouched people keep their rows exactly (content and run_id); the MERGE wrote
    # exactly the rows that now carry day 2's run id, all of them in touched people.
    untouched = F.col("source_key").isin(*UNTOUCHED_ON_DAY_2)
    assertDataFrameEqual(after_d2.where(untouched), after_d1.where(untouched))
    rewritten = {r["source_key"] for r in after_d2.where(F.col("run_id") == "idt-d2").collect()}
    assert rewritten & set(UNTOUCHED_ON_DAY_2) == set()
    assert {"M700000001", "IH2", "IDP4|1", "IDP9|1", "M700000005", "IH3"} <= rewritten
    all_rewritten = lake.read(IDENTITY_RECORDS).where(F.col("run_id") == "idt-d2").count()
    d2_run = lake.read(JOB_RUNS).where((F.col("run_id") == "idt-d2") & (F.col("job") == "identity")).first()
    assert d2_run["status"] == "succeeded" and d2_run["details"]["mode"] == "incremental"
    assert d2_run["rows_written"][IDENTITY_RECORDS.qualified_name] == all_rewritten

    # --full on the same date: the same one_id for every record of the lake.
    incremental_ids = lake.read(IDENTITY_RECORDS).select("record_id", "one_id").localCheckpoint()
    current = F.col("valid_to").isNull()
    map_columns = ("source", "source_key", "record_id", "one_id")
    incremental_map = lake.read(IDENTITY_MAP).where(current).select(*map_columns).localCheckpoint()
    run(spark, env, ["identity"], DAYS[1], "idt-d2-full", full=True)
    assertDataFrameEqual(lake.read(IDENTITY_RECORDS).select("record_id", "one_id"), incremental_ids)
    assertDataFrameEqual(lake.read(IDENTITY_MAP).where(current).select(*map_columns), incremental_map)
    assert lake.read(ONE_ID_MERGES).where(F.col("run_id") == "idt-d2-full").count() == 0

    # Nothing new: the stage returns before writing anything.
    versions = {t.name: lake.version(t) for t in IDENTITY_TABLES}
    run(spark, env, ["identity"], DAYS[1], "idt-d2-again")
    assert {t.name: lake.version(t) for t in IDENTITY_TABLES} == versions
    again = (
        lake.read(JOB_RUNS).where((F.col("run_id") == "idt-d2-again") & (F.col("job") == "identity")).first()
    )
    assert again["status"] == "succeeded" and again["details"]["mode"] == "nothing new"
