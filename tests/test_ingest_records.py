"""The JVM CSV parser against the reference parser, on tricky literal files: both must
give identical rows (file rows and record rows, every column)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from cradle.ingest.landing import PARSED_SCHEMA, parse_partition
from cradle.ingest.records import parse_csv

GBK = "signup_id,hospital_name,name\nH1,深圳市妇幼保健院,王五\n"
TRICKY: dict[str, bytes] = {
    "plain": b"a,b\n1,2\n3,4\n",
    "gbk": GBK.encode("gbk"),
    "bom": "\ufeffQty , Order_No\n2,P1\n".encode(),
    "utf16_bom_le": "a,b\n1,深圳\n".encode("utf-16"),
    "utf16_bom_be": b"\xfe\xff" + "a,b\n1,x\n".encode("utf-16-be"),
    "utf16_le": "a,b\n1,深圳\n".encode("utf-16-le"),
    "utf16_be": "a,b\n1,x\n".encode("utf-16-be"),
    "utf16_broken": "a,b\n1,x\n".encode("utf-16-le") + b"\x00\xd8",
    "undecodable": b"a,b\n\xff\xfe\xfa,1\n",
    "bom_then_invalid": b"\xef\xbb\xbfa,b\n\xff,1\n",
    "surrogate_bytes": b"a,b\n\xed\xa0\x80,1\n",
    "quoted_newlines": b'a,b\r\n"x\r\ny",2\r\n3,"q""r"\n"p\n\nq",7\n"never closed,1\n5,6\n',
    "quotes": b'a,b\n"a"b,c\na"b,c\n"a""b",c\n"a"\n,\n"",""\n " x",y\n"a"",x\n',
    "crlf_and_cr": b"a,b\r\n1,2\r\r\n3\r4,5\r\n\r\n",
    "empty_lines": b"a,b\n\n1,2\n\n\n",
    "whitespace": "a,b\n  ,\u3000\n\t,x\n".encode(),
    "truncated": b"a,b\n1,2\n4,",
    "truncated_multiline": b'a,b\n1,2\n3,"x\ny"',
    "truncated_crlf": b"a,b\r\n1,2\r",
    "extra_missing": b"a,b\n1,2,3\n1\n,,\n",
    "no_header": b"\n1,2\n3,4\n",
    "blank_header": b"  \n1,2\n",
    "dup_header": b"a,A ,b\n1,2,3\n",
    "bad_header": b'a,"b"x\n1,2\n',
    "header_only": b"a,b\n",
    "header_only_no_newline": b"a,b",
    "bom_only": b"\xef\xbb\xbf",
    "header_spaces": b' "First Name" ,\tLast  Name\nx,y\n',
    "nul_bytes": b"a,b\n1\x00,2\n",
    "lone_quote_field_end": b'a,b\n1,"\n',
}


def python_rows(path: str, content: bytes) -> list[tuple]:
    import pandas as pd

    batch = pd.DataFrame({"path": [path], "content": [content]})
    frame = next(iter(parse_partition(iter([batch]), {path: "csv"})))
    return [
        normalise(dict(zip(PARSED_SCHEMA.fieldNames(), row, strict=True)))
        for row in frame.itertuples(index=False)
    ]


def normalise(row: dict) -> tuple:
    fields = row["fields"]
    fields = None if fields is None else tuple(sorted(dict(fields).items()))
    header = row["header"]
    header = None if header is None else tuple(header)
    return (row["path"], row["kind"], int(row["line"]), row["raw"], fields, row["error"], row["encoding"],
            row["checksum"], header)  # fmt: skip


@pytest.fixture(scope="module")
def jvm_rows(spark: SparkSession) -> dict[str, list[tuple]]:
    frame = spark.createDataFrame(
        [(name, bytearray(content)) for name, content in TRICKY.items()], "path string, content binary"
    )
    out: dict[str, list[tuple]] = {name: [] for name in TRICKY}
    for row in parse_csv(frame).collect():
        out[row["path"]].append(normalise(row.asDict()))
    return out


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_jvm_csv_parser_matches_the_reference(name: str, jvm_rows: dict[str, list[tuple]]) -> None:
    want = sorted(python_rows(name, TRICKY[name]), key=lambda r: (r[1], r[2]))
    assert sorted(jvm_rows[name], key=lambda r: (r[1], r[2])) == want
