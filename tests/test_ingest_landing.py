"""Every delivered entry is accounted for: literal names, odd entries, quoted newlines,
UTF-16, empty files and in-place overwrites; unit cases on literal bytes and files, then
one ingest run end to end."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cradle.catalog import INGEST_MANIFEST, QUARANTINE, silver_tables
from cradle.ingest.landing import list_landing, read_contents
from cradle.ingest.parse import TRUNCATED, Line, parse_file
from cradle.ingest.plan import SKIPPED, DeliveredFile, KnownFile, plan_files
from cradle.lake import Lake
from cradle.pipeline import make_context, run_stages
from cradle.sources import load_sources

ODD_NAMES = ["pos [1].csv", "a*b.csv", "x{1}.csv", "with space.csv", "q?.csv", "back\\slash.csv"]

# --- parsing ---------------------------------------------------------------------------


def test_quoted_newline_is_one_record_numbered_by_its_first_line() -> None:
    content = b'a,b\r\n"x\r\ny",2\r\n3,"q""r"\n"p\n\nq",7\n"never closed,1\n5,6\n'
    parsed = parse_file(content, "csv")
    assert parsed.lines == [
        Line(2, '"x\ny",2', {"a": "x\ny", "b": "2"}),
        Line(4, '3,"q""r"', {"a": "3", "b": 'q"r'}),
        Line(5, '"p\n\nq",7', {"a": "p\n\nq", "b": "7"}),
        Line(8, '"never closed,1', {}, "malformed CSV: unexpected end of data"),  # confined to its line
        Line(9, "5,6", {"a": "5", "b": "6"}),
    ]


def test_truncated_last_record_is_detected_when_it_spans_lines() -> None:
    parsed = parse_file(b'a,b\n1,2\n3,"x\ny"', "csv")
    assert [(ln.line, ln.raw, ln.error) for ln in parsed.lines] == [
        (2, "1,2", None),
        (3, '3,"x\ny"', TRUNCATED),
    ]


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("order_no,name\nP1,深圳\n".encode("utf-16"), "utf-16-le"),  # BOM, little-endian
        (b"\xfe\xff" + "order_no,name\nP1,深圳\n".encode("utf-16-be"), "utf-16-be"),
        ("order_no,name\nP1,深圳\n".encode("utf-16-le"), "utf-16-le"),  # no BOM
        ("order_no,name\nP1,深圳\n".encode("utf-16-be"), "utf-16-be"),
    ],
)
def test_utf16_with_or_without_bom_is_decoded(content: bytes, encoding: str) -> None:
    parsed = parse_file(content, "csv")
    assert (parsed.encoding, parsed.error, parsed.header) == (encoding, None, ["order_no", "name"])
    assert parsed.lines == [Line(2, "P1,深圳", {"order_no": "P1", "name": "深圳"})]


def test_broken_utf16_is_rejected_naming_the_encoding() -> None:
    content = "order_no,name\nP1,x\n".encode("utf-16-le") + b"\x00\xd8"  # a lone surrogate
    parsed = parse_file(content, "csv")
    assert parsed.encoding is None
    assert parsed.error == "undecodable: looks like UTF-16-LE (no BOM) but is not valid"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"a,b\n", b"a,b"])
def test_empty_and_header_only_files_have_no_records(content: bytes) -> None:
    parsed = parse_file(content, "csv")
    assert (parsed.lines, parsed.error) == ([], None)


# --- the plan ---------------------------------------------------------------------------


def entry(file: str, checksum: str, size: int = 10, records: int | None = 1, regular: bool = True):
    return DeliveredFile(
        file, "file:/l/" + file, date(2026, 4, 1), size, checksum, "utf-8", ("a",), None,
        datetime(2026, 4, 1, 8), records, regular,
    )  # fmt: skip


def test_plan_skips_odd_entries_and_marks_empty_files() -> None:
    new = [
        entry("s/2026-04-01/s_dir.csv", "", size=0, records=None, regular=False),
        entry("s/2026-04-01/s_zero.csv", "e0", size=0, records=0),
        entry("s/2026-04-01/s_zero2.csv", "e0", size=0, records=0),  # same bytes, still empty
        entry("s/2026-04-01/s_head.csv", "h", records=0),
        entry("s/2026-04-01/s_same.csv", "c1"),  # touched only: bytes the manifest holds
        entry("s/2026-04-01/s_over.csv", "c3"),  # rewritten in place with new bytes
    ]
    known = [
        KnownFile("s/2026-04-01/s_same.csv", "s_same.csv", "c1", "loaded"),
        KnownFile("s/2026-04-01/s_over.csv", "s_over.csv", "c2", "loaded"),
        KnownFile("s/2026-03-01/s_old.csv", "s_old.csv", "h", "empty"),  # empty says nothing
    ]
    plans = plan_files(new, known, declared=("a",), required=("a",), fmt="csv")
    assert sorted((p.file.file, p.status, p.reason, p.replaces, p.is_read) for p in plans) == [
        ("s/2026-04-01/s_dir.csv", "skipped", SKIPPED, (), False),
        ("s/2026-04-01/s_head.csv", "empty", "empty: no records", (), False),
        ("s/2026-04-01/s_over.csv", "loaded", None, ("s/2026-04-01/s_over.csv",), True),
        ("s/2026-04-01/s_zero.csv", "empty", "empty: 0 bytes", (), False),
        ("s/2026-04-01/s_zero2.csv", "empty", "empty: 0 bytes", (), False),
    ]


# --- listing and reading ----------------------------------------------------------------


def test_listing_sees_every_entry_and_reads_odd_names_literally(spark: SparkSession, tmp_path: Path) -> None:
    day = tmp_path / "src" / "2026-04-01"
    day.mkdir(parents=True)
    for i, name in enumerate(ODD_NAMES):
        (day / name).write_bytes(f"content {i}\n".encode())
    (day / "folder.csv").mkdir()
    (day / "folder.csv" / "inner.csv").write_bytes(b"x\n")
    (day / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (tmp_path / "src" / "2026-04-02").mkdir()  # after the run date
    (tmp_path / "src" / "2026-04-02" / "later.csv").write_bytes(b"x\n")
    (tmp_path / "src" / "notes").mkdir()  # not a delivery folder
    (tmp_path / "src" / "notes" / "n.csv").write_bytes(b"x\n")

    listed = list_landing(spark, str(tmp_path), date(2026, 4, 1))
    assert sorted((e.source, e.name, e.size, e.regular, e.delivery_date) for e in listed) == sorted(
        [("src", n, 10, True, date(2026, 4, 1)) for n in ODD_NAMES]
        + [
            ("src", "folder.csv", 0, False, date(2026, 4, 1)),
            ("src", "dangling.csv", 0, False, date(2026, 4, 1)),
        ]
    )
    assert all(e.modified_ms and e.path == f"file:{day / e.name}" for e in listed)
    got = read_contents(spark, [e.path for e in listed if e.regular])
    want = [(f"file:{day / n}", bytearray(f"content {i}\n".encode())) for i, n in enumerate(ODD_NAMES)]
    assertDataFrameEqual(got, spark.createDataFrame(want, "path string, content binary"))


# --- end to end --------------------------------------------------------------------------

POS_HEADER = "order_no,line_no,store_id,member_card_no,mobile,sku,qty,unit_price,amount,paid_at\n"


def pos(order: str, amount: int = 100) -> str:
    return f"{order},1,S00001,,,FS1-800,1,{amount},{amount},2026-04-01 10:00:00\n"


CRM = (
    "member_id,name,mobile,address,registered_at,updated_at\n"
    'M000000401,赵六,13600000401,"广州市天河区\n体育西路1号",2026-04-01 09:00:00,2026-04-01 09:00:00\n'
)


@pytest.fixture(scope="module")
def odd_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("odd_landing")
    day = root / "pos_orders" / "2026-04-01"
    day.mkdir(parents=True)
    (day / "pos_orders_20260401 [1].csv").write_text(POS_HEADER + pos("Q1"))
    (day / "pos_orders_a*b.csv").write_text(POS_HEADER + pos("Q2"))
    (day / "pos_orders_x{1}.csv").write_text(POS_HEADER + pos("Q3"))
    (day / "pos_orders_with space.csv").write_text(POS_HEADER + pos("Q4"))
    (day / "pos_orders_utf16.csv").write_bytes((POS_HEADER + pos("Q5")).encode("utf-16-le"))
    (day / "pos_orders_folder.csv").mkdir()
    (day / "pos_orders_dangling.csv").symlink_to(root / "nowhere.csv")
    (day / "pos_orders_zero.csv").write_bytes(b"")
    (day / "pos_orders_header.csv").write_text(POS_HEADER)
    crm = root / "crm_members" / "2026-04-01"
    crm.mkdir(parents=True)
    (crm / "crm_members_20260401.csv").write_text(CRM)
    return root


def odd_rows(lake: Lake) -> list[tuple]:
    manifest = lake.read(INGEST_MANIFEST).where(F.col("file").contains("/2026-04-01/"))
    return sorted(
        (
            r["file"].rsplit("/", 1)[1],
            r["status"],
            r["reason"],
            r["encoding"],
            r["rows_read"],
            r["rows_accepted"],
        )
        for r in manifest.collect()
    )


@pytest.fixture(scope="module")
def odd_run(spark: SparkSession, env, odd_landing: Path, lake: Lake) -> Lake:
    odd_env = env.model_copy(update={"landing_root": str(odd_landing)})
    run_stages(spark, odd_env, ["ingest"], make_context(odd_env, date(2026, 4, 1), "odd1"))
    return lake


def test_every_entry_gets_a_manifest_row_and_sources_still_load(odd_run: Lake, spark: SparkSession) -> None:
    empty = "empty: no records"
    assert odd_rows(odd_run) == [
        ("crm_members_20260401.csv", "loaded", None, "utf-8", 1, 1),
        ("pos_orders_20260401 [1].csv", "loaded", None, "utf-8", 1, 1),
        ("pos_orders_a*b.csv", "loaded", None, "utf-8", 1, 1),
        ("pos_orders_dangling.csv", "skipped", SKIPPED, None, 0, 0),
        ("pos_orders_folder.csv", "skipped", SKIPPED, None, 0, 0),
        ("pos_orders_header.csv", "empty", empty, "utf-8", 0, 0),
        ("pos_orders_utf16.csv", "loaded", None, "utf-16-le", 1, 1),
        ("pos_orders_with space.csv", "loaded", None, "utf-8", 1, 1),
        ("pos_orders_x{1}.csv", "loaded", None, "utf-8", 1, 1),
        ("pos_orders_zero.csv", "empty", "empty: 0 bytes", "utf-8", 0, 0),
    ]
    tables = silver_tables(load_sources().sources)
    orders = odd_run.read(tables["pos_orders"]).where(F.col("order_no").startswith("Q"))
    assert sorted(r["order_no"] for r in orders.collect()) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    crm = odd_run.read(tables["crm_members"]).where("member_id = 'M000000401'")
    assert crm.select("_line").collect()[0][0] == 2
    assert odd_run.read(QUARANTINE).where(F.col("file").contains("/2026-04-01/")).count() == 0


def test_same_size_overwrite_in_place_is_a_new_version(
    odd_run: Lake, spark: SparkSession, env, odd_landing: Path
) -> None:
    odd_env = env.model_copy(update={"landing_root": str(odd_landing)})
    # A re-run finds nothing new.
    before = odd_run.read(INGEST_MANIFEST).count()
    run_stages(spark, odd_env, ["ingest"], make_context(odd_env, date(2026, 4, 1), "odd2"))
    assert odd_run.read(INGEST_MANIFEST).count() == before
    # New bytes, same size, same name.
    path = odd_landing / "pos_orders" / "2026-04-01" / "pos_orders_with space.csv"
    old = path.read_bytes()
    path.write_text(POS_HEADER + pos("Q4", 300))
    assert path.stat().st_size == len(old)
    stamp = path.stat().st_mtime + 5
    os.utime(path, (stamp, stamp))
    run_stages(spark, odd_env, ["ingest"], make_context(odd_env, date(2026, 4, 1), "odd3"))
    new = (
        odd_run.read(INGEST_MANIFEST)
        .where(F.col("file").endswith("pos_orders_with space.csv") & (F.col("ingest_run_id") == "odd3"))
        .select("rows_read", "rows_accepted", "size")
    )
    assert [tuple(r) for r in new.collect()] == [(1, 1, len(old))]
    amount = (
        odd_run.read(silver_tables(load_sources().sources)["pos_orders"])
        .where("order_no = 'Q4'")
        .select("amount")
    )
    assert [r[0] for r in amount.collect()] == [300.0]
    # The manifest supersedes only the old version's row.
    rows = (
        odd_run.read(INGEST_MANIFEST)
        .where(F.col("file").endswith("pos_orders_with space.csv"))
        .select("status", "rows_accepted", "ingest_run_id")
    )
    assertDataFrameEqual(
        rows,
        spark.createDataFrame(
            [("superseded", 1, "odd1"), ("loaded", 1, "odd3")],
            "status string, rows_accepted long, ingest_run_id string",
        ),
    )
