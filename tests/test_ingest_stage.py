"""The ingest stage end to end on small literal landing files."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import (
    DATA_QUALITY,
    INGEST_MANIFEST,
    INGEST_PARTITIONS,
    LANDED_RECORDS,
    QUARANTINE,
    silver_tables,
)
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.sources import load_sources

PLAIN = ["13800138000", "13912345678", "王小明", "深圳市南山区科技园1号"]
POS_HEADER = "order_no,line_no,store_id,member_card_no,mobile,sku,qty,unit_price,amount,paid_at\n"
POS_DAY1 = (
    POS_HEADER
    + "P1,1,S00001,100000000001,+86 138-0013-8000,FS1-800,2,100,200,2026-03-01 10:00:00\n"
    + "P1,1,S00001,100000000001,+86 138-0013-8000,FS1-800,2,100,200,2026-03-01 10:00:00\n"
    + "P2,1,S00001,,13800000000,FS2-800,1,100,-5,2026-03-01 11:00:00\n"
    + "P3,1,S00001,,,FS2-800,1,100,100,2026-02-30 11:00:00\n"
    + "P4,1,S00001,,,FS2-800,1,100,100,2026-02-25 11:00:00\n"
    + "P5,1,S00002,,１３９１２３４５６７８,FS2-800,1,100,100,2026-03-01 12:00:00\n"
    + "P6,1,S00001,,139"
)
POS_V2 = (
    POS_HEADER
    + "P1,1,S00001,100000000001,+86 138-0013-8000,FS1-800,2,90,180,2026-03-01 10:00:00\n"
    + "P5,1,S00002,,１３９１２３４５６７８,FS2-800,1,100,100,2026-03-01 12:00:00\n"
    + "P7,1,S00002,,,FS3-800,3,100,300,2026-03-01 18:00:00\n"
    + "P8,1,S00002,,,FS3-800,0,100,0,2026-03-01 18:00:00\n"
)
CRM = (
    "wechat_nickname,member_id,name,mobile,province,city,address,mother_birth_date,registered_at,updated_at,"
    "baby_gender\n"
    "宝妈,M000000001,王小明,13800138000,广东,深圳,深圳市南山区科技园1号,1992-05-01,2026-01-01 10:00:00,"
    "2026-03-01 09:00:00,F\n"
    "x,M000000002,李四,13700000000,广东省,深圳市,,2018-01-01,2026-01-01 10:00:00,2026-03-01 09:00:00,\n"
)
HOSPITAL = (
    "signup_id,hospital_id,hospital_name,name,mobile,signed_up_at\n"
    "H1,HP1,深圳市妇幼保健院,王小明,13912345678,2026-03-01 08:00:00\n"
)
WIFI_NO_MAC = (
    "store_id,first_seen,last_seen\n"
    "S00001,2026-03-01 10:00:00,2026-03-01 10:05:00\nS00001,2026-03-01 11:00:00,\n"
)
ECOM = (
    '{"platform": "tmall", "order_id": "T1", "buyer_id": "b1", "receiver_mobile": "139****5678", '
    '"status": "paid", '
    '"pay_time": "2026-03-01 20:00:00", "updated_at": "2026-03-01 20:00:00", '
    '"items": [{"sku": "FS1-800", "qty": 2, "price": 268.0}]}\n'
    "{broken\n"
    '{"platform": "tmall", "order_id": "T2", "status": "paid", "pay_time": "2026-03-01 20:00:00", '
    '"updated_at": "2026-03-01 20:00:00", "items": [{"sku": "FS1-800", "qty": 0, "price": 268.0}]}\n'
)


def put(root: Path, rel: str, content: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    put(root, "pos_orders/2026-03-01/pos_orders_20260301.csv", POS_DAY1.encode())
    put(root, "pos_orders/2026-03-01/pos_orders_20260301.resend.csv", POS_DAY1.encode())
    put(root, "crm_members/2026-03-01/crm_members_20260301.csv", b"\xef\xbb\xbf" + CRM.encode())
    put(root, "hospital_signups/2026-03-01/hospital_signups_20260301.csv", HOSPITAL.encode("gbk"))
    put(root, "wifi_probes/2026-03-01/wifi_probes_20260301.csv", WIFI_NO_MAC.encode())
    put(root, "ecom_orders/2026-03-01/ecom_orders_tmall_20260301.jsonl", ECOM.encode())
    return root


@pytest.fixture(scope="module")
def ingest_env(env, landing: Path):
    return env.model_copy(update={"landing_root": str(landing)})


def ingest(spark: SparkSession, env, day: date, run_id: str) -> None:
    run_stages(spark, env, ["ingest"], make_context(env, day, run_id))


def mine(frame: DataFrame, column: str = "file") -> DataFrame:
    """Rows from this module's files only (the test lake is shared)."""
    return frame.where(
        F.col(column).rlike(r"^(pos_orders|crm_members|hospital_signups|wifi_probes|ecom_orders)/2026-03-0")
    )


