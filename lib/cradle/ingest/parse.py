"""Turn one delivered file (bytes) into records with named fields: the reference parser.

Pure Python, no Spark, unit-tested on literal bytes. Ingestion parses CSV in the JVM
(``cradle.ingest.records``) and JSON lines here; tests run both over the same tricky
files and require identical output, so this module is the definition of what a record is.

It never drops a line: every delivered record becomes a row, with an ``error`` when it
cannot be read, so the accounting adds up. A CSV record is one physical line unless a
quoted field holds a newline: then it runs to the line where that quote closes (a quote
that never closes is malformed and confined to its own line). ``line`` is the record's
first physical line (CSV headers are line 1).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

BOM = b"\xef\xbb\xbf"
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
TRUNCATED = "truncated: the file ends without a newline, so its last line was cut off"
UNDECODABLE = "undecodable: neither UTF-8, UTF-16 nor GBK/GB18030"
UNEXPECTED_END = "unexpected end of data"  # the csv module's words for a quote that never closes


@dataclass(frozen=True)
class Line:
    line: int  # first physical line of the record, 1-based
    raw: str  # the record as delivered (its physical lines joined by "\n")
    fields: dict[str, str | None]
    error: str | None = None


@dataclass
class ParsedFile:
    encoding: str | None
    header: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    error: str | None = None  # the whole file could not be read


def utf16_without_bom(content: bytes) -> str | None:
    """'utf-16-le' / 'utf-16-be' when the bytes look like UTF-16 text without a BOM: CSV
    and JSON are mostly ASCII, which UTF-16 writes with a NUL in every other byte."""
    sample = content[:256]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)  # NULs (UTF-8 and GBK text has none)
    if odd >= max(2, 4 * even):
        return "utf-16-le"
    if even >= max(2, 4 * odd):
        return "utf-16-be"
    return None


def detect_encoding(content: bytes) -> str | None:
    """'utf-8-sig' (BOM), 'utf-16-le' / 'utf-16-be' (BOM, or NUL pattern), 'utf-8' or
    'gb18030' (a superset of GBK); None if none fits."""
    if content.startswith(BOM):
        try:
            content.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
        return "utf-8-sig"
    candidates = [UTF16_BOMS.get(content[:2]) or utf16_without_bom(content), "utf-8", "gb18030"]
    for encoding in filter(None, candidates):
        try:
            decode_as(content, encoding)
        except UnicodeDecodeError:
            if encoding.startswith("utf-16"):
                return None  # it looked like UTF-16 and is not: say so rather than guess
            continue
        return encoding
    return None


def decode_as(content: bytes, encoding: str, errors: str = "strict") -> str:
    bom = content[:2] in UTF16_BOMS and encoding.startswith("utf-16")
    return (content[2:] if bom else content).decode(encoding, errors=errors)


def decode(content: bytes) -> tuple[str | None, str, str | None]:
    """(encoding, text, file error). An undecodable file is still turned into text (with
    replacement characters) so every line can be quarantined with the file's reason."""
    encoding = detect_encoding(content)
    if encoding is not None:
        return encoding, decode_as(content, encoding), None
    looks = UTF16_BOMS.get(content[:2]) or utf16_without_bom(content)
    if looks:
        label = looks.upper() + (" (BOM)" if content[:2] in UTF16_BOMS else " (no BOM)")
        return None, decode_as(content, looks, "replace"), f"undecodable: looks like {label} but is not valid"
    return None, content.decode("utf-8", errors="replace"), UNDECODABLE


def normalise_header(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().strip('"').lower())


def physical_lines(text: str) -> tuple[list[str], bool]:
    """The text's physical lines (without "\\r\\n" / "\\n") and whether the last was cut off."""
    truncated = bool(text) and not text.endswith("\n")
    physical = text.split("\n")
    if not truncated:
        physical = physical[:-1]  # the empty string after the final newline
    return [line.removesuffix("\r") for line in physical], truncated


