"""Parsing CSV files in the JVM with Spark built-ins: no Python per line.

``binaryFile`` contents -> encoding from the BOM / UTF-8 validity (``is_valid_utf8``; the
rest -- GBK/GB18030, UTF-16, undecodable -- is decoded per file by the reference
``cradle.ingest.parse.decode``, whole files at C speed in an Arrow UDF that receives only
those files' bytes) -> records split by a regular expression that follows the reference
parser's quoting rule (a quoted field may hold newlines; a quote that never closes is
confined to its line) -> line numbers from a running sum of newlines per file -> fields
by header name from a second regular expression, with the csv module's error messages.

``tests/test_ingest_records.py`` runs this and ``cradle.ingest.parse`` over the same
tricky files and requires identical rows. Not the default yet (``CRADLE_PARSER=jvm``):
on the bench's 20k-member day (20 CSV files, 28,431 records, loaded 2-core machine) it
took 10.1 s against the reference's 3.1 s; the higher-order functions over each record's
fields run interpreted, which is the first thing to change.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cradle.ingest.parse import TRUNCATED, UNEXPECTED_END, decode

# Python's str.isspace(), as a Java character class (Java's \s is ASCII only).
WS = r"[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUOTED = r'"[^"]*+(?:""[^"]*+)*+"'  # possessive: the first lone quote closes it, never a later one
RECORD = rf"((?:{QUOTED}|[^,\n]*)(?:,(?:{QUOTED}|[^,\n]*))*[^\n]*)(?:\n|\z)"
TOKEN = rf",(?:({QUOTED})([^,]*)|([^,]*))"  # over "," + record: every match is non-empty
NEWLINE = (
    "new-line character seen in unquoted field - do you need to open the file in universal-newline mode?"
)
AFTER_QUOTE = "',' expected after '\"'"

PARSED_COLUMNS = ["path", "kind", "line", "raw", "fields", "error", "encoding", "checksum", "header"]


def decode_in_python(spark) -> object:
    """The reference decoder as an Arrow UDF; called only for files the JVM cannot decode."""

    @F.pandas_udf("encoding string, text string, error string")
    def decode_files(contents: pd.Series) -> pd.DataFrame:
        rows = [decode(bytes(c)) if c is not None else (None, None, None) for c in contents]
        return pd.DataFrame(rows, columns=["encoding", "text", "error"])

    return decode_files


def decoded(contents: DataFrame) -> DataFrame:
    """(path, checksum, encoding, text, decode_error) per file."""
    content = F.col("content")
    bom = F.substring(content, 1, 3) == F.lit(bytearray(b"\xef\xbb\xbf"))
    body = F.when(bom, F.expr("substring(content, 4)")).otherwise(content)
    valid = F.expr("is_valid_utf8(cast(_body AS STRING))")
    nul_free = F.instr(F.substring(content, 1, 256).cast("string"), "\u0000") == 0
    jvm = F.when(bom & valid, "utf-8-sig").when(~bom & valid & nul_free, "utf-8")
    python = decode_in_python(contents.sparkSession)
    return (
        contents.withColumn("_body", body)
        .withColumn("_jvm", jvm)
        .withColumn("_py", python(F.when(F.col("_jvm").isNull(), content)))
        .select(
            "path",
            F.sha2(content, 256).alias("checksum"),
            F.coalesce("_jvm", "_py.encoding").alias("encoding"),
            F.when(F.col("_jvm").isNotNull(), F.col("_body").cast("string"))
            .otherwise(F.col("_py.text"))
            .alias("text"),
            F.col("_py.error").alias("decode_error"),
        )
    )


def blank(text: Column) -> Column:
    return text.rlike(rf"^{WS}*$")


def tokens(record: Column) -> Column:
    """Array of (value, error) per field of a record, csv-module semantics."""
    body = F.concat(F.lit(","), F.regexp_replace(record, r"\r+\z", ""))
    quoted = F.regexp_extract_all(body, F.lit(TOKEN), 1)
    junk = F.regexp_extract_all(body, F.lit(TOKEN), 2)
    plain = F.regexp_extract_all(body, F.lit(TOKEN), 3)

    def field(q: Column, i: Column) -> Column:
        j, u = F.get(junk, i), F.get(plain, i)
        value = F.when(q != "", F.replace(F.substring(q, F.lit(2), F.length(q) - 2), F.lit('""'), F.lit('"')))
        error = (
            F.when((q != "") & (j == ""), F.lit(None))
            .when((q != "") & j.startswith("\r"), F.lit(NEWLINE))
            .when(q != "", F.lit(AFTER_QUOTE))
            .when(u.startswith('"'), F.lit(UNEXPECTED_END))
            .when(F.instr(u, "\r") > 0, F.lit(NEWLINE))
        )
        return F.struct(value.otherwise(u).alias("v"), error.alias("e"))

    return F.transform(quoted, lambda q, i: field(q, i).alias("t"))


def first_error(toks: Column) -> Column:
    return F.get(F.filter(toks, lambda t: t["e"].isNotNull()), 0)["e"]


def header_name(value: Column) -> Column:
    """``cradle.ingest.parse.normalise_header`` in the JVM."""
    stripped = F.regexp_replace(F.regexp_replace(value, rf"^{WS}+|{WS}+$", ""), r'^"+|"+$', "")
    return F.regexp_replace(F.lower(stripped), rf"{WS}+", "_")


def parse_csv(contents: DataFrame) -> DataFrame:
    """Rows of ``landing.PARSED_SCHEMA`` for CSV files given as (path, content)."""
    files = decoded(contents)
    text = F.col("text")
    norm = F.regexp_replace(text, r"\r(?=\n)|\r\z", "")
    found = F.regexp_extract_all(norm, F.lit(RECORD), 1)
    files = files.select(
        "path",
        "checksum",
        "encoding",
        "decode_error",
        ((F.length(text) > 0) & ~text.endswith("\n")).alias("truncated"),
        F.slice(found, 1, F.size(found) - 1).alias("recs"),  # less the empty match at the end
    )
    head = F.get("recs", 0)
    head_toks = tokens(head)
    names = F.transform(head_toks, lambda t: header_name(t["v"]))
    dupes = F.array_sort(
        F.array_distinct(F.filter(names, lambda n: F.size(F.filter(names, lambda m: m == n)) > 1))
    )
    header_error = (
        F.when(F.size("recs") == 0, F.lit(None))
        .when(blank(head), F.lit("no header line"))
        .when(
            first_error(head_toks).isNotNull(), F.concat(F.lit("malformed header: "), first_error(head_toks))
        )
        .when(
            F.size(dupes) > 0,
            F.concat(
                F.lit("duplicate header column(s): ["),
                F.array_join(F.transform(dupes, lambda d: F.concat(F.lit("'"), d, F.lit("'"))), ", "),
                F.lit("]"),
            ),
        )
    )
    header = F.when(F.size("recs") == 0, F.lit(None)).when(blank(head), F.lit(None))
    header = header.when(first_error(head_toks).isNotNull(), F.lit(None)).otherwise(names)
    files = files.select(
        "*",
        header_error.alias("header_error"),
        header.alias("header"),
        F.greatest(F.size("recs") - 1, F.lit(0)).alias("records"),
        F.size("recs").alias("n"),
    )

    # One row per file (pos 0) and per record (pos >= 2; pos 1 is the header line). The
    # array itself is not carried along: each row would hold the whole file again.
    keep = ["path", "checksum", "encoding", "decode_error", "truncated", "header_error", "header"]
    keep += ["records", "n"]
    exploded = F.posexplode(F.concat(F.array(F.lit(None).cast("string")), "recs")).alias("pos", "raw")
    rows = files.select(*keep, exploded)
    before = Window.partitionBy("path").orderBy("pos").rowsBetween(Window.unboundedPreceding, -1)
    newlines = F.length("raw") - F.length(F.replace("raw", F.lit("\n"), F.lit("")))
    rows = rows.withColumn(
        "line", (F.col("pos") + F.coalesce(F.sum(newlines).over(before), F.lit(0))).cast("int")
    )
    rows = rows.where(F.col("pos") != 1)

    raw = F.col("raw")
    # Materialised once: the optimiser does not inline a regex used several times below.
    rows = rows.withColumn("_toks", tokens(raw)).withColumn("_err", first_error(F.col("_toks")))
    toks, err = F.col("_toks"), F.col("_err")
    count_error = F.format_string(
        "malformed CSV: %d fields where the header has %d", F.size(toks), F.size("header")
    )
    record_error = (
        F.when(F.col("header_error").isNotNull(), F.lit(None))
        .when(raw == "", F.lit("empty line"))
        .when(err.isNotNull(), F.concat(F.lit("malformed CSV: "), err))
        .when(F.size(toks) != F.size("header"), count_error)
    )
    none = F.create_map().cast("map<string,string>")
    values = F.transform(toks, lambda t: F.when(blank(t["v"]), F.lit(None)).otherwise(t["v"]))
    fields = F.when(
        F.col("header_error").isNull() & (raw != "") & err.isNull() & (F.size(toks) == F.size("header")),
        F.map_from_arrays("header", values),
    ).otherwise(none)
    last = F.col("truncated") & (F.col("pos") == F.col("n")) & (F.col("pos") >= 2)
    is_file = F.col("pos") == 0
    return rows.select(
        "path",
        F.when(is_file, "file").otherwise("record").alias("kind"),
        F.when(is_file, F.col("records")).otherwise(F.col("line")).cast("int").alias("line"),
        "raw",
        F.when(~is_file, fields).alias("fields"),
        F.when(is_file, F.coalesce("decode_error", "header_error"))
        .when(last, F.lit(TRUNCATED))
        .otherwise(record_error)
        .alias("error"),
        F.when(is_file, F.col("encoding")).alias("encoding"),
        F.when(is_file, F.col("checksum")).alias("checksum"),
        F.when(is_file & (F.size("header") > 0), F.col("header")).alias("header"),
    )
