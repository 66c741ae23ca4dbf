"""Ingestion pieces without a full run: parsing files, the exactly-once plan, columns, keys."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from cradle.config import load_env
from cradle.ingest import normalise as N
from cradle.ingest.parse import TRUNCATED, logical_name, parse_file
from cradle.ingest.plan import DeliveredFile, KnownFile, plan_files
from cradle.ingest.validate import RuleError, check_rules
from cradle.privacy import SecretsError, hmac_hex, load_keys, token
from cradle.sources import SourceSpec, load_sources, parse_ddl

# --- parsing ---------------------------------------------------------------------------


def test_gbk_file_is_detected_and_decoded() -> None:
    content = "signup_id,hospital_name,name\nH1,深圳市妇幼保健院,王小明\n".encode("gbk")
    parsed = parse_file(content, "csv")
    assert parsed.encoding == "gb18030"
    assert parsed.lines[0].fields == {
        "signup_id": "H1",
        "hospital_name": "深圳市妇幼保健院",
        "name": "王小明",
    }


def test_bom_is_stripped_and_headers_matched_by_name() -> None:
    content = "\ufeffQty , Order_No\n2,P1\n".encode()
    parsed = parse_file(content, "csv")
    assert parsed.encoding == "utf-8-sig"
    assert parsed.header == ["qty", "order_no"]
    assert parsed.lines[0].fields == {"qty": "2", "order_no": "P1"}


def test_every_physical_line_is_accounted_for() -> None:
    content = b'a,b\n1,2\n\n"unterminated,3\n1,2,3\n4,'
    lines = parse_file(content, "csv").lines
    assert [(ln.line, ln.error) for ln in lines] == [
        (2, None),
        (3, "empty line"),
        (4, "malformed CSV: unexpected end of data"),
        (5, "malformed CSV: 3 fields where the header has 2"),
        (6, TRUNCATED),
    ]
    assert lines[0].fields == {"a": "1", "b": "2"}


def test_jsonl_nested_values_stay_json_and_bad_lines_are_kept() -> None:
    content = b'{"id": "1", "items": [{"sku": "A", "qty": 2}], "n": 3, "x": ""}\n[1]\n{oops\n'
    lines = parse_file(content, "jsonl").lines
    assert lines[0].fields == {"id": "1", "items": '[{"sku": "A", "qty": 2}]', "n": "3", "x": None}
    assert lines[1].error == "malformed JSON: not an object"
    assert lines[2].error.startswith("malformed JSON: Expecting property name")


def test_undecodable_file_keeps_its_lines() -> None:
    content = b"a,b\n\xff\xfe\xfa,1\n"
    parsed = parse_file(content, "csv")
    assert parsed.encoding is None and parsed.error.startswith("undecodable")
    assert [ln.line for ln in parsed.lines] == [2]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pos_orders_20260301.csv", ("pos_orders_20260301.csv", 1)),
        ("pos_orders_20260301.v2.csv", ("pos_orders_20260301.csv", 2)),
        ("pos_orders_20260301.resend.csv", ("pos_orders_20260301.csv", 1)),
        ("pos_orders_20260301.csv.resend", ("pos_orders_20260301.csv", 1)),
        ("ecom_orders_jd_20260301.v12.jsonl", ("ecom_orders_jd_20260301.jsonl", 12)),
    ],
)
def test_logical_names(name: str, expected: tuple[str, int]) -> None:
    assert logical_name(name) == expected


# --- the exactly-once plan -------------------------------------------------------------


def delivered(
    file: str, checksum: str, day: int = 1, error: str | None = None, header=("a", "b")
) -> DeliveredFile:
    return DeliveredFile(file, "file:/l/" + file, date(2026, 3, day), 10, checksum, "utf-8", header, error)


def statuses(plans) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    return sorted((p.file.file, p.status, p.reason, p.replaces) for p in plans)


def test_plan_duplicates_corrections_and_rejections() -> None:
    new = [
        delivered("s/2026-03-01/s_1.csv", "c1"),
        delivered("s/2026-03-01/s_1.resend.csv", "c1"),  # same bytes
        delivered("s/2026-03-01/s_2.csv", "c2"),
        delivered("s/2026-03-01/s_2.v2.csv", "c3"),  # correction in the same delivery
        delivered("s/2026-03-02/s_0.csv", "c0"),  # identical to a file loaded yesterday
        delivered("s/2026-03-02/s_9.csv", "c9", header=("b",)),  # lacks required column a
        delivered("s/2026-03-02/s_8.v2.csv", "c8b"),  # corrects a file loaded yesterday
    ]
    known = [
        KnownFile("s/2026-02-28/s_0.csv", "s_0.csv", "c0", "loaded"),
        KnownFile("s/2026-03-01/s_8.csv", "s_8.csv", "c8", "loaded"),
    ]
    plans = plan_files(new, known, declared=("a", "b"), required=("a",), fmt="csv")
    assert statuses(plans) == [
        ("s/2026-03-01/s_1.csv", "loaded", None, ()),
        ("s/2026-03-01/s_1.resend.csv", "duplicate", "same bytes as s/2026-03-01/s_1.csv", ()),
        ("s/2026-03-01/s_2.csv", "superseded", "replaced by s/2026-03-01/s_2.v2.csv", ()),
        ("s/2026-03-01/s_2.v2.csv", "loaded", None, ()),
        ("s/2026-03-02/s_0.csv", "duplicate", "same bytes as s/2026-02-28/s_0.csv", ()),
        ("s/2026-03-02/s_8.v2.csv", "loaded", None, ("s/2026-03-01/s_8.csv",)),
        ("s/2026-03-02/s_9.csv", "rejected", "file lacks required column(s): a", ()),
    ]


def test_plan_reports_extra_columns_and_file_errors() -> None:
    plans = plan_files(
        [
            delivered("s/d/x.csv", "c1", header=("a", "b", "new")),
            delivered("s/d/y.csv", "c2", error="no header line"),
        ],
        [],
        declared=("a", "b"),
        required=("a",),
        fmt="csv",
    )
    by_file = {p.file.file: p for p in plans}
    assert by_file["s/d/x.csv"].extra_columns == ("new",)
    assert (by_file["s/d/y.csv"].status, by_file["s/d/y.csv"].reason) == ("rejected", "no header line")


# --- columns ---------------------------------------------------------------------------


def test_mobile_normalisation_and_masking(spark: SparkSession) -> None:
    raw = [
        "13800138000",
        "+86 138-0013-8000",
        "8613800138000",
        "+8613800138000",
        "138 0013 8000",
        "１３８００１３８０００",
        "138****8000",
        "12345",
        "23800138000",
        None,
    ]
    frame = spark.createDataFrame([(r,) for r in raw], "raw string")
    got = frame.select(
        "raw",
        N.mobile_digits(frame["raw"]).alias("digits"),
        N.masked_mobile_form(frame["raw"]).alias("masked_input"),
        N.mobile_status(frame["raw"]).alias("status"),
    )
    valid = [(r, "13800138000", None, "valid") for r in raw[:6]]
    want = [
        *valid,
        ("138****8000", None, "138****8000", "masked"),
        ("12345", None, None, "invalid"),
        ("23800138000", None, None, "invalid"),
        (None, None, None, "missing"),
    ]
    assertDataFrameEqual(
        got, spark.createDataFrame(want, "raw string, digits string, masked_input string, status string")
    )


def test_device_ids_macs_and_md5(spark: SparkSession) -> None:
    rows = [
        ("6d92078a-8246-4ba4-ae5b-76104861e7dc", "AA-BB-CC-DD-EE-0F", "5D41402ABC4B2A76B9719D911017C592"),
        ("6D92078A82464BA4AE5B76104861E7DC", "aabb.ccdd.ee0f", "not-an-md5"),
        ("9774D56D682E549C", "xx", None),
    ]
    frame = spark.createDataFrame(rows, "device string, mac string, md5 string")
    got = frame.select(
        N.device_id(frame["device"]).alias("device"),
        N.mac(frame["mac"]).alias("mac"),
        N.md5_hex(frame["md5"]).alias("md5"),
    )
    want = [
        ("6D92078A-8246-4BA4-AE5B-76104861E7DC", "aa:bb:cc:dd:ee:0f", "5d41402abc4b2a76b9719d911017c592"),
        ("6D92078A-8246-4BA4-AE5B-76104861E7DC", "aa:bb:cc:dd:ee:0f", None),
        ("9774d56d682e549c", None, None),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(want, "device string, mac string, md5 string"))


def test_spark_token_equals_python_hmac(spark: SparkSession) -> None:
    key = bytes(range(32))
    values = ["13800138000", "王小明", ""]
    frame = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r["t"] for r in frame.select(token(frame["v"], key).alias("t")).collect()]
    assert got == [hmac_hex(key, v) for v in values]


def test_cluster_profile_refuses_development_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRADLE_TOKEN_KEY", raising=False)
    monkeypatch.delenv("CRADLE_ENCRYPTION_KEY", raising=False)
    assert load_keys(load_env("local")).is_development
    with pytest.raises(SecretsError, match="refuses the development keys"):
        load_keys(load_env("cluster"))
    monkeypatch.setenv("CRADLE_TOKEN_KEY", "ab" * 32)
    monkeypatch.setenv("CRADLE_ENCRYPTION_KEY", "cd" * 32)
    keys = load_keys(load_env("cluster"))
    assert (keys.token_key, keys.is_development) == (bytes([0xAB] * 32), False)
    assert "ab" not in repr(keys)
    monkeypatch.setenv("CRADLE_TOKEN_KEY", "abc")
    with pytest.raises(SecretsError, match="64 hexadecimal"):
        load_keys(load_env("cluster"))


def test_rule_with_unknown_column_names_source_and_rule(spark: SparkSession) -> None:
    spec = load_sources().sources["wifi_probes"]
    bad = spec.model_copy(
        update={"rules": (spec.rules[0].model_copy(update={"check": "dwell_minutes > 0"}),)}
    )
    with pytest.raises(
        RuleError, match=r"source 'wifi_probes', rule 'last_seen_after_first_seen'.*dwell_minutes"
    ):
        check_rules(spark, "wifi_probes", bad)
    check_rules(spark, "wifi_probes", spec)  # the shipped rules compile


def test_source_registry_errors_name_the_field(tmp_path: Path) -> None:
    from cradle.config import ConfigError

    (tmp_path / "sources.yaml").write_text(
        "sources:\n  s:\n    description: x\n    format: csv\n    files: 's_*.csv'\n    key: [id]\n"
        "    fields:\n      id: {type: strnig}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"sources.s.fields.id.type.*unknown field type 'strnig'"):
        load_sources(tmp_path)
    assert (
        parse_ddl("array<struct<sku:string,qty:int>>").simpleString() == "array<struct<sku:string,qty:int>>"
    )
    assert isinstance(load_sources().sources["pos_orders"], SourceSpec)
