"""Reading the landing area: listing delivered files and parsing them on executors.

Works on any Hadoop-compatible file system (local disk, HDFS, S3A): files are listed and
read with Spark's ``binaryFile`` source, and parsed one file per task with
``cradle.ingest.parse`` inside ``mapInPandas``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from datetime import date

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cradle.ingest.parse import logical_name, parse_file
from cradle.lake import path_exists

DATE_FOLDER = r"/([^/]+)/(\d{4}-\d{2}-\d{2})/([^/]+)$"  # source / delivery date / file

PARSED_SCHEMA = T.StructType(
    [
        T.StructField("path", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),  # file | record
        T.StructField("line", T.IntegerType(), False),
        T.StructField("raw", T.StringType()),
        T.StructField("fields", T.MapType(T.StringType(), T.StringType())),
        T.StructField("error", T.StringType()),
        T.StructField("encoding", T.StringType()),
        T.StructField("checksum", T.StringType()),
        T.StructField("header", T.ArrayType(T.StringType())),
    ]
)


def list_landing(
    spark: SparkSession, landing_root: str, up_to: date
) -> list[tuple[str, str, int, date, str]]:
    """Delivered files in ``<landing_root>/<source>/<YYYY-MM-DD>/`` folders up to ``up_to``:
    (source, path, size, delivery_date, name). Only metadata is read: ``binaryFile`` reads
    contents only when they are selected."""
    if not path_exists(spark, landing_root):
        return []
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(landing_root)
        .select(
            "path",
            F.col("length").alias("size"),
            F.regexp_extract("path", DATE_FOLDER, 1).alias("source"),
            F.try_to_date(F.regexp_extract("path", DATE_FOLDER, 2), "yyyy-MM-dd").alias("delivery_date"),
            F.regexp_extract("path", DATE_FOLDER, 3).alias("name"),
        )
        .where(F.col("delivery_date").isNotNull() & (F.col("delivery_date") <= F.lit(up_to)))
    )
    return [(r["source"], r["path"], r["size"], r["delivery_date"], r["name"]) for r in files.collect()]


def matches(pattern: str, name: str) -> bool:
    """Whether a delivered file belongs to a source: its logical name matches the pattern."""
    return fnmatch.fnmatchcase(logical_name(name)[0], pattern)


def parse_partition(batches: Iterator[pd.DataFrame], formats: dict[str, str]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        for path, blob in zip(batch["path"], batch["content"], strict=True):
            content = bytes(blob)
            parsed = parse_file(content, formats[path])  # type: ignore[arg-type]
            checksum = hashlib.sha256(content).hexdigest()
            file_row = {
                "path": path,
                "kind": "file",
                "line": 0,
                "raw": None,
                "fields": None,
                "error": parsed.error,
                "encoding": parsed.encoding,
                "checksum": checksum,
                "header": parsed.header or None,
            }
            records = [
                {
                    "path": path,
                    "kind": "record",
                    "line": ln.line,
                    "raw": ln.raw,
                    "fields": ln.fields,
                    "error": ln.error,
                    "encoding": None,
                    "checksum": None,
                    "header": None,
                }
                for ln in parsed.lines
            ]
            yield pd.DataFrame([file_row, *records], columns=PARSED_SCHEMA.fieldNames())


def parse_files(spark: SparkSession, formats: dict[str, str]) -> DataFrame:
    """Parse the files at ``formats``' paths ('csv' or 'jsonl' each): one row per file (kind
    'file': checksum, encoding, header, file error) and one per physical line."""
    paths = sorted(formats)
    contents = spark.read.format("binaryFile").load(paths).select("path", "content")
    contents = contents.repartition(
        max(1, min(len(paths), spark.sparkContext.defaultParallelism * 4)), "path"
    )
    return contents.mapInPandas(lambda it: parse_partition(it, formats), PARSED_SCHEMA)
