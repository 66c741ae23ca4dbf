"""Record-level defects, each recorded with its kind, row and field.

Every function takes a source's frame (contract fields as strings, private ``_`` columns,
``_rid`` the row id) and returns the changed frame plus defect rows
``(_rid, kind, field, detail)``. File-level defects are the writer's (writers.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cradle.generate import reference as ref
from cradle.generate.events import ALL_ZERO
from cradle.generate.schema import SourceSpec
from cradle.generate.settings import Settings

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
MOBILE_FORMATS = ["+86 dash", "86", "+86", "spaced", "full_width"]


def defects(rid: np.ndarray, kind: str, field: str | None, detail) -> pd.DataFrame:
    return pd.DataFrame({"_rid": np.asarray(rid, dtype=np.int64), "kind": kind,
                         "field": field, "detail": detail})


def format_mobile(mobile: pd.Series, fmt: np.ndarray) -> pd.Series:
    """Render canonical 11-digit mobiles in the given non-canonical formats."""
    a, b, c = mobile.str[:3], mobile.str[3:7], mobile.str[7:]
    out = pd.Series(np.select(
        [fmt == "+86 dash", fmt == "86", fmt == "+86", fmt == "spaced"],
        ["+86 " + a + "-" + b + "-" + c, "86" + mobile, "+86" + mobile, a + " " + b + " " + c],
        mobile.str.translate(FULL_WIDTH)), index=mobile.index, dtype=object)
    return out


def choose(rng: np.random.Generator, eligible: np.ndarray, rate: float) -> np.ndarray:
    return eligible & (rng.random(len(eligible)) < rate)


def mobile_format(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float
                  ) -> list[pd.DataFrame]:
    out = []
    for f in spec.mobile_fields:
        v = df[f]
        canon = v.notna() & v.astype(str).str.fullmatch(r"1[3-9]\d{9}").fillna(False)
        hit = choose(rng, canon.to_numpy(), rate)
        if not hit.any():
            continue
        fmt = np.array(MOBILE_FORMATS, dtype=object)[rng.integers(0, 5, hit.sum())]
        df.loc[hit, f] = format_mobile(v[hit].astype(str), fmt).to_numpy()
        out.append(defects(df["_rid"].to_numpy()[hit], "mobile_format", f, fmt))
    return out


def typo(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float
         ) -> list[pd.DataFrame]:
    """A mistyped character: a homophone in a name, a wrong digit or character in an address."""
    out = []
    for f in spec.text_fields:
        v = df[f]
        ok = v.notna() & (v.astype(str).str.len() >= 2) & ~v.astype(str).str.contains(r"\*")
        hit = choose(rng, ok.to_numpy(), rate)
        if not hit.any():
            continue
        s = v[hit].astype(str)
        tc = np.array(ref.TYPO_CHARS, dtype=object)[rng.integers(0, len(ref.TYPO_CHARS),
                                                                 hit.sum())]
        if "name" in f:
            new = s.str[:-1] + tc
            new = np.where(new == s, s.str[:-1] + "丽", new)
        else:
            pos = (rng.random(hit.sum()) * (s.str.len() - 1)).astype(int) + 1
            new = np.array([x[:p] + x[p + 1:] for x, p in zip(s, pos, strict=True)],
                           dtype=object)        # a dropped character (rows hit are few)
        df.loc[hit, f] = new
        out.append(defects(df["_rid"].to_numpy()[hit], "typo", f, "was " + s.to_numpy()))
    return out


def impossible_date(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float
                    ) -> list[pd.DataFrame]:
    """Replace the date part of one date/timestamp field with a day that does not exist."""
    if not spec.date_fields or df.empty:
        return []
    f_idx = rng.integers(0, len(spec.date_fields), len(df))
    out = []
    for j, f in enumerate(spec.date_fields):
        hit = choose(rng, (f_idx == j) & df[f].notna().to_numpy(), rate)
        if not hit.any():
            continue
        s = df.loc[hit, f].astype(str)
        bad = np.array(["-02-30", "-02-31", "-04-31", "-06-31", "-09-31", "-11-31", "-13-01"],
                       dtype=object)[rng.integers(0, 7, hit.sum())]
        new = s.str[:4] + bad + s.str[10:]
        df.loc[hit, f] = new.to_numpy()
        out.append(defects(df["_rid"].to_numpy()[hit], "impossible_date", f, new.to_numpy()))
    return out


def out_of_range(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float
                 ) -> list[pd.DataFrame]:
    out = []
    rid = df["_rid"].to_numpy()
    if spec.name == "pos_orders":
        hit = choose(rng, np.ones(len(df), dtype=bool), rate)
        qty = rng.random(len(df)) < 0.5
        # a zero amount (a free sample) cannot be made negative: negate its quantity
        qty |= df["amount"].astype(str).to_numpy() == "0.00"
        h1, h2 = hit & qty, hit & ~qty
        df.loc[h1, "qty"] = "-" + df.loc[h1, "qty"].astype(str)
        df.loc[h2, "amount"] = "-" + df.loc[h2, "amount"].astype(str)
        out += [defects(rid[h1], "out_of_range", "qty", "negative quantity"),
                defects(rid[h2], "out_of_range", "amount", "negative amount")]
    elif spec.name == "crm_members":
        ok = df["updated_at"].notna().to_numpy() & ~df["_test"].to_numpy()
        hit = choose(rng, ok, rate)
        # relative to the row's true date (updated_at may already carry an impossible date)
        year = df["_edate"].astype(str).str[:4]
        kind = rng.integers(0, 4, len(df))
        mmdd = df["_edate"].astype(str).str[4:10]
        yr = pd.to_numeric(year, errors="coerce").fillna(2026).astype(int)
        vals = [
            ("mother_birth_date", (yr - rng.integers(6, 17, len(df))).astype(str) + mmdd,
             "mother younger than 18"),
            ("mother_birth_date", (yr - rng.integers(60, 80, len(df))).astype(str) + mmdd,
             "mother older than 55"),
            ("baby_birth_date", (yr + 1).astype(str) + mmdd, "baby born in the future"),
            ("baby_birth_date", (yr - rng.integers(8, 15, len(df))).astype(str) + mmdd,
             "baby born more than 7 years ago"),
        ]
        for j, (f, v, why) in enumerate(vals):
            h = hit & (kind == j)
            df.loc[h, f] = v[h].to_numpy()
            out.append(defects(rid[h], "out_of_range", f, why))
    return out


def all_zero_device(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float
                    ) -> list[pd.DataFrame]:
    out = []
    rid = df["_rid"].to_numpy()
    if spec.name == "app_events":
        hit = choose(rng, np.ones(len(df), dtype=bool), rate)
        for f in ("idfa", "oaid"):
            h = hit & df[f].notna().to_numpy()
            df.loc[h, f] = ALL_ZERO
            out.append(defects(rid[h], "all_zero_device", f, ALL_ZERO))
    elif spec.name == "ad_events":
        hit = choose(rng, np.ones(len(df), dtype=bool), rate)
        uuid = (df["device_id_type"] != "android_id").to_numpy()
        df.loc[hit & uuid, "device_id"] = ALL_ZERO
        df.loc[hit & ~uuid, "device_id"] = "0000000000000000"
        out.append(defects(rid[hit], "all_zero_device", "device_id", "all zeros"))
    return out


def late_event(rng: np.random.Generator, df: pd.DataFrame, spec: SourceSpec, rate: float,
               days: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Deliver some records 1-10 days after their event; past the last day they never arrive."""
    if spec.event_field is None or spec.name == "dmp_tags":
        return df, []
    eligible = ~df.get("_initial", pd.Series(False, index=df.index)).to_numpy(dtype=bool)
    hit = choose(rng, eligible, rate)
    delay = rng.integers(1, 11, len(df))
    df.loc[hit, "_deliver"] = df.loc[hit, "_deliver"].to_numpy() + delay[hit]
    d = defects(df["_rid"].to_numpy()[hit], "late_event", spec.event_field,
                np.char.add("delivered days late: ", delay[hit].astype(str)))
    keep = df["_deliver"].to_numpy() < days
    gone = set(df["_rid"].to_numpy()[~keep])
    d = d[~d["_rid"].isin(gone)]
    return df[keep], [d]


