"""Deciding what to do with each delivered file: the exactly-once policy, in one place.

Pure Python over small metadata (one entry per file), unit-tested on literal cases.

Policy:
* identical bytes already seen for the source (any name, any folder): ``duplicate``, a no-op;
* several new files with the same logical name (``x.csv``, ``x.v2.csv``, or ``x.csv`` again
  in a later folder with other bytes): the latest (delivery date, version, name) is loaded
  and the others are ``superseded`` without being loaded;
* a new version of a logical file loaded by an earlier run replaces it: the earlier file's
  bronze, quarantine and silver rows are removed and it is marked ``superseded``;
* an entry that is not a regular file (a folder named like a file, a dangling symlink) is
  ``skipped``; a file with no records (0 bytes, or a CSV header alone) is ``empty``: both
  get a manifest row and take part in nothing else;
* a file whose name and bytes the manifest already holds (touched, not changed) gets no
  new plan: its row is already there;
* a file that cannot be read as a whole (undecodable, no header, a required column missing)
  is ``rejected``: all its lines go to quarantine with the file's reason;
* everything else is ``loaded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from cradle.ingest.parse import logical_name

SKIPPED = "skipped: not a regular file"
NOT_CONTENT = ("skipped", "empty")  # statuses whose bytes say nothing about duplicates


@dataclass(frozen=True)
class DeliveredFile:
    file: str  # relative to the landing root: <source>/<date>/<name>
    path: str  # full URI, for reading
    delivery_date: date
    size: int
    checksum: str
    encoding: str | None
    header: tuple[str, ...] | None
    error: str | None
    modified: datetime | None = None  # recognises same-size in-place overwrites
    records: int | None = None  # records read (None: not read)
    regular: bool = True  # False: a folder named like a file, a dangling symlink

    @property
    def name(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    @property
    def logical(self) -> tuple[str, int]:
        return logical_name(self.name)


@dataclass(frozen=True)
class KnownFile:
    file: str
    logical_file: str
    checksum: str
    status: str


@dataclass(frozen=True)
class FilePlan:
    file: DeliveredFile
    status: str  # loaded | rejected | duplicate | superseded | empty | skipped
    reason: str | None = None
    extra_columns: tuple[str, ...] = ()
    replaces: tuple[str, ...] = field(default=())

    @property
    def is_read(self) -> bool:
        return self.status in ("loaded", "rejected")


def plan_files(
    new: list[DeliveredFile],
    known: list[KnownFile],
    declared: tuple[str, ...],
    required: tuple[str, ...],
    fmt: str,
) -> list[FilePlan]:
    seen = {k.checksum: k.file for k in known if k.status not in NOT_CONTENT}
    held = {(k.file, k.checksum) for k in known}
    plans: list[FilePlan] = []
    candidates: list[DeliveredFile] = []
    for f in sorted(new, key=lambda f: (f.delivery_date, f.logical[1], f.name)):
        if not f.regular:
            plans.append(FilePlan(f, "skipped", SKIPPED))
            continue
        if (f.file, f.checksum) in held:
            continue  # rewritten with the same bytes: the manifest already has its row
        if f.records == 0 and not f.error:
            plans.append(FilePlan(f, "empty", "empty: 0 bytes" if f.size == 0 else "empty: no records"))
            continue
        if f.checksum in seen:
            plans.append(FilePlan(f, "duplicate", f"same bytes as {seen[f.checksum]}"))
            continue
        seen[f.checksum] = f.file
        candidates.append(f)

    latest: dict[str, DeliveredFile] = {}
    for f in candidates:  # sorted, so the last one per logical name wins
        latest[f.logical[0]] = f
    live = {k.logical_file: k.file for k in known if k.status in ("loaded", "rejected")}
    for f in candidates:
        logical = f.logical[0]
        if latest[logical] is not f:
            plans.append(FilePlan(f, "superseded", f"replaced by {latest[logical].file}"))
            continue
        replaces = (live[logical],) if logical in live else ()
        plans.append(judge(f, declared, required, fmt, replaces))
    return plans


def judge(
    f: DeliveredFile,
    declared: tuple[str, ...],
    required: tuple[str, ...],
    fmt: str,
    replaces: tuple[str, ...],
) -> FilePlan:
    plan = FilePlan(f, "loaded", replaces=replaces)
    if f.error:
        return replace(plan, status="rejected", reason=f.error)
    if fmt != "csv":
        return plan
    header = f.header or ()
    missing = [c for c in required if c not in header]
    extra = tuple(c for c in header if c not in declared)
    if missing:
        return replace(plan, status="rejected", reason=f"file lacks required column(s): {', '.join(missing)}")
    return replace(plan, extra_columns=extra)
