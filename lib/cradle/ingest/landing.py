"""Reading the landing area: listing delivered entries and parsing files on executors.

Works on any Hadoop-compatible file system (local disk, HDFS, S3A). Entries are listed
folder by folder (``<source>/<YYYY-MM-DD>/<name>``) so that every one of them is seen,
including folders named like files and dangling symlinks (which Spark's file sources skip
silently). Contents are read with Spark's ``binaryFile`` source from paths whose glob
characters are escaped, so a name such as ``pos [1].csv`` is read literally.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import reduce
from urllib.parse import urlparse

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from cradle.ingest.parse import logical_name, parse_file
from cradle.ingest.records import parse_csv
from cradle.lake import hadoop_fs

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GLOB = re.compile(r"([\\\[\]{}*?])")

PARSED_SCHEMA = T.StructType(
    [
        T.StructField("path", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),  # file | record
        T.StructField("line", T.IntegerType(), False),  # file rows: the number of records
        T.StructField("raw", T.StringType()),
        T.StructField("fields", T.MapType(T.StringType(), T.StringType())),
        T.StructField("error", T.StringType()),
        T.StructField("encoding", T.StringType()),
        T.StructField("checksum", T.StringType()),
        T.StructField("header", T.ArrayType(T.StringType())),
    ]
)


@dataclass(frozen=True)
class Entry:
    """One entry of a delivery folder, as listed (nothing read yet)."""

    source: str
    path: str  # full URI, as binaryFile reports it
    delivery_date: date
    name: str
    size: int
    modified_ms: int | None  # modification time, epoch milliseconds
    regular: bool  # False: a folder, a dangling symlink, anything that is not a file

    @property
    def modified(self) -> datetime | None:
        return None if self.modified_ms is None else datetime.fromtimestamp(self.modified_ms / 1000)


def delivery_day(name: str, up_to: date) -> date | None:
    if not DAY.match(name):
        return None
    try:
        day = date.fromisoformat(name)
    except ValueError:
        return None
    return day if day <= up_to else None


def local_dir(landing_root: str) -> str | None:
    """The local folder behind ``landing_root`` (a plain path or a file: URI), else None."""
    parsed = urlparse(landing_root)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(parsed.path if parsed.scheme else landing_root)
    return None


def list_local(root: str, up_to: date) -> list[Entry]:
    """The local listing: ``os.scandir`` sees dangling symlinks, which Hadoop's does not."""
    out: list[Entry] = []
    for source in sorted(os.scandir(root), key=lambda e: e.name):
        if not source.is_dir():
            continue
        for folder in sorted(os.scandir(source.path), key=lambda e: e.name):
            day = delivery_day(folder.name, up_to)
            if day is None or not folder.is_dir():
                continue
            for entry in sorted(os.scandir(folder.path), key=lambda e: e.name):
                regular = entry.is_file()  # follows symlinks: a dangling one is not a file
                stat = entry.stat() if regular else entry.stat(follow_symlinks=False)
                out.append(
                    Entry(
                        source.name,
                        "file:" + entry.path,
                        day,
                        entry.name,
                        stat.st_size if regular else 0,
                        stat.st_mtime_ns // 1_000_000,
                        regular,
                    )
                )
    return out


def list_hadoop(spark: SparkSession, root: str, up_to: date) -> list[Entry]:
    """The listing on any Hadoop file system (no symlinks there)."""
    hroot, fs = hadoop_fs(spark, root)
    out: list[Entry] = []
    for source in fs.listStatus(hroot):
        if not source.isDirectory():
            continue
        for folder in fs.listStatus(source.getPath()):
            day = delivery_day(folder.getPath().getName(), up_to)
            if day is None or not folder.isDirectory():
                continue
            for entry in fs.listStatus(folder.getPath()):
                regular = bool(entry.isFile())
                out.append(
                    Entry(
                        source.getPath().getName(),
                        entry.getPath().toString(),
                        day,
                        entry.getPath().getName(),
                        int(entry.getLen()) if regular else 0,
                        int(entry.getModificationTime()),
                        regular,
                    )
                )
    return out


def list_landing(spark: SparkSession, landing_root: str, up_to: date) -> list[Entry]:
    """Every entry in ``<landing_root>/<source>/<YYYY-MM-DD>/`` folders up to ``up_to``.
    Only metadata is read."""
    local = local_dir(landing_root)
    if local is not None:
        return list_local(local, up_to) if os.path.isdir(local) else []
    hroot, fs = hadoop_fs(spark, landing_root)
    return list_hadoop(spark, landing_root, up_to) if fs.exists(hroot) else []


def matches(pattern: str, name: str) -> bool:
    """Whether a delivered file belongs to a source: its logical name matches the pattern."""
    return fnmatch.fnmatchcase(logical_name(name)[0], pattern)


def literal(path: str) -> str:
    """``path`` with Hadoop glob characters escaped, so Spark reads exactly that file."""
    return GLOB.sub(r"\\\1", path)


def read_contents(spark: SparkSession, paths: list[str]) -> DataFrame:
    """(path, content) of exactly these files; ``path`` is as listed."""
    return spark.read.format("binaryFile").load([literal(p) for p in sorted(paths)]).select("path", "content")


def parse_partition(batches: Iterator[pd.DataFrame], formats: dict[str, str]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        for path, blob in zip(batch["path"], batch["content"], strict=True):
            content = bytes(blob)
            parsed = parse_file(content, formats[path])  # type: ignore[arg-type]
            checksum = hashlib.sha256(content).hexdigest()
            file_row = {
                "path": path,
                "kind": "file",
                "line": len(parsed.lines),
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


def spread(contents: DataFrame, files: int) -> DataFrame:
    """One file per task at most, a few tasks per core."""
    cores = contents.sparkSession.sparkContext.defaultParallelism
    return contents.repartition(max(1, min(files, cores * 4)), "path")


def parse_python(spark: SparkSession, formats: dict[str, str]) -> DataFrame:
    """The reference parser (``cradle.ingest.parse``), one file per call in ``mapInPandas``."""
    contents = spread(read_contents(spark, list(formats)), len(formats))
    return contents.mapInPandas(lambda it: parse_partition(it, formats), PARSED_SCHEMA)


def parse_files(spark: SparkSession, formats: dict[str, str]) -> DataFrame:
    """Parse the files at ``formats``' paths ('csv' or 'jsonl' each): one row per file (kind
    'file': checksum, encoding, header, file error, number of records) and one per record.
    By default every file goes through the reference parser; with ``CRADLE_PARSER=jvm``
    CSV is parsed in the JVM (``records.parse_csv``, identical output by test)."""
    # The reference parser is the default: measured faster than the JVM path on small
    # deliveries (see records.py); CRADLE_PARSER=jvm selects the JVM path for CSV.
    jvm = os.environ.get("CRADLE_PARSER", "python") == "jvm"
    csv = [p for p, fmt in formats.items() if fmt == "csv" and jvm]
    others = {p: fmt for p, fmt in formats.items() if p not in csv}
    parts = [parse_python(spark, others)] if others else []
    if csv:
        contents = read_contents(spark, csv)
        contents = contents.repartition(
            max(1, min(len(csv), spark.sparkContext.defaultParallelism * 4)), "path"
        )
        parts.append(parse_csv(contents).select(*PARSED_SCHEMA.fieldNames()))
    return reduce(DataFrame.unionByName, parts) if parts else spark.createDataFrame([], PARSED_SCHEMA)
