"""Files as delivered: the file plan (which files, encodings, layouts, file-level dirt),
rendering records to CSV/JSON lines, and writing files with their line numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cradle.generate.schema import ADDED_COLUMN, SOURCES, SourceSpec
from cradle.generate.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilePlan:
    """One row per delivered file (before duplicates and corrections)."""

    files: pd.DataFrame

    def index_of(self, source: str) -> tuple[dict[str, int], np.ndarray]:
        """(part -> row, array [part_row, day] -> file_idx or -1) for one source."""
        f = self.files[self.files["source"] == source]
        parts = {p: i for i, p in enumerate(sorted(f["part"].unique()))}
        days = int(self.files["day"].max()) + 1
        table = np.full((max(len(parts), 1), days), -1, dtype=np.int64)
        if f.empty:  # e.g. a weekly source in a period shorter than a week
            return parts, table
        table[f["part"].map(parts).to_numpy(dtype=np.int64), f["day"].to_numpy()] = f["file_idx"].to_numpy()
        return parts, table


def make_plan(rng: np.random.Generator, s: Settings, start: date, days: int) -> FilePlan:
    """Decide every file up front, so blocks can render lines in their file's layout."""
    rows = []
    weekday0 = start.weekday()
    change_day = (s.dirt.added_column_from - start).days
    for spec in SOURCES.values():
        if spec.name == "products":
            wanted = [0] + ([s.products_change_day] if 0 < s.products_change_day < days else [])
        elif spec.name == "stores":
            wanted = [0]
        elif spec.name == "dmp_tags":
            wanted = [d for d in range(days) if (weekday0 + d) % 7 == 0]
        else:
            wanted = list(range(days))
        for d in wanted:
            for part in spec.parts:
                rows.append((spec.name, part, d))
    f = pd.DataFrame(rows, columns=["source", "part", "day"])
    n = len(f)
    f["file_idx"] = np.arange(n)
    dates = [start + timedelta(days=int(d)) for d in f["day"]]
    f["ymd"] = [d.strftime("%Y%m%d") for d in dates]
    f["folder"] = [d.isoformat() for d in dates]
    f["name"] = [SOURCES[src].file_name(p, y) for src, p, y in zip(f["source"], f["part"],
                                                                  f["ymd"], strict=True)]
    f["path"] = f["source"] + "/" + f["folder"] + "/" + f["name"]
    d = s.dirt
    is_csv = f["source"].map(lambda x: SOURCES[x].fmt == "csv").to_numpy()
    gbk = is_csv & (rng.random(n) < f["source"].map(lambda x: d.encoding_gbk.get(x, 0.0)))
    bom = is_csv & ~gbk & (rng.random(n) < d.encoding_bom)
    f["encoding"] = np.where(gbk, "gbk", np.where(bom, "utf-8-sig", "utf-8"))
    layouts = []
    reorder = is_csv & (rng.random(n) < d.reordered_columns)
    for i, (src, day) in enumerate(zip(f["source"], f["day"], strict=True)):
        cols = list(SOURCES[src].columns)
        if (src, "baby_gender") == ADDED_COLUMN and day < change_day:
            cols.remove("baby_gender")
        if reorder[i]:
            perm = list(rng.permutation(len(cols)))
            if perm == sorted(perm):
                perm = perm[1:] + perm[:1]
            cols = [cols[j] for j in perm]
        layouts.append("|".join(cols))
    f["layout"] = layouts
    f["reordered"] = reorder
    f["added_column"] = (f["source"] == ADDED_COLUMN[0]) & (f["day"] >= change_day)
    f["truncated"] = rng.random(n) < d.truncated_row
    f["corrected"] = rng.random(n) < d.corrected_file
    dup = rng.random(n) < d.duplicate_file
    next_ok = f["day"].to_numpy() + 1 < days
    f["duplicate"] = np.where(dup, np.where(next_ok & (rng.random(n) < 0.5), "next_day",
                                            "resend"), "")
    return FilePlan(f)


# --- rendering -----------------------------------------------------------------------------

def to_arrow(v: pd.Series) -> pa.Array:
    """A string column as an Arrow array (nulls kept), for fast vectorised text building."""
    values = v.to_numpy(dtype=object)
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if pd.isna(x) else str(x) for x in values],
                        type=pa.string())