@pytest.fixture(scope="module")
def day_one(spark: SparkSession, ingest_env, lake: Lake) -> Lake:
    ingest(spark, ingest_env, date(2026, 3, 1), "day1")
    return lake


def test_manifest_statuses_and_accounting(day_one: Lake, spark: SparkSession) -> None:
    got = mine(day_one.read(INGEST_MANIFEST)).select(
        "file",
        "status",
        "encoding",
        "rows_read",
        "rows_accepted",
        "rows_quarantined",
        "rows_duplicate",
        "extra_columns",
    )
    want = [
        (
            "crm_members/2026-03-01/crm_members_20260301.csv",
            "loaded",
            "utf-8-sig",
            2,
            1,
            1,
            0,
            ["wechat_nickname"],
        ),
        ("ecom_orders/2026-03-01/ecom_orders_tmall_20260301.jsonl", "loaded", "utf-8", 3, 1, 2, 0, []),
        ("hospital_signups/2026-03-01/hospital_signups_20260301.csv", "loaded", "gb18030", 1, 1, 0, 0, []),
        ("pos_orders/2026-03-01/pos_orders_20260301.csv", "loaded", "utf-8", 7, 3, 3, 1, []),
        ("pos_orders/2026-03-01/pos_orders_20260301.resend.csv", "duplicate", "utf-8", 0, 0, 0, 0, []),
        ("wifi_probes/2026-03-01/wifi_probes_20260301.csv", "rejected", "utf-8", 2, 0, 2, 0, []),
    ]
    schema = (
        "file string, status string, encoding string, rows_read long, rows_accepted long, "
        "rows_quarantined long, rows_duplicate long, extra_columns array<string>"
    )
    assertDataFrameEqual(got, spark.createDataFrame(want, schema))


def test_quarantine_reasons(day_one: Lake, spark: SparkSession) -> None:
    got = mine(day_one.read(QUARANTINE)).select("file", "line", "reason")
    pos = "pos_orders/2026-03-01/pos_orders_20260301.csv"
    wifi = "wifi_probes/2026-03-01/wifi_probes_20260301.csv"
    want = [
        ("crm_members/2026-03-01/crm_members_20260301.csv", 3, "rule mother_age_18_55 failed"),
        (
            "ecom_orders/2026-03-01/ecom_orders_tmall_20260301.jsonl",
            2,
            "malformed JSON: Expecting property name enclosed in double quotes at column 2",
        ),
        (
            "ecom_orders/2026-03-01/ecom_orders_tmall_20260301.jsonl",
            3,
            "rule item_qty_and_price_positive failed",
        ),
        (pos, 4, "amount below minimum 0: '-5'"),
        (pos, 5, "invalid timestamp in paid_at: '2026-02-30 11:00:00'"),
        (pos, 8, "truncated: the file ends without a newline, so its last line was cut off"),
        (wifi, 2, "file lacks required column(s): mac"),
        (wifi, 3, "file lacks required column(s): mac"),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(want, "file string, line int, reason string"))
    masked = mine(day_one.read(QUARANTINE)).where("line = 4").select("raw_masked").first()[0]
    assert masked == "P2,1,S00001,,138****0000,FS2-800,1,100,-5,2026-03-01 11:00:00"


