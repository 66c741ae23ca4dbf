"""Placeholders found from the data, not listed in the configuration (issue #11.2).

Literal silver-like frames run through the stage's pure transforms with the project's own
``conf/identity.yaml`` rules: placeholder patterns on the masked mobile and people counted
from the birth dates a value is seen with. Nothing here names a number the generator uses.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.identity.graph import identifier_occurrences, records
from cradle.identity.guards import blocked_list, cluster_records, value_status
from cradle.identity.settings import IdentityConfig, load_identity

KEY = bytes(range(32))
PROJECT = load_identity()
CRM = (
    "member_id string, mobile_token string, mobile_masked string, mother_birth_date string, "
    "_file string, _line int, _ingest_run_id string"
)


def registry() -> IdentityConfig:
    """The project's member_id, mobile and birth-date rules, on a one-table toy CRM."""
    ids = {}
    for id_type in ("member_id", "mobile", "mother_birth_date"):
        spec = PROJECT.identifiers[id_type]
        column = next(c for c in spec.columns if c.table == "crm_members")
        ids[id_type] = spec.model_copy(
            update={"columns": (column.model_copy(update={"table": "crm"}),), "blocked_from": ()}
        )
    return IdentityConfig(identifiers=ids)


def resolve(spark: SparkSession, rows: list[tuple]) -> tuple[DataFrame, DataFrame]:
    reg = registry()
    tables = {"crm": spark.createDataFrame([(*r, "f.csv", i + 1, "run1") for i, r in enumerate(rows)], CRM)}
    keys = {"crm": ("member_id",)}
    occ = identifier_occurrences(tables, keys, reg).localCheckpoint()
    recs = records(tables, keys)
    values = value_status(occ, blocked_list(spark, reg, KEY, {}), reg).localCheckpoint()
    clusters, _, _ = cluster_records(recs, occ, values, reg, "builtin", "two_phase")
    first = clusters.join(recs, "record_id").groupBy("cluster").agg(F.min("source_key").alias("cluster_of"))
    grouping = (
        clusters.join(recs, "record_id").join(first, "cluster").select("source_key", "cluster_of")
    )
    return grouping, values


def test_project_registry_lists_no_test_numbers():
    for spec in PROJECT.identifiers.values():
        assert spec.blocked_plain == ()


def test_placeholder_patterns_on_the_masked_mobile_never_link(spark: SparkSession):
    rows = [
        ("M1", "t_rep", "136****6666", None),  # 13666666666: third digit repeated
        ("M2", "t_rep", "136****6666", None),
        ("M3", "t_round", "139****0000", None),  # 13900000000
        ("M4", "t_round", "139****0000", None),
        ("M5", "t_run", "158****5678", None),  # 15812345678
        ("M6", "t_run", "158****5678", None),
        ("M7", "t_real", "138****8001", None),  # an ordinary number links
        ("M8", "t_real", "138****8001", None),
    ]
    grouping, values = resolve(spark, rows)
    assertDataFrameEqual(
        grouping,
        spark.createDataFrame(
            [("M1", "M1"), ("M2", "M2"), ("M3", "M3"), ("M4", "M4"), ("M5", "M5"), ("M6", "M6"),
             ("M7", "M7"), ("M8", "M7")],
            "source_key string, cluster_of string",
        ),
    )
    assert [r["value"] for r in values.where(F.col("id_type") == "mobile").collect()] == ["t_real"]


def test_a_phone_seen_with_many_mothers_birth_dates_is_a_hub(spark: SparkSession):
    rows = [
        # a staff member's own phone on three test accounts with three birth dates
        ("M1", "t_staff", "137****2468", "1990-01-01"),
        ("M2", "t_staff", "137****2468", "1985-05-05"),
        ("M3", "t_staff", "137****2468", "1992-02-02"),
        # a mother who registered twice: one birth date, the second registration has none
        ("M4", "t_mum", "135****1357", "1994-07-08"),
        ("M5", "t_mum", "135****1357", None),
        # a family phone: two mothers, two birth dates, stays within the split rule's reach
        ("M6", "t_family", "186****9753", "1991-03-03"),
        ("M7", "t_family", "186****9753", "1993-04-04"),
    ]
    grouping, values = resolve(spark, rows)
    assertDataFrameEqual(
        values.where(F.col("id_type") == "mobile").select("value", "persons", "status", "reason"),
        spark.createDataFrame(
            [
                ("t_staff", 3, "hub", "hub: joins at least 3 people > limit 2"),
                ("t_mum", 1, "link", None),
                ("t_family", 2, "link", None),
            ],
            "value string, persons long, status string, reason string",
        ),
    )
    # the family phone links two member records that the split rule then separates
    # (one mobile each is fine; two members each keep their own member_id)
    assertDataFrameEqual(
        grouping.where(F.col("source_key").isin("M1", "M2", "M3", "M4", "M5")),
        spark.createDataFrame(
            [("M1", "M1"), ("M2", "M2"), ("M3", "M3"), ("M4", "M4"), ("M5", "M4")],
            "source_key string, cluster_of string",
        ),
    )