def csv_cells(v: pd.Series) -> pa.Array:
    """CSV text per value: empty for null, quoted only where needed."""
    s = pc.fill_null(to_arrow(v), "")
    needs = pc.match_substring_regex(s, '[",\n\r]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(s, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, s)


def json_cells(v: pd.Series, raw: bool, numeric: bool = False) -> pa.Array:
    """JSON text per value: null, a raw fragment, or a string literal."""
    s = to_arrow(v)
    if not raw and not numeric:
        esc = pc.replace_substring(pc.replace_substring(s, "\\", "\\\\"), '"', '\\"')
        s = pc.binary_join_element_wise('"', esc, '"', "")
    return pc.fill_null(s, "null")


def render(spec: SourceSpec, df: pd.DataFrame, layout: np.ndarray) -> pa.Array:
    """One text line (no line end) per row, in its file's column layout."""
    if len(df) == 0:
        return pa.array([], type=pa.string())
    if spec.fmt == "csv":
        cells = {c: csv_cells(df[c]) for c in spec.columns if c in df}
    else:
        cells = {c: json_cells(df[c], c in spec.raw_fields, c in spec.numeric_fields)
                 for c in spec.columns}
    chunks, where = [], []
    for lay in np.unique(layout):
        rows = np.flatnonzero(layout == lay)
        take = pa.array(rows)
        cols = lay.split("|")
        if spec.fmt == "csv":
            acc = pc.binary_join_element_wise(*[cells[c].take(take) for c in cols], ",")
        else:
            parts = [pc.binary_join_element_wise(f'"{c}": ', cells[c].take(take), "")
                     for c in cols]
            acc = pc.binary_join_element_wise(
                "{", pc.binary_join_element_wise(*parts, ", "), "}", "")
        chunks.append(acc)
        where.append(rows)
    order = np.empty(len(df), dtype=np.int64)
    order[np.concatenate(where)] = np.arange(len(df))
    return pa.concat_arrays(chunks).take(pa.array(order))


def malformed(rng: np.random.Generator, spec: SourceSpec, lines: pa.Array, rate: float
              ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Break some lines: a CSV row with a field too few or too many; invalid JSON."""
    idx = np.flatnonzero(rng.random(len(lines)) < rate)
    detail = np.empty(len(idx), dtype=object)
    broken = []
    for j, line in enumerate(lines.take(pa.array(idx, type=pa.int64())).to_pylist()):
        # only the few broken rows are touched one by one
        if spec.fmt == "csv":
            if rng.random() < 0.5 and "," in line:
                broken.append(line[: line.rfind(",")])
                detail[j] = "one field too few"
            else:
                broken.append(line + ",EXTRA")
                detail[j] = "one field too many"
        else:
            broken.append(line[:-1] if rng.random() < 0.5 else line.replace('": ', '" ', 1))
            detail[j] = "invalid JSON"
    if len(idx):
        pick = np.arange(len(lines))
        pick[idx] = len(lines) + np.arange(len(idx))
        lines = pa.concat_arrays([lines, pa.array(broken, type=pa.string())]).take(
            pa.array(pick))
    return lines, idx, detail


# --- writing -------------------------------------------------------------------------------

def cut_field(spec: SourceSpec, layout: str, line: str, cut: int) -> str | None:
    """Name of the field a line is cut inside of."""
    head = line[:cut]
    if spec.fmt == "csv":
        cols = layout.split("|")
        k = min(head.count(","), len(cols) - 1)   # quoted commas are rare enough to ignore
        return cols[k]
    keys = [c for c in layout.split("|") if f'"{c}":' in head]
    return keys[-1] if keys else None


def write_source(out: Path, spec: SourceSpec, plan: pd.DataFrame, rows: pa.Table,
                 row_defects: pd.DataFrame, rng: np.random.Generator
                 ) -> tuple[pa.Table, pd.DataFrame, dict[str, int]]:
    """Write every file of one source. Returns (record_person, defects, counts).

    Lines stay in Arrow buffers; only one file's lines at a time become Python strings.
    """
    # Sort small keys only and take each file's lines on the fly: sorting the whole table
    # would hold a second copy of every line (several GiB for the biggest sources).
    keys = rows.select(["file_idx", "ts", "block", "rid"])
    order = pc.sort_indices(keys, sort_keys=[("file_idx", "ascending"), ("ts", "ascending"),
                                             ("block", "ascending"), ("rid", "ascending")])
    small = keys.take(order)
    rows = rows.drop_columns(["file_idx", "ts", "block", "rid"]).append_column(
        "order", order)
    fidx = small["file_idx"].to_numpy()
    lines_col = rows["line"]
    rp_parts: list[pd.DataFrame] = []
    where_parts: list[pd.DataFrame] = []      # (block, rid) -> primary file and line
    file_defects: list[dict] = []
    counts = {"files": 0, "bytes": 0}
    header_offset = 1 if spec.fmt == "csv" else 0
    for f in plan.itertuples(index=False):
        lo, hi = np.searchsorted(fidx, [f.file_idx, f.file_idx + 1])
        sel = np.arange(lo, hi)
        body = np.array(lines_col.take(order.slice(lo, hi - lo)).to_pylist(), dtype=object)
        versions = []                           # (path, row positions, truncated?)
        if f.corrected and len(sel) >= 2:
            drop = rng.random(len(sel)) < 0.05
            drop[rng.integers(0, len(sel))] = True
            stem, ext = f.name.rsplit(".", 1)
            v2 = f"{spec.name}/{f.folder}/{stem}.v2.{ext}"
            versions.append((f.path, np.flatnonzero(~drop), f.truncated))
            versions.append((v2, np.arange(len(sel)), False))
            file_defects.append(dict(kind="corrected_file", file=f.path, line=None, field=None,
                                     detail=f"superseded by {v2}: {int(drop.sum())} rows "
                                            "missing in the original"))
        else:
            versions.append((f.path, np.arange(len(sel)), f.truncated))
        first_version = True
        for path, pos, truncate in versions:
            text_lines = list(body[pos])
            cut_at = None
            if truncate and text_lines:
                last = text_lines[-1]
                cut_at = max(1, int(len(last) * rng.uniform(0.3, 0.9)))
                text_lines[-1] = last[:cut_at]
                file_defects.append(dict(kind="truncated_row", file=path,
                                         line=len(text_lines) + header_offset,
                                         field=cut_field(spec, f.layout, last, cut_at),
                                         detail=f"last line cut after {cut_at} characters"))
            parts = ([f.layout.replace("|", ",")] if spec.fmt == "csv" else []) + text_lines
            text = "\n".join(parts) + ("\n" if parts and cut_at is None else "")
            data = text.encode(f.encoding)
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            counts["files"] += 1
            counts["bytes"] += len(data)
            line_no = np.arange(len(pos)) + 1 + header_offset
            rp_parts.append(pd.DataFrame({"file": path, "line": line_no, "_pos": sel[pos]}))
            if first_version or path.endswith(f".v2.{f.name.rsplit('.', 1)[1]}"):
                where_parts.append(pd.DataFrame({"file": path, "line": line_no,
                                                 "_pos": sel[pos], "_first": first_version}))
            if first_version and f.duplicate:
                if f.duplicate == "next_day":
                    nd = (date.fromisoformat(f.folder) + timedelta(days=1)).isoformat()
                    dpath = f"{spec.name}/{nd}/{f.name}"
                else:
                    dpath = f"{path}.resend"
                (out / dpath).parent.mkdir(parents=True, exist_ok=True)
                (out / dpath).write_bytes(data)
                counts["files"] += 1
                counts["bytes"] += len(data)
                rp_parts.append(pd.DataFrame({"file": dpath, "line": line_no,
                                              "_pos": sel[pos]}))
                file_defects.append(dict(kind="duplicate_file", file=dpath, line=None,
                                         field=None, detail=f"identical copy of {path}"))
            first_version = False
        if f.encoding == "gbk":
            file_defects.append(dict(kind="encoding_gbk", file=f.path, line=None, field=None,
                                     detail="GBK"))
        elif f.encoding == "utf-8-sig":
            file_defects.append(dict(kind="encoding_bom", file=f.path, line=None, field=None,
                                     detail="UTF-8 with BOM"))
        if f.reordered:
            file_defects.append(dict(kind="reordered_columns", file=f.path, line=None,
                                     field=None, detail=f.layout.replace("|", ",")))
        if f.added_column:
            file_defects.append(dict(kind="added_column", file=f.path, line=None,
                                     field=ADDED_COLUMN[1], detail="column added"))
    rp = pd.concat(rp_parts, ignore_index=True) if rp_parts else pd.DataFrame(
        {"file": pd.Series([], dtype=object), "line": pd.Series([], dtype=np.int64),
         "_pos": pd.Series([], dtype=np.int64)})
    pos = order.take(pa.array(rp["_pos"].to_numpy(dtype=np.int64)))   # sorted -> stored row
    record_person = pa.table({
        "source": pa.array(np.full(len(rp), spec.name, dtype=object), type=pa.string()),
        "file": pa.array(rp["file"].to_numpy(dtype=object), type=pa.string()),
        "line": pa.array(rp["line"].to_numpy(dtype=np.int64)),
        "record_key": rows["key"].take(pos).cast(pa.string()),
        "person_id": rows["person_id"].take(pos).cast(pa.string()),
        "anonymous": rows["anonymous"].take(pos),
        "event_date": pc.cast(pc.strptime(rows["event_date"].take(pos).cast(pa.string()),
                                          "%Y-%m-%d", "s", error_is_null=True), pa.date32()),
    })
    # Row defects sit at the row's first delivered place (the original of a corrected
    # file unless the row was missing from it).
    wh = pd.concat(where_parts, ignore_index=True) if where_parts else pd.DataFrame(
        columns=["file", "line", "_pos", "_first"])
    wh = wh.sort_values(["_pos", "_first"], ascending=[True, False]).drop_duplicates("_pos")
    at = pa.array(wh["_pos"].to_numpy(dtype=np.int64))
    wh["block"] = small["block"].take(at).to_numpy()
    wh["rid"] = small["rid"].take(at).to_numpy()
    wh["person_id"] = rows["person_id"].take(order.take(at)).to_numpy(zero_copy_only=False)
    rd = row_defects.merge(wh[["block", "rid", "file", "line", "person_id"]],
                           on=["block", "rid"], how="inner")
    fd = pd.DataFrame(file_defects, columns=["kind", "file", "line", "field", "detail"])
    fd["person_id"] = None
    found = pd.concat([rd[["kind", "file", "line", "field", "detail", "person_id"]], fd],
                      ignore_index=True)
    found.insert(1, "source", spec.name)
    found["line"] = found["line"].astype("Int64")
    counts["rows"] = record_person.num_rows
    return record_person, found, counts