def test_silver_is_typed_normalised_and_protected(day_one: Lake, spark: SparkSession) -> None:
    tables = silver_tables(load_sources().sources)
    pos = mine(day_one.read(tables["pos_orders"]), "_file").select(
        "order_no", "mobile_masked", "mobile_status", "amount", "event_date", "_line"
    )
    want = [
        ("P1", "138****8000", "valid", 200.0, date(2026, 3, 1), 2),
        ("P4", None, "missing", 100.0, date(2026, 2, 25), 6),
        ("P5", "139****5678", "valid", 100.0, date(2026, 3, 1), 7),
    ]
    schema = (
        "order_no string, mobile_masked string, mobile_status string, amount double, event_date date, "
        "_line int"
    )
    assertDataFrameEqual(pos, spark.createDataFrame(want, schema))

    crm = mine(day_one.read(tables["crm_members"]), "_file").select(
        "member_id",
        "name_masked",
        "province",
        "province_code",
        "city",
        "city_code",
        "city_tier",
        "baby_gender",
    )
    assertDataFrameEqual(
        crm,
        spark.createDataFrame(
            [("M000000001", "王**", "广东省", "440000", "深圳市", "440300", 1, "F")],
            "member_id string, name_masked string, province string, province_code string, city string, "
            "city_code string, city_tier int, baby_gender string",
        ),
    )
    hospital = mine(day_one.read(tables["hospital_signups"]), "_file").select("hospital_name").first()[0]
    assert hospital == "深圳市妇幼保健院"
    # The same person's mobile gives the same token in every source, so identity can join.
    crm_token = mine(day_one.read(tables["crm_members"]), "_file").first()["mobile_token"]
    assert (
        mine(day_one.read(tables["pos_orders"]), "_file").where("order_no = 'P1'").first()["mobile_token"]
        == crm_token
    )


def test_late_rows_land_in_their_event_date_and_are_recorded(day_one: Lake, spark: SparkSession) -> None:
    got = day_one.read(INGEST_PARTITIONS).where("ingest_run_id = 'day1' AND source = 'pos_orders'")
    assertDataFrameEqual(
        got.select("event_date", "rows", "is_late"),
        spark.createDataFrame(
            [(date(2026, 2, 25), 1, True), (date(2026, 3, 1), 2, False)],
            "event_date date, rows long, is_late boolean",
        ),
    )
    table = silver_tables(load_sources().sources)["pos_orders"]
    assert DeltaTable.forPath(spark, day_one.path(table)).detail().first()["partitionColumns"] == [
        "event_date"
    ]


def test_data_quality_per_table_and_day(day_one: Lake) -> None:
    quality = day_one.read(DATA_QUALITY).where(
        "table_name = 'cradle_silver.pos_orders' AND day = '2026-03-01'"
    )
    metrics = {(r["metric"], r["field"]): r["value"] for r in quality.collect()}
    assert metrics[("rows", "*")] >= 2
    assert metrics[("validity", "mobile")] == 1.0
    assert metrics[("quarantined", "*")] >= 3
    assert metrics[("duplicate_files", "*")] >= 1
    assert 0 < metrics[("completeness", "member_card_no")] < 1


def snapshot(spark: SparkSession, lake: Lake) -> dict[str, tuple[int, list]]:
    """Contents and Delta version of every table ingestion writes."""
    tables = [
        LANDED_RECORDS,
        QUARANTINE,
        INGEST_MANIFEST,
        INGEST_PARTITIONS,
        DATA_QUALITY,
        *silver_tables(load_sources().sources).values(),
    ]
    out = {}
    for table in tables:
        lake.ensure(table)
        version = DeltaTable.forPath(spark, lake.path(table)).history(1).first()["version"]
        rows = sorted(map(str, lake.read(table).drop("ingested_at").collect()))
        out[table.qualified_name] = (version, rows)
    return out


