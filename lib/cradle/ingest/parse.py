"""Turn one delivered file (bytes) into physical lines with named fields.

Pure Python, no Spark: it runs inside ``mapInPandas`` on executors, one file per call,
and is unit-tested on literal bytes. It never drops a line: every physical line becomes a
record, with an ``error`` when it cannot be read, so the accounting adds up.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from typing import Literal

BOM = b"\xef\xbb\xbf"
TRUNCATED = "truncated: the file ends without a newline, so its last line was cut off"


@dataclass(frozen=True)
class Line:
    line: int  # 1-based physical line; CSV headers are line 1
    raw: str
    fields: dict[str, str | None]
    error: str | None = None


@dataclass
class ParsedFile:
    encoding: str | None
    header: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    error: str | None = None  # the whole file could not be read


def detect_encoding(content: bytes) -> str | None:
    """'utf-8-sig' (BOM), 'utf-8' or 'gb18030' (a superset of GBK); None if none fits."""
    if content.startswith(BOM):
        return "utf-8-sig"
    for encoding in ("utf-8", "gb18030"):
        try:
            content.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return None


def normalise_header(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().strip('"').lower())


def parse_file(content: bytes, fmt: Literal["csv", "jsonl"]) -> ParsedFile:
    encoding = detect_encoding(content)
    # An undecodable file is still split into lines so every line can be quarantined.
    text = content.decode(encoding or "utf-8", errors="strict" if encoding else "replace")
    truncated = bool(text) and not text.endswith("\n")
    physical = text.split("\n")
    if not truncated:
        physical = physical[:-1]  # the empty string after the final newline
    physical = [line.removesuffix("\r") for line in physical]
    parsed = parse_csv(physical) if fmt == "csv" else parse_jsonl(physical)
    parsed.encoding = encoding
    if encoding is None:
        parsed.error = "undecodable: neither UTF-8 nor GBK/GB18030"
    if truncated and parsed.lines and parsed.lines[-1].line == len(physical):
        last = parsed.lines[-1]
        parsed.lines[-1] = Line(last.line, last.raw, last.fields, TRUNCATED)
    return parsed


def parse_csv(physical: list[str]) -> ParsedFile:
    if not physical or not physical[0].strip():
        unread = [Line(n, raw, {}) for n, raw in enumerate(physical[1:], start=2)]
        return ParsedFile(encoding=None, lines=unread, error="no header line")
    header = [normalise_header(h) for h in next(csv.reader([physical[0]]))]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        unread = [Line(n, raw, {}) for n, raw in enumerate(physical[1:], start=2)]
        return ParsedFile(
            encoding=None, header=header, lines=unread, error=f"duplicate header column(s): {dupes}"
        )
    out = ParsedFile(encoding=None, header=header)
    for number, raw in enumerate(physical[1:], start=2):
        if raw == "":
            out.lines.append(Line(number, raw, {}, "empty line"))
            continue
        try:
            values = next(csv.reader([raw], strict=True))
        except csv.Error as err:
            out.lines.append(Line(number, raw, {}, f"malformed CSV: {err}"))
            continue
        if len(values) != len(header):
            error = f"malformed CSV: {len(values)} fields where the header has {len(header)}"
            out.lines.append(Line(number, raw, {}, error))
            continue
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