def parse_file(content: bytes, fmt: Literal["csv", "jsonl"]) -> ParsedFile:
    encoding, text, error = decode(content)
    physical, truncated = physical_lines(text)
    if not physical:  # 0 bytes (or a BOM alone): nothing delivered, nothing to read
        return ParsedFile(encoding=encoding, error=error)
    parsed = parse_csv(physical) if fmt == "csv" else parse_jsonl(physical)
    parsed.encoding = encoding
    if error:
        parsed.error = error
    if truncated and parsed.lines:
        last = parsed.lines[-1]
        if last.line + last.raw.count("\n") == len(physical):
            parsed.lines[-1] = Line(last.line, last.raw, last.fields, TRUNCATED)
    return parsed


def csv_records(physical: list[str]) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
    """(first line, raw record, values, csv error) for each record, in order."""
    start = 0
    while start < len(physical):
        used = 0

        def feed(first: int = start) -> Iterator[str]:
            nonlocal used
            for k in range(first, len(physical)):
                used = k - first + 1
                yield physical[k] + "\n"

        try:
            values: list[str] | None = next(csv.reader(feed(), strict=True))
            error = None
        except csv.Error as err:
            values, error = None, str(err)
            if error == UNEXPECTED_END:
                used = 1  # a quote that never closes does not swallow the rest of the file
        yield start + 1, "\n".join(physical[start : start + used]), values, error
        start += used


def parse_csv(physical: list[str]) -> ParsedFile:
    records = csv_records(physical)
    _, first, values, error = next(records)
    if not first.strip():
        unread = [Line(n, raw, {}) for n, raw, _, _ in records]
        return ParsedFile(encoding=None, lines=unread, error="no header line")
    header = [normalise_header(h) for h in values or ()]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if error or dupes:
        reason = f"malformed header: {error}" if error else f"duplicate header column(s): {dupes}"
        unread = [Line(n, raw, {}) for n, raw, _, _ in records]
        return ParsedFile(encoding=None, header=header, lines=unread, error=reason)
    out = ParsedFile(encoding=None, header=header)
    for number, raw, values, error in records:
        if raw == "":
            out.lines.append(Line(number, raw, {}, "empty line"))
        elif error is not None or values is None:
            out.lines.append(Line(number, raw, {}, f"malformed CSV: {error}"))
        elif len(values) != len(header):
            count = f"malformed CSV: {len(values)} fields where the header has {len(header)}"
            out.lines.append(Line(number, raw, {}, count))
        else:
            fields = {h: (v if v.strip() != "" else None) for h, v in zip(header, values, strict=True)}
            out.lines.append(Line(number, raw, fields))
    return out


def parse_jsonl(physical: list[str]) -> ParsedFile:
    out = ParsedFile(encoding=None)
    for number, raw in enumerate(physical, start=1):
        if raw.strip() == "":
            out.lines.append(Line(number, raw, {}, "empty line"))
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            out.lines.append(Line(number, raw, {}, f"malformed JSON: {err.msg} at column {err.colno}"))
            continue
        if not isinstance(record, dict):
            out.lines.append(Line(number, raw, {}, "malformed JSON: not an object"))
            continue
        out.lines.append(Line(number, raw, {normalise_header(k): scalar(v) for k, v in record.items()}))
    return out


def scalar(value: object) -> str | None:
    """JSON values as the strings Spark will type: nested values stay JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def logical_name(file_name: str) -> tuple[str, int]:
    """The file's name without delivery markers, and its version.

    'pos_orders_20260301.v2.csv' -> ('pos_orders_20260301.csv', 2); a '.resend' marker
    (before or after the extension) is version 1 of the same logical file.
    """
    name = file_name.removesuffix(".resend").replace(".resend.", ".")
    match = re.match(r"^(?P<stem>.+?)\.v(?P<v>\d+)(?P<ext>\.[A-Za-z]+)$", name)
    if not match:
        return name, 1
    return match["stem"] + match["ext"], int(match["v"])