def flagged(df: pd.DataFrame, spec: SourceSpec) -> list[pd.DataFrame]:
    """Defects decided while the records were built (placeholders, shared phones, ...)."""
    rid = df["_rid"].to_numpy()
    out = []
    if "_store_phone" in df:
        h = df["_store_phone"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "store_phone_walkin", "mobile", "store's own phone"))
    if "_family" in df:
        h = df["_family"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "family_shared_mobile", "mobile",
                           "mobile of " + df["_relative"][h].astype(str).to_numpy()))
    if "_family_outsider" in df:
        h = df["_family_outsider"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "family_shared_mobile", "mobile",
                           "mobile of a relative who is no member"))
    if "_att_zero" in df:
        h = df["_att_zero"].to_numpy(dtype=bool)
        field = "device_id" if spec.name == "ad_events" else "idfa"
        out.append(defects(rid[h], "all_zero_device", field, "app tracking declined (ATT)"))
    if "_masked" in df:
        h = df["_masked"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "masked_mobile", "receiver_mobile", "masked by platform"))
    if "_test" in df:
        h = df["_test"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "test_account", "member_id", "test account"))
    if "_rereg" in df:
        h = df["_rereg"].to_numpy(dtype=bool)
        out.append(defects(rid[h], "re_registration", "member_id", "second member_id"))
    if "_dev_no" in df:
        h = df["_dev_no"].to_numpy() > 0
        field = ("device_id" if spec.name == "ad_events"
                 else np.where(df["os"].to_numpy()[h] == "ios", "idfa", "oaid"))
        out.append(defects(rid[h], "multi_device", None, "secondary device").assign(field=field))
    return out


