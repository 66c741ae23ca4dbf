"""Ingest under stress: the accounting checked before anything is published, no plain
mobile anywhere after ingesting phones in every format, and a SIGKILL at each fault point
followed by a re-run giving exactly the tables of an uninterrupted run.

The last two run ``cradle run ...`` as subprocesses, each on its own lake (a lake's
embedded metastore belongs to one process), and read the results by path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

import cradle.ingest.stage as ingest_stage
from cradle.catalog import JOB_RUNS, all_tables
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.privacy import hmac_hex, load_keys, protect_stray_mobiles
from cradle.sources import load_sources
from test_ingest_stage import POS_HEADER, put

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-04-02"

CRM_HEADER = (
    "member_id,name,mobile,province,city,address,register_channel,member_card_no,unionid,"
    "registered_at,updated_at\n"
)


# --- the accounting is checked before anything is published ---------------------------------


def test_an_unbalanced_file_publishes_nothing(
    spark: SparkSession, env, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    put(
        landing,
        "pos_orders/2026-05-01/pos_orders_20260501_acct.csv",
        (
            POS_HEADER
            + "A1,1,S00001,,13800138000,FS1-800,2,100,200,2026-05-01 10:00:00\n"
            + "A2,1,S00001,,,FS1-800,0,100,0,2026-05-01 10:00:00\n"
        ).encode(),
    )
    put(
        landing,
        "hospital_signups/2026-05-01/hospital_signups_20260501_acct.csv",
        (
            "signup_id,hospital_id,hospital_name,name,mobile,signed_up_at\n"
            "HA1,HP1,x,王五,13912345678,2026-05-01 08:00:00\n"
        ).encode(),
    )
    survey = ingest_stage.survey_records

    def one_row_too_many(*args, **kwargs):  # a parse that reports a row nobody typed
        counted = survey(*args, **kwargs)
        file = "pos_orders/2026-05-01/pos_orders_20260501_acct.csv"
        return ingest_stage.Survey(
            {**counted.rows_read, file: counted.rows_read[file] + 1}, counted.event_days
        )

    monkeypatch.setattr(ingest_stage, "survey_records", one_row_too_many)
    tables = [t for t in all_tables(load_sources().sources).values() if t is not JOB_RUNS]
    before = {t.qualified_name: lake.version(t) for t in tables}
    ingest_env = env.model_copy(update={"landing_root": str(landing)})
    with pytest.raises(ingest_stage.AccountingError, match=r"pos_orders_20260501_acct\.csv"):
        run_stages(spark, ingest_env, ["ingest"], make_context(ingest_env, date(2026, 5, 1), "acct-1"))

    assert {
        t.qualified_name: lake.version(t) for t in tables
    } == before  # no commit at all, not even a RESTORE
    assert not (Path(lake.root) / "_staging" / "ingest" / "acct-1").exists()
    run = lake.read(JOB_RUNS).where("run_id = 'acct-1'").collect()
    assert [r["status"] for r in run] == ["failed"]
    assert (
        "AccountingError: rows read != accepted + quarantined + duplicates for 1 file(s)" in run[0]["error"]
    )


# --- helpers for the subprocess tests ----------------------------------------------------------


def cradle(
    lake_root: Path, landing: Path, *args: str, fault: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CRADLE_FAULT"}
    if fault:
        env["CRADLE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "cradle", "run", *args, "--lake", str(lake_root), "--landing", str(landing)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=1800,  # generous: a loaded 2-core machine runs these many times slower
    )


def delta_tables(lake_root: Path) -> dict[str, Path]:
    """Every Delta table under the lake, by layer/name."""
    return {
        f"{log.parent.parent.name}.{log.parent.name}": log.parent
        for log in sorted(lake_root.glob("*/*/_delta_log"))
        if not log.parent.parent.name.startswith("_")
    }


# --- no plain mobile anywhere -------------------------------------------------------------------

FORMATS = [
    "13912340070",
    "+86 139-1234-0071",
    "0086 13912340072",
    "139 1234 0073",
    "139-1234-0074",
    "１３９１２３４００７５",  # full-width digits
    "\x001\x003\x009\x001\x002\x003\x004\x000\x000\x007\x006",  # NULs between the characters
]


def privacy_landing(root: Path) -> None:
    pos = [POS_HEADER]
    for i, phone in enumerate(FORMATS):
        pos.append(f"Q{i},1,S00001,{phone},{phone},FS1-800,1,100,100,2026-04-01 10:00:00\n")  # card = a phone
        pos.append(f"R{i},1,S00001,,,FS1-800,{phone},100,100,2026-04-01 10:00:00\n")  # a phone as quantity
    put(root, "pos_orders/2026-04-01/pos_orders_20260401.csv", "".join(pos).encode())
    # Delivered without its header line: the first data line, phone and all, is the header.
    put(root, "pos_orders/2026-04-01/pos_orders_20260401_b.csv", "".join(pos[1:3]).encode())
    crm = [CRM_HEADER]
    for i, phone in enumerate(FORMATS):
        crm.append(
            f"M00000010{i},王小{i},{phone},广东,深圳,深圳市南山区{phone},store,{phone},{phone},"
            "2026-01-01 10:00:00,2026-04-01 09:00:00\n"
        )
    put(root, "crm_members/2026-04-01/crm_members_20260401.csv", "".join(crm).encode())
    wechat = "".join(
        json.dumps(
            {
                "event_id": f"W{i}",
                "appid": "wx1",
                "openid": f"o{i}",
                "unionid": phone,
                "event": "view",
                "page": f"/pay?m={phone}&x=1",  # a phone inside free text
                "mobile": phone,
                "event_time": "2026-04-01 12:00:00",
            },
            ensure_ascii=False,
        )
        + "\n"
        for i, phone in enumerate(FORMATS)
    )
    put(root, "wechat_events/2026-04-01/wechat_events_20260401.jsonl", wechat.encode())


def test_stray_mobiles_are_recognised_in_every_format(spark: SparkSession, env) -> None:
    key = load_keys(env).token_key
    values = [
        *FORMATS,
        "100000000201",  # a real 12-digit card number
        "3f2a13912345678b",  # digits glued to letters (an id), not a phone
        "call 139 1234 0079 now",  # a phone inside text
        None,
    ]
    got = (
        spark.createDataFrame([(v,) for v in values], "v string")
        .select(protect_stray_mobiles(F.col("v"), key).alias("p"))
        .collect()
    )
    national = [f"1391234007{i}" for i in range(len(FORMATS))]
    want = [
        *(f"mobile:{hmac_hex(key, n)}" for n in national),
        "100000000201",
        "3f2a13912345678b",
        "call 139****0079 now",
        None,
    ]
    assert [r["p"] for r in got] == want


PHONE = re.compile(r"(?<!\d)(?:0086|86)?1[3-9]\d{9}(?!\d)")


def phones_in(text: str) -> list[str]:
    """11-digit mainland mobiles in any format: full-width folded, separators and NULs
    removed. 64-hex keyed tokens are dropped first (their digit runs are not phones)."""
    plain = unicodedata.normalize("NFKC", text)
    plain = re.sub(r"[0-9a-f]{32,}", " ", plain)
    plain = re.sub(r"[\s\-.\x00+()]", "", plain)
    return PHONE.findall(plain)


def as_text(frame: DataFrame) -> DataFrame:
    def text(field: T.StructField) -> F.Column:
        if isinstance(field.dataType, (T.MapType, T.ArrayType, T.StructType)):
            return F.to_json(F.col(field.name))
        return F.col(field.name).cast("string")

    return frame.select(F.concat_ws("\u0001", *(text(f) for f in frame.schema.fields)).alias("text"))


def test_no_plain_mobile_anywhere_after_ingest(spark: SparkSession, tmp_path: Path) -> None:
    lake_root, landing = tmp_path / "lake", tmp_path / "landing"
    privacy_landing(landing)
    done = cradle(lake_root, landing, "ingest", "--run-date", RUN_DATE, "--verbose")
    assert done.returncode == 0, done.stderr[-3000:]

    leaks: dict[str, list[str]] = {}
    tables = delta_tables(lake_root)
    assert {"silver.pos_orders", "bronze.landed_records", "bronze.quarantine", "ops.ingest_manifest"} <= set(
        tables
    )
    for name, path in tables.items():
        for row in as_text(spark.read.format("delta").load(str(path))).collect():
            if found := phones_in(row["text"] or ""):
                leaks.setdefault(name, []).extend(found)
    logs = list((lake_root / "_logs").glob("*.log"))
    assert logs
    for log_file in logs:
        if found := phones_in(log_file.read_text(encoding="utf-8", errors="replace")):
            leaks[str(log_file.name)] = found
    if found := phones_in(done.stdout + done.stderr):
        leaks["cli output"] = found
    assert leaks == {}

    # The phones were recognised, not lost: the card typed as a phone is the phone's token
    # in every format, and the quantity reasons are masked.
    pos = spark.read.format("delta").load(str(tables["silver.pos_orders"]))
    cards = {r["member_card_no"] for r in pos.where("order_no LIKE 'Q%'").collect()}
    assert len(cards) == len(FORMATS) and all(c.startswith("mobile:") for c in cards)
    quarantine = spark.read.format("delta").load(str(tables["bronze.quarantine"]))
    reasons = {r["reason"] for r in quarantine.where("file LIKE 'pos_orders/%'").collect()}
    assert "invalid int in qty: '139****0070'" in reasons


# --- a SIGKILL at each fault point, then a re-run -----------------------------------------------

RUN_IDS = ("ingest_run_id", "_ingest_run_id", "run_id")
# `modified` is the landing file's mtime: each copy of the landing area is written anew.
TIMES = ("ingested_at", "started_at", "ended_at", "duration_s", "modified")


def crash_landing(root: Path) -> None:
    """A few small files over three sources, a superseded file and a quarantined line."""
    put(
        root,
        "pos_orders/2026-04-01/pos_orders_20260401.csv",
        (POS_HEADER + "K1,1,S00001,,13800138000,FS1-800,2,100,200,2026-04-01 10:00:00\n").encode(),
    )
    put(
        root,
        "pos_orders/2026-04-01/pos_orders_20260401.v2.csv",
        (
            POS_HEADER
            + "K1,1,S00001,,13800138000,FS1-800,2,90,180,2026-04-01 10:00:00\n"
            + "K2,1,S00002,,,FS2-800,0,100,0,2026-03-31 10:00:00\n"
            + "K3,1,S00002,,,FS2-800,1,100,100,2026-03-30 10:00:00\n"
        ).encode(),
    )
    put(
        root,
        "crm_members/2026-04-01/crm_members_20260401.csv",
        (
            CRM_HEADER + "M000000201,王一,13700000001,广东,深圳,,store,100000000201,,"
            "2026-01-01 10:00:00,2026-04-01 09:00:00\n"
        ).encode(),
    )
    put(
        root,
        "hospital_signups/2026-04-02/hospital_signups_20260402.csv",
        (
            "signup_id,hospital_id,hospital_name,name,mobile,signed_up_at\n"
            "H9,HP1,某医院,李二,13600000002,2026-04-02 08:00:00\n"
        ).encode("gbk"),
    )


def decrypted(value: F.Column, key: bytes) -> F.Column:
    """Ciphertext (``enc:`` prefixed or not) as its plaintext; any other value unchanged."""
    blob = F.try_to_binary(F.regexp_replace(value, "^enc:", ""), F.lit("base64"))
    return F.coalesce(F.try_aes_decrypt(blob, F.lit(key), F.lit("GCM")).cast("string"), value)


def comparable(spark: SparkSession, path: Path, key: bytes) -> list[str]:
    """A table's rows, sorted, without run ids and timestamps, ciphertext decrypted (its IV
    is random, so equal plaintexts differ as ciphertext)."""
    frame = spark.read.format("delta").load(str(path))
    cols = []
    for field in frame.schema.fields:
        if field.name in RUN_IDS or field.name in TIMES:
            continue
        col = F.col(field.name)
        if isinstance(field.dataType, T.StringType):
            col = decrypted(col, key)
        elif isinstance(field.dataType, T.MapType):
            col = F.transform_values(col, lambda _, v: decrypted(v, key))
        cols.append(col.alias(field.name))
    return sorted(map(str, frame.select(*cols).collect()))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: an uninterrupted run on its own copy of the landing files."""
    root = tmp_path_factory.mktemp("crash_clean")
    crash_landing(root / "landing")
    done = cradle(root / "lake", root / "landing", "ingest", "--run-date", RUN_DATE)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "lake"