def test_rerun_and_redelivery_change_nothing(
    day_one: Lake, spark: SparkSession, ingest_env, landing: Path
) -> None:
    before = snapshot(spark, day_one)
    ingest(spark, ingest_env, date(2026, 3, 1), "day1-again")
    # The same bytes delivered again under another name the next day.
    put(landing, "ecom_orders/2026-03-02/ecom_orders_tmall_20260301.csv.resend", ECOM.encode())
    put(landing, "ecom_orders/2026-03-02/ecom_orders_tmall_20260302.jsonl", ECOM.encode())
    ingest(spark, ingest_env, date(2026, 3, 1), "day1-third")  # folder 03-02 is after the run date
    assert snapshot(spark, day_one) == before


def test_correction_replaces_rows_and_nothing_is_doubled(
    day_one: Lake, spark: SparkSession, ingest_env, landing: Path, caplog: pytest.LogCaptureFixture
) -> None:
    test_rerun_and_redelivery_change_nothing  # noqa: B018 - runs after it (file order)
    put(landing, "pos_orders/2026-03-01/pos_orders_20260301.v2.csv", POS_V2.encode())
    with caplog.at_level(logging.DEBUG):
        ingest(spark, ingest_env, date(2026, 3, 2), "day2")
    statuses = {
        r["file"]: (r["status"], r["reason"])
        for r in mine(day_one.read(INGEST_MANIFEST))
        .where("source IN ('pos_orders', 'ecom_orders')")
        .collect()
    }
    assert statuses["pos_orders/2026-03-01/pos_orders_20260301.csv"] == (
        "superseded",
        "replaced by pos_orders/2026-03-01/pos_orders_20260301.v2.csv",
    )
    assert statuses["pos_orders/2026-03-01/pos_orders_20260301.v2.csv"] == ("loaded", None)
    assert statuses["ecom_orders/2026-03-02/ecom_orders_tmall_20260302.jsonl"][0] == "duplicate"

    pos = mine(day_one.read(silver_tables(load_sources().sources)["pos_orders"]), "_file").select(
        "order_no", "amount"
    )
    assertDataFrameEqual(
        pos,
        spark.createDataFrame(
            [("P1", 180.0), ("P5", 100.0), ("P7", 300.0)], "order_no string, amount double"
        ),
    )
    bronze = mine(day_one.read(LANDED_RECORDS)).where("source = 'pos_orders'")
    assert sorted({r["file"] for r in bronze.collect()}) == [
        "pos_orders/2026-03-01/pos_orders_20260301.v2.csv"
    ]
    assert bronze.count() == 4
    quarantined = (
        mine(day_one.read(QUARANTINE)).where("source = 'pos_orders'").select("file", "line", "reason")
    )
    assertDataFrameEqual(
        quarantined,
        spark.createDataFrame(
            [("pos_orders/2026-03-01/pos_orders_20260301.v2.csv", 5, "qty below minimum 1: '0'")],
            "file string, line int, reason string",
        ),
    )
    assert not any(p in record.getMessage() for record in caplog.records for p in PLAIN)


def test_no_plain_personal_data_in_any_table(day_one: Lake, spark: SparkSession) -> None:
    for table in [LANDED_RECORDS, QUARANTINE, *silver_tables(load_sources().sources).values()]:
        frame = day_one.read(table)
        text = F.concat_ws("\u0001", *(F.col(c).cast("string") for c in frame.columns))
        leaks = frame.where(F.greatest(*(F.instr(text, p) for p in PLAIN)) > 0).count()
        assert leaks == 0, f"{table.qualified_name} holds plain personal data"
