"""OneID on small literal silver-like frames: guards, splits and stable ids.

Each test builds a few records of three toy sources (a CRM, store orders and app events)
with a registry shaped like conf/identity.yaml, runs the same pure transforms the stage
runs, and compares whole frames. Clusters are compared as "which record sits with which",
labelled by the smallest source key in the cluster, so the tests do not depend on hash ids.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from cradle.config import ConfigError
from cradle.identity.graph import identifier_occurrences, records
from cradle.identity.guards import blocked_list, cluster_records, value_status
from cradle.identity.settings import IdentityConfig, load_identity
from cradle.identity.stable_ids import assign_one_ids, id_events
from cradle.privacy import hmac_hex

KEY = bytes(range(32))
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

REGISTRY = IdentityConfig.model_validate(
    {
        "identifiers": {
            "member_id": {
                "priority": 1,
                "normalise": ["trim", "upper"],
                "max_per_person": 3,
                "hub_max_records": 1000,
                "hub_max_persons": 2,
                "columns": [{"table": "crm", "column": "member_id", "verified": True}],
            },
            "member_card": {
                "priority": 2,
                "normalise": ["trim", "digits"],
                "max_per_person": 3,
                "hub_max_records": 1000,
                "hub_max_persons": 2,
                "columns": [
                    {"table": "crm", "column": "card", "verified": True},
                    {"table": "pos", "column": "card"},
                ],
            },
            "mobile": {
                "priority": 3,
                "normalise": ["trim", "lower"],
                "plain_hash": "token",
                "blocked_plain": ["13800000000"],
                "blocked_from": [{"table": "stores", "column": "store_phone_token"}],
                "max_per_person": 1,
                "hub_max_records": 1000,
                "hub_max_persons": 2,
                "columns": [
                    {"table": "crm", "column": "mobile_token", "verified": True},
                    {"table": "pos", "column": "mobile_token"},
                    {"table": "app", "column": "mobile_token"},
                ],
            },
            "app_user_id": {
                "priority": 6,
                "max_per_person": 2,
                "hub_max_records": 1000,
                "hub_max_persons": 2,
                "columns": [{"table": "app", "column": "app_user_id"}],
            },
            "idfa": {
                "priority": 9,
                "normalise": ["trim", "upper"],
                "blocked_patterns": ["^[0-]+$"],
                "max_per_person": 3,
                "hub_max_records": 1000,
                "hub_max_persons": 1,
                "columns": [{"table": "app", "column": "idfa"}],
            },
        }
    }
)
KEYS = {"crm": ("member_id",), "pos": ("order_no",), "app": ("event_id",)}

CRM = "member_id string, card string, mobile_token string, _file string, _line int, _ingest_run_id string"
POS = "order_no string, card string, mobile_token string, _file string, _line int, _ingest_run_id string"
APP = (
    "event_id string, app_user_id string, idfa string, mobile_token string, "
    "_file string, _line int, _ingest_run_id string"
)
CLUSTERS = T.StructType(
    [T.StructField("source_key", T.StringType(), False), T.StructField("cluster_of", T.StringType(), True)]
)


def tok(mobile: str) -> str:
    return hmac_hex(KEY, mobile)


def silver(spark: SparkSession, crm=(), pos=(), app=()) -> dict[str, DataFrame]:
    """Toy silver tables; lineage columns are filled in."""

    def lineage(rows, width):
        return [(*r, "f.csv", i + 1, "run1") for i, r in enumerate(rows) if len(r) == width]

    return {
        "crm": spark.createDataFrame(lineage(crm, 3), CRM),
        "pos": spark.createDataFrame(lineage(pos, 3), POS),
        "app": spark.createDataFrame(lineage(app, 4), APP),
    }


def stores(spark: SparkSession, phones: list[str]) -> dict[str, DataFrame]:
    return {
        "stores": spark.createDataFrame([(p,) for p in phones], "store_phone_token string")
        if phones
        else spark.createDataFrame([], "store_phone_token string")
    }


def resolve(spark: SparkSession, tables: dict[str, DataFrame], store_phones: list[str] = ()):
    """The stage's full-rebuild path on literal frames: (clusters, values, audit, links)."""
    occ = identifier_occurrences(tables, KEYS, REGISTRY).localCheckpoint()
    recs = records(tables, KEYS)
    blocked = blocked_list(spark, REGISTRY, KEY, stores(spark, list(store_phones)))
    values = value_status(occ, blocked, REGISTRY).localCheckpoint()
    clusters, clustered, audit = cluster_records(recs, occ, values, REGISTRY, "builtin", "two_phase")
    return clusters.join(recs, on="record_id", how="inner"), values, audit, clustered