def duplicate_rows(rng: np.random.Generator, df: pd.DataFrame, found: pd.DataFrame, rate: float
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copy some rows (a system sending a record twice); copies keep their defects."""
    hit = rng.random(len(df)) < rate
    copies = df[hit].copy()
    base = int(df["_rid"].max()) + 1 if len(df) else 0
    new_rid = base + np.arange(len(copies))
    mapping = pd.Series(new_rid, index=copies["_rid"].to_numpy())
    copies["_rid"] = new_rid
    carried = found[found["_rid"].isin(mapping.index)].copy()
    carried["_rid"] = mapping.reindex(carried["_rid"]).to_numpy()
    dup = defects(new_rid, "duplicate_row", None, "copy of an earlier row")
    return (pd.concat([df, copies], ignore_index=True),
            pd.concat([found, carried, dup], ignore_index=True))


def apply_record_dirt(rng: np.random.Generator, s: Settings, spec: SourceSpec, df: pd.DataFrame,
                      days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All record-level dirt for one source of one block, in an order that keeps it honest:
    field dirt first, then lateness, then duplication (so a copy is byte-identical)."""
    d = s.dirt
    df = df.reset_index(drop=True)
    df["_rid"] = np.arange(len(df), dtype=np.int64)
    found: list[pd.DataFrame] = flagged(df, spec)
    found += mobile_format(rng, df, spec, d.mobile_format)
    found += typo(rng, df, spec, d.typo)
    found += impossible_date(rng, df, spec, d.impossible_date)
    found += out_of_range(rng, df, spec, d.out_of_range)
    found += all_zero_device(rng, df, spec, d.all_zero_device)
    df, late = late_event(rng, df, spec, d.late_event, days)
    found += late
    cols = ["_rid", "kind", "field", "detail"]
    allf = pd.concat([f[cols] for f in found if len(f)] or [pd.DataFrame(columns=cols)],
                     ignore_index=True)
    allf = allf[allf["_rid"].isin(set(df["_rid"]))]
    df, allf = duplicate_rows(rng, df, allf, d.duplicate_row)
    return df, allf