@pytest.mark.parametrize(
    "point", ["ingest.after_parse", "ingest.between_silver_merges", "ingest.before_manifest"]
)
def test_a_killed_ingest_rerun_gives_the_tables_of_a_clean_run(
    spark: SparkSession, env, clean_run: Path, tmp_path: Path, point: str
) -> None:
    lake_root, landing = tmp_path / "lake", tmp_path / "landing"
    crash_landing(landing)
    killed = cradle(lake_root, landing, "ingest", "--run-date", RUN_DATE, "--run-id", "killed", fault=point)
    assert killed.returncode == -9, f"the fault point {point} was not reached: {killed.stderr[-2000:]}"
    again = cradle(lake_root, landing, "ingest", "--run-date", RUN_DATE)
    assert again.returncode == 0, again.stderr[-3000:]

    key = load_keys(env).encryption_key
    want, got = delta_tables(clean_run), delta_tables(lake_root)
    assert set(got) == set(want)
    for name in sorted(want):
        if name == "ops.job_runs":
            continue
        assert comparable(spark, got[name], key) == comparable(spark, want[name], key), name
    runs = spark.read.format("delta").load(str(got["ops.job_runs"]))
    assert sorted((r["run_id"] == "killed", r["status"]) for r in runs.collect()) == [
        (False, "succeeded"),
        (True, "abandoned"),
    ]
    # job_runs counts the rows of the commits the run itself made.
    [rerun] = [r for r in runs.collect() if r["run_id"] != "killed"]
    bronze = spark.read.format("delta").load(str(got["bronze.landed_records"])).count()
    assert rerun["rows_written"]["cradle_bronze.landed_records"] == bronze == rerun["rows_read"]["landing"]
    staging = lake_root / "_staging"
    assert not staging.exists() or not any(p.is_file() for p in staging.rglob("*"))