def grouping(clusters: DataFrame) -> DataFrame:
    """source_key -> the smallest source key of its cluster: the partition, id-free."""
    first = clusters.groupBy("cluster").agg(F.min("source_key").alias("cluster_of"))
    return clusters.join(first, on="cluster", how="inner").select("source_key", "cluster_of")


def expected(spark: SparkSession, rows: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(rows, CLUSTERS)


# --- registry ------------------------------------------------------------------------------


def test_blocked_plain_mobiles_become_tokens():
    mobile = REGISTRY.identifiers["mobile"]
    assert mobile.blocked_tokens(KEY) == (hmac_hex(KEY, "13800000000"),)
    registry = load_identity()
    assert "ad_events" in registry.tables() and "stores" in registry.reference_tables()


def test_unknown_key_and_wrong_type_fail_with_file_and_key(tmp_path: Path):
    (tmp_path / "identity.yaml").write_text(
        "identifiers:\n  mobile:\n    priority: high\n    hub_max_records: 1\n    hub_max_persons: 1\n"
        "    colums: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_identity(tmp_path)
    text = str(err.value)
    assert "identity.yaml: unknown key 'identifiers.mobile.colums'" in text
    assert "key 'identifiers.mobile.priority'" in text


# --- graphs --------------------------------------------------------------------------------


def test_chain_links_every_record_through_shared_identifiers(spark: SparkSession):
    # crm -card- pos -mobile- app -user- app -idfa- app: one person along a chain; a
    # stranger and a record with no identifier stay alone.
    tables = silver(
        spark,
        crm=[("M000000001", "100000000001", tok("13911110001"))],
        pos=[("P1", "100000000001", tok("13911110001")), ("P2", None, None)],
        app=[
            ("E1", "U1", None, tok("13911110001")),
            ("E2", "U1", "AAAA-1", None),
            ("E3", None, "aaaa-1 ", None),
            ("E4", "U9", "BBBB-2", None),
        ],
    )
    clusters, _, _, _ = resolve(spark, tables)
    assertDataFrameEqual(
        grouping(clusters),
        expected(
            spark,
            [
                ("M000000001", "E1"),
                ("P1", "E1"),
                ("E1", "E1"),
                ("E2", "E1"),
                ("E3", "E1"),
                ("E4", "E4"),
                ("P2", "P2"),
            ],
        ),
    )


def test_star_around_a_shared_store_phone_does_not_merge_customers(spark: SparkSession):
    store = tok("13700000000")
    walk_ins = [(f"P{i}", f"20000000000{i}", store) for i in range(1, 8)]
    tables = silver(spark, pos=walk_ins)
    # Not on the stores list: seven cards with one phone join at least ceil(7/3) = 3 people.
    clusters, values, _, _ = resolve(spark, tables)
    assertDataFrameEqual(grouping(clusters), expected(spark, [(f"P{i}", f"P{i}") for i in range(1, 8)]))
    assertDataFrameEqual(
        values.where(F.col("status") != "link").select(
            "id_type", "value", "records", "persons", "status", "reason"
        ),
        spark.createDataFrame(
            [("mobile", store, 7, 3, "hub", "hub: joins at least 3 people > limit 2")],
            "id_type string, value string, records long, persons long, status string, reason string",
        ),
    )
    # On the stores list it is blocked outright, whatever its counts.
    _, values, _, _ = resolve(spark, tables, store_phones=[store])
    assertDataFrameEqual(
        values.where(F.col("status") != "link").select("value", "status", "reason"),
        spark.createDataFrame(
            [(store, "blocked", "known placeholder: stores.store_phone_token")],
            "value string, status string, reason string",
        ),
    )


def test_all_zero_device_ids_and_test_mobiles_never_link(spark: SparkSession):
    tables = silver(
        spark,
        crm=[
            ("M000000001", "100000000001", tok("13800000000")),
            ("M000000002", "100000000002", tok("13800000000")),
        ],
        app=[
            ("E1", "U1", ZERO_UUID, None),
            ("E2", "U2", ZERO_UUID.replace("-", ""), None),
            ("E3", "U3", ZERO_UUID, None),
        ],
    )
    clusters, values, _, _ = resolve(spark, tables)
    assertDataFrameEqual(
        grouping(clusters),
        expected(spark, [(k, k) for k in ("M000000001", "M000000002", "E1", "E2", "E3")]),
    )
    assertDataFrameEqual(
        values.where(F.col("status") == "blocked").select("id_type", "reason"),
        spark.createDataFrame(
            [
                ("idfa", "blocked pattern ^[0-]+$"),
                ("idfa", "blocked pattern ^[0-]+$"),
                ("mobile", "blocked test value"),
            ],
            "id_type string, reason string",
        ),
    )


def test_family_phone_does_not_make_two_members_one(spark: SparkSession):
    # The mother's card with her sister's phone typed by the clerk: two members, each with
    # her own verified mobile. The order stays with the card (higher priority).
    mother, sister = tok("13911110001"), tok("13922220002")
    tables = silver(
        spark,
        crm=[("M000000001", "100000000001", mother), ("M000000002", "100000000002", sister)],
        pos=[("P1", "100000000001", sister), ("P2", "100000000002", sister), ("P3", None, mother)],
        app=[("E1", "U2", None, sister)],
    )
    clusters, _, audit, _ = resolve(spark, tables)
    assertDataFrameEqual(
        grouping(clusters),
        expected(
            spark,
            [
                ("M000000001", "M000000001"),
                ("P1", "M000000001"),
                ("P3", "M000000001"),
                ("M000000002", "E1"),
                ("P2", "E1"),
                ("E1", "E1"),
            ],
        ),
    )
    assertDataFrameEqual(
        audit.select("id_type", "values", "level", "outcome"),
        spark.createDataFrame(
            [("mobile", 2, 1, "split")], "id_type string, values long, level int, outcome string"
        ),
    )


def test_twins_are_one_mother(spark: SparkSession):
    # One registration per twin: two member ids and cards, one mother's phone and app.
    mum = tok("13933330003")
    tables = silver(
        spark,
        crm=[("M000000011", "300000000011", mum), ("M000000012", "300000000012", mum)],
        pos=[("P1", "300000000011", None), ("P2", "300000000012", None)],
        app=[("E1", "U7", None, mum)],
    )
    clusters, _, audit, _ = resolve(spark, tables)
    assertDataFrameEqual(
        grouping(clusters),
        expected(spark, [(k, "E1") for k in ("M000000011", "M000000012", "P1", "P2", "E1")]),
    )
    assert audit.count() == 0


def test_re_registered_person_is_one_person_but_a_third_card_holder_is_not(spark: SparkSession):
    # She re-registered at another store (new member id and card, same phone) and shops with
    # both cards. A different woman with a different phone stays apart.
    her = tok("13944440004")
    tables = silver(
        spark,
        crm=[
            ("M000000021", "400000000021", her),
            ("M000000022", "400000000022", " " + her + " "),
            ("M000000023", "400000000023", tok("13955550005")),
        ],
        pos=[("P1", "400000000021", None), ("P2", "4000-0000-0022", None), ("P3", "400000000023", None)],
    )
    clusters, _, _, _ = resolve(spark, tables)
    assertDataFrameEqual(
        grouping(clusters),
        expected(
            spark,
            [
                ("M000000021", "M000000021"),
                ("M000000022", "M000000021"),
                ("P1", "M000000021"),
                ("P2", "M000000021"),
                ("M000000023", "M000000023"),
                ("P3", "M000000023"),
            ],
        ),
    )


# --- stable ids ----------------------------------------------------------------------------

PREVIOUS = "record_id long, one_id string, one_id_since date"
EVENTS = "event string, old_one_id string, one_id string, cause_type string, cause_value string, records long"


def ids_by_key(assigned: DataFrame, clusters: DataFrame) -> DataFrame:
    return assigned.join(clusters.select("record_id", "source_key"), on="record_id", how="inner").select(
        "source_key", "one_id"
    )


def test_merge_across_two_runs_keeps_the_oldest_id_and_logs_the_cause(spark: SparkSession):
    mum = tok("13966660006")
    day1 = silver(
        spark,
        crm=[("M000000031", "500000000031", mum), ("M000000039", "500000000039", tok("13977770007"))],
        app=[("E1", "U31", "CCCC-3", None), ("E2", "U31", None, None)],
    )
    clusters1, _, _, _ = resolve(spark, day1)
    # Give the app person the *newer* but alphabetically smaller id, so "oldest" is tested.
    ids = {"M000000031": ("OB", date(2026, 1, 1)), "M000000039": ("OZ", date(2026, 1, 1))}
    ids |= {"E1": ("OA", date(2026, 1, 5)), "E2": ("OA", date(2026, 1, 5))}
    previous = clusters1.select("record_id", "source_key").join(
        spark.createDataFrame(
            [(k, v[0], v[1]) for k, v in ids.items()], "source_key string, one_id string, s date"
        ),
        on="source_key",
        how="inner",
    )
    previous = previous.select("record_id", "one_id", F.col("s").alias("one_id_since"))
    # Day 2: she logs in to the app with her phone, which joins the two clusters.
    day2 = silver(
        spark,
        crm=[("M000000031", "500000000031", mum), ("M000000039", "500000000039", tok("13977770007"))],
        app=[("E1", "U31", "CCCC-3", None), ("E2", "U31", None, None), ("E3", "U31", None, mum)],
    )
    clusters2, _, _, clustered = resolve(spark, day2)
    assigned = assign_one_ids(clusters2.select("record_id", "cluster"), previous, date(2026, 1, 6))
    assertDataFrameEqual(
        ids_by_key(assigned, clusters2),
        spark.createDataFrame(
            [("M000000031", "OB"), ("E1", "OB"), ("E2", "OB"), ("E3", "OB"), ("M000000039", "OZ")],
            "source_key string, one_id string",
        ),
    )
    assertDataFrameEqual(
        id_events(assigned, clustered),
        spark.createDataFrame([("merge", "OA", "OB", "app_user_id", "U31", 2)], EVENTS),
    )


def test_split_keeps_the_id_with_the_larger_piece_and_logs_the_other(spark: SparkSession):
    mother, sister = tok("13911110001"), tok("13922220002")
    tables = silver(
        spark,
        crm=[("M000000001", "100000000001", mother), ("M000000002", "100000000002", sister)],
        pos=[("P1", "100000000001", sister), ("P2", "100000000001", None)],
    )
    clusters, _, _, clustered = resolve(spark, tables)
    # Before the guard existed all four records had one id.
    previous = clusters.select(
        "record_id", F.lit("OLD").alias("one_id"), F.lit(date(2026, 1, 1)).alias("one_id_since")
    )
    assigned = assign_one_ids(clusters.select("record_id", "cluster"), previous, date(2026, 1, 6))
    by_key = ids_by_key(assigned, clusters)
    new_id = by_key.where(F.col("source_key") == "M000000002").first()["one_id"]
    assert new_id != "OLD" and new_id.startswith("O")
    assertDataFrameEqual(
        by_key,
        spark.createDataFrame(
            [("M000000001", "OLD"), ("P1", "OLD"), ("P2", "OLD"), ("M000000002", new_id)],
            "source_key string, one_id string",
        ),
    )
    assertDataFrameEqual(
        id_events(assigned, clustered),
        spark.createDataFrame([("split", "OLD", new_id, None, None, 1)], EVENTS),
    )


def test_untouched_people_keep_their_ids_and_new_ids_are_deterministic(spark: SparkSession):
    tables = silver(spark, crm=[("M000000041", "600000000041", tok("13988880008"))], pos=[("P1", None, None)])
    clusters, _, _, _ = resolve(spark, tables)
    previous = clusters.where(F.col("source") == "crm").select(
        "record_id", F.lit("OKEEP").alias("one_id"), F.lit(date(2025, 12, 1)).alias("one_id_since")
    )
    run = date(2026, 1, 6)
    first = assign_one_ids(clusters.select("record_id", "cluster"), previous, run)
    again = assign_one_ids(clusters.select("record_id", "cluster"), previous, run)
    assertDataFrameEqual(first, again)
    assertDataFrameEqual(
        first.where(F.col("one_id") == "OKEEP").select("one_id", "one_id_since", "previous_one_id"),
        spark.createDataFrame(
            [("OKEEP", date(2025, 12, 1), "OKEEP")],
            "one_id string, one_id_since date, previous_one_id string",
        ),
    )
