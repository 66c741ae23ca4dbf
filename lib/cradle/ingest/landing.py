"""Reading the landing area: listing delivered files and parsing them on executors.

Works on any Hadoop-compatible file system (local disk, HDFS, S3A): files are listed and
read with Spark's ``binaryFile`` source, and parsed one file per task with
``cradle.ingest.parse`` inside ``mapInPandas``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import date

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cradle.ingest.parse import parse_file

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


def hadoop_fs(spark: SparkSession, path: str) -> tuple[object, object]:
    """The Hadoop (Path, FileSystem) for ``path``: Hadoop FS has no Python API."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def path_exists(spark: SparkSession, path: str) -> bool:
    hpath, fs = hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def delete_path(spark: SparkSession, path: str) -> None:
    hpath, fs = hadoop_fs(spark, path)
    fs.delete(hpath, True)


def list_files(spark: SparkSession, landing_root: str, source: str, pattern: str, up_to: date) -> DataFrame:
    """Delivered files of ``source`` in date folders up to ``up_to``: path, size, delivery_date, name.

    Only metadata is read here; ``binaryFile`` reads contents only when selected.
    """
    folder = f"{landing_root.rstrip('/')}/{source}"
    schema = "path string, size long, delivery_date date, name string"
    if not path_exists(spark, folder):
        return spark.createDataFrame([], schema)
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(folder)
        .select("path", F.col("length").alias("size"))
        .withColumn("delivery_date", F.try_to_date(F.regexp_extract("path", DATE_FOLDER, 2), "yyyy-MM-dd"))
        .withColumn("name", F.regexp_extract("path", DATE_FOLDER, 3))
        .where(F.col("delivery_date").isNotNull() & (F.col("delivery_date") <= F.lit(up_to)))
    )
    # Match the source's pattern on the logical name (delivery markers removed).
    glob = "^" + re.escape(pattern).replace(r"\*", ".*") + "$"
    logical = F.regexp_replace(
        F.regexp_replace("name", r"\.resend$", ""), r"\.(v\d+|resend)(\.[A-Za-z]+)$", "$2"
    )
    return files.where(logical.rlike(glob)).select("path", "size", "delivery_date", "name")


def parse_partition(batches: Iterator[pd.DataFrame], fmt: str) -> Iterator[pd.DataFrame]:
    for batch in batches:
        for path, blob in zip(batch["path"], batch["content"], strict=True):
            content = bytes(blob)
            parsed = parse_file(content, fmt)  # type: ignore[arg-type]
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


def parse_files(spark: SparkSession, paths: list[str], fmt: str) -> DataFrame:
    """One row per file (kind 'file': checksum, encoding, header, file error) and one per line."""
    contents = spark.read.format("binaryFile").load(paths).select("path", "content")
    contents = contents.repartition(
        max(1, min(len(paths), spark.sparkContext.defaultParallelism * 4)), "path"
    )
    return contents.mapInPandas(lambda it: parse_partition(it, fmt), PARSED_SCHEMA)
