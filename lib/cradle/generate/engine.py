"""Orchestration: world → blocks of persons (in parallel) → files → truth.

Determinism and scale: persons are generated in fixed-size blocks (``block_size``), each
with its own seed ``SeedSequence(seed, spawn_key=(1, block))``, so a block's output does not
depend on the number of workers or on the other blocks. Blocks run in a ``multiprocessing``
pool (``--workers``) and leave their records, already rendered as text lines in their
file's layout, in ``<out>/_work``; then one task per source orders the lines and writes the
files, and the truth tables are concatenated. Everything random is drawn from seeds
derived from the run's seed; nothing depends on time or on dict/set iteration order.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cradle.generate import events as ev
from cradle.generate import reference as ref
from cradle.generate import world
from cradle.generate.behaviour import CHANNEL_STORE, assemble
from cradle.generate.dirt import apply_record_dirt
from cradle.generate.orders import ecom_rows, money, pos_rows
from cradle.generate.people import babies_table, life_stage_intervals, make_people
from cradle.generate.schema import SOURCES, SourceSpec
from cradle.generate.settings import DEFECT_KINDS, Params, Settings
from cradle.generate.writers import (
    FilePlan,
    make_plan,
    malformed,
    render,
    to_arrow,
    write_source,
)

log = logging.getLogger(__name__)
WORK = "_work"
TRUTH = "_truth"


@dataclass(frozen=True)
class World:
    settings: Settings
    params: Params
    cities: pd.DataFrame
    stores: pd.DataFrame
    hospitals: pd.DataFrame
    campaigns: np.ndarray
    catalogue: pd.DataFrame
    calendar: ref.Calendar
    plan: FilePlan

    @property
    def start64(self) -> np.datetime64:
        return np.datetime64(self.params.start, "D")


def rng_for(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def build_world(s: Settings, p: Params) -> World:
    rng = rng_for(p.seed, 0)
    cities = ref.cities()
    stores = world.make_stores(rng, cities, p.members, s.channels.members_per_store,
                               s.dirt.store_phone_listed)
    hospitals = world.make_hospitals(rng, cities)
    campaigns = world.make_campaigns(rng)
    catalogue = ref.products(with_launch=True)
    cal = ref.build_calendar(p.start, p.days)
    plan = make_plan(rng_for(p.seed, 2), s, p.start, p.days)
    return World(s, p, cities, stores, hospitals, campaigns, catalogue, cal, plan)


# --- one block of persons ------------------------------------------------------------------

def is_anonymous(spec: SourceSpec, df: pd.DataFrame) -> np.ndarray:
    """Records that carry no identifier of their person once dirt is applied: a walk-in
    sale with no card and no phone of her own, a Wi-Fi visit under a random MAC, an ad or
    app event whose only device id is all zeros. No identity method can attribute them;
    the evaluator counts them apart from the pairwise figures."""

    def empty(col: str) -> np.ndarray:
        v = df[col] if col in df else pd.Series([None] * len(df))
        return (v.isna() | v.isin([ev.ALL_ZERO, "0000000000000000"])).to_numpy()

    if spec.name == "pos_orders":
        store_phone = df["_store_phone"].to_numpy(dtype=bool) if "_store_phone" in df else False
        return empty("member_card_no") & (empty("mobile") | store_phone)
    if spec.name == "wifi_probes":
        return df["_randomised"].to_numpy(dtype=bool) & empty("mobile")
    if spec.name == "ad_events":
        return empty("device_id") & empty("mobile_md5")
    if spec.name == "app_events":
        return (empty("app_user_id") & empty("mobile") & empty("idfa") & empty("oaid")
                & empty("android_id"))
    return np.zeros(len(df), dtype=bool)


def finish_records(w: World, spec: SourceSpec, df: pd.DataFrame, block: int,
                   rng: np.random.Generator, persons: pd.DataFrame | None,
                   dirty: bool = True) -> tuple[pa.Table, pd.DataFrame]:
    """Key, dirt, file assignment and rendering: records → text lines with their truth."""
    df = df.reset_index(drop=True)
    key = pc.binary_join_element_wise(*[pc.fill_null(to_arrow(df[k]), "") for k in spec.key],
                                      "|")
    df["_key"] = key.to_numpy(zero_copy_only=False)
    df["_edate"] = ev.date_text(w.start64, np.floor_divide(df["_ts"].to_numpy(dtype=np.int64),
                                                           86400))
    if dirty:
        df, found = apply_record_dirt(rng, w.settings, spec, df, w.params.days)
    else:
        df["_rid"] = np.arange(len(df), dtype=np.int64)
        found = pd.DataFrame(columns=["_rid", "kind", "field", "detail"])
    parts, table = w.plan.index_of(spec.name)
    prow = df["_part"].map(parts).fillna(0).to_numpy(dtype=np.int64)
    deliver = df["_deliver"].to_numpy(dtype=np.int64)
    fidx = table[prow, np.clip(deliver, 0, table.shape[1] - 1)]
    keep = (fidx >= 0) & (deliver >= 0) & (deliver < table.shape[1])
    df, fidx = df[keep].reset_index(drop=True), fidx[keep]
    found = found[found["_rid"].isin(set(df["_rid"]))]
    layout = w.plan.files["layout"].to_numpy()[fidx]
    lines = render(spec, df, layout)
    if dirty:
        lines, idx, detail = malformed(rng, spec, lines, w.settings.dirt.malformed_row)
        found = pd.concat([found, pd.DataFrame({
            "_rid": df["_rid"].to_numpy()[idx], "kind": "malformed_row", "field": None,
            "detail": detail})], ignore_index=True)
    pi = df["_pi"].to_numpy(dtype=np.int64)
    pid = (np.where(pi >= 0, persons["person_id"].to_numpy()[np.maximum(pi, 0)], None)
           if persons is not None else np.full(len(df), None, dtype=object))
    rows = pa.table({
        "file_idx": pa.array(fidx.astype(np.int64)),
        "ts": pa.array(df["_ts"].to_numpy(dtype=np.int64)),
        "rid": pa.array(df["_rid"].to_numpy(dtype=np.int64)), "line": lines,
        "key": pa.array(df["_key"].to_numpy(dtype=object), type=pa.string()),
        "person_id": pa.array(pid, type=pa.string()),
        "anonymous": pa.array(is_anonymous(spec, df)),
        "event_date": pa.array(df["_edate"].to_numpy(dtype=object), type=pa.string()),
        "block": pa.array(np.full(len(df), block, dtype=np.int64))})
    found = found.rename(columns={"_rid": "rid"})
    found["rid"] = found["rid"].astype(np.int64)
    found["block"] = block
    found["field"] = found["field"].astype(object)
    found["detail"] = found["detail"].astype(str)
    return rows, found


def save(df: pd.DataFrame | pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path)


_WORLD: World | None = None


def _init_worker(w: World) -> None:
    global _WORLD  # noqa: PLW0603 - a worker holds one read-only world
    _WORLD = w


def run_block(block: int) -> dict:
    """Generate, dirty and render one block; write its records and truth under _work."""
    w = _WORLD
    assert w is not None
    s, p = w.settings, w.params
    rng = rng_for(p.seed, 1, block)
    g0 = block * s.block_size
    n = min(s.block_size, p.members - g0)
    days, start = p.days, w.start64
    people = make_people(rng, s, g0, n, days, w.cities, w.stores)
    people.persons.attrs["unionid_missing"] = s.population.unionid_missing
    buys = assemble(rng, s, people, w.calendar, days, w.catalogue)
    crm, members = ev.crm_rows(rng, s, people, block, days, w.stores, start)
    devs = ev.devices(rng, s, people)
    lines = buys.lines
    store_orders = lines[lines["channel"] == CHANNEL_STORE].drop_duplicates("order_seq")
    frames = {
        "crm_members": crm,
        "pos_orders": pos_rows(rng, s, people, lines, w.stores, block, start),
        "ecom_orders": ecom_rows(rng, s, people, lines, block, days, start),
        "wechat_events": ev.wechat_events(rng, s, people, block, days, w.calendar, buys.samples,
                                          start),
        "app_events": ev.app_events(rng, s, people, devs, block, days, start),
        "ad_events": ev.ad_events(rng, s, people, devs, block, days, w.campaigns, start),
        "hospital_signups": ev.hospital_signups(rng, s, people, w.hospitals, block, days,
                                                start),
        "wifi_probes": ev.wifi_probes(rng, s, people, devs, store_orders, w.stores, days, start),
        "dmp_tags": ev.dmp_tags(rng, s, people, days, start),
    }
    consent_events, consent_truth = ev.consent(rng, s, people, members, block, days, start)
    frames["consent_events"] = consent_events
    work = Path(p.out) / WORK
    counts = {}
    for name, df in frames.items():
        rows, found = finish_records(w, SOURCES[name], df, block, rng, people.persons)
        save(rows, work / name / f"rows_{block:05d}.parquet")
        save(found, work / name / f"defects_{block:05d}.parquet")
        counts[name] = len(rows)
    # Truth tables of this block.
    pp = people.persons
    persons = pd.DataFrame({
        "person_id": pp["person_id"], "household_id": pp["household_id"],
        "province": pp["province"], "city": pp["city"], "city_tier": pp["city_tier"],
        "mother_birth_date": (start + pp["mother_birth"].to_numpy().astype("timedelta64[D]")
                              ).astype(object),
        "mobile": pp["mobile"], "mobile_md5": pp["mobile_md5"], "name": pp["name"],
        "address": pp["address"],
        "member_id": np.where(pp["reg_day"].to_numpy() < days, pp["member_id"], None),
        "member_card_no": np.where(pp["reg_day"].to_numpy() < days, pp["card_no"], None),
        "registered_on": pd.Series((start + np.minimum(pp["reg_day"].to_numpy(), 10**5).astype(
            "timedelta64[D]")).astype(object)).where(pp["reg_day"].to_numpy() < days),
        "unionid": np.where(pp["wechat"], pp["unionid"], None),
        "openid_oa": np.where(pp["wechat"], pp["openid_oa"], None),
        "openid_mp": np.where(pp["wechat"], pp["openid_mp"], None),
        "app_user_id": np.where(pp["app"], pp["app_user_id"], None),
        **{f"buyer_{x}": pp[f"buyer_{x}"] for x in ["tmall", "jd", "pdd", "douyin"]},
        "home_store_id": w.stores["store_id"].to_numpy()[pp["home_store"].to_numpy()],
        "is_formula_household": pp["formula"],
    })
    dev = pd.DataFrame({"person_id": pp["person_id"].to_numpy()[devs["pi"].to_numpy()],
                        "dev_no": devs["dev_no"].astype(np.int32), "os": np.where(
                            devs["ios"], "ios", "android"),
                        "idfa": devs["idfa"], "oaid": devs["oaid"],
                        "android_id": devs["android_id"], "mac": devs["mac"]})
    mem = pd.DataFrame({"member_id": members["member_id"].to_numpy(),
                        "person_id": pp["person_id"].to_numpy()[members["pi"].to_numpy()],
                        "member_card_no": members["card_no"].to_numpy(),
                        "is_primary": members["is_primary"].to_numpy()})
    truth = {
        "persons": persons,
        "babies": babies_table(people, start, days),
        "life_stage": life_stage_intervals(people, start),
        "journey": buys.journey,
        "consent": consent_truth,
        "members": mem,
        "devices": dev,
    }
    for name, df in truth.items():
        save(df, work / TRUTH / name / f"part_{block:05d}.parquet")
    st = lines[(lines["channel"] == CHANNEL_STORE)]
    sales = st.groupby(["store_idx", "sku", "day"], as_index=False)["qty"].sum()
    log.info("block %d: %d persons, %d records", block, n, sum(counts.values()))
    return {"block": block, "sales": sales, "counts": counts}


# --- reference data --------------------------------------------------------------------------

def reference_frames(w: World, sales: pd.DataFrame) -> dict[str, pd.DataFrame]:
    s, p = w.settings, w.params
    days = p.days
    cat = w.catalogue
    prods = []
    for day, launched in [(0, False), (s.products_change_day, True)]:
        if day >= days or (launched and day <= 0):
            continue
        c = cat if launched else cat[cat["sku"] != "ZH3-800A"]
        prods.append(pd.DataFrame({
            "sku": c["sku"], "name": c["name"], "series": c["series"].replace("", None),
            "category": c["category"], "stage": c["stage"].astype(object).where(
                c["stage"].notna(), None).map(lambda v: None if v is None else str(v)),
            "pack_size_g": c["pack_size_g"].astype(object).where(c["pack_size_g"].notna(), None
                                                                 ).map(lambda v: None if v is
                                                                       None else str(v)),
            "list_price": money(c["list_price"].to_numpy()),
            "shelf_life_days": c["shelf_life_days"].astype(object).where(
                c["shelf_life_days"].notna(), None).map(lambda v: None if v is None else str(v)),
            "_pi": -1, "_ts": day * 86400, "_deliver": day, "_part": ""}))
    st = w.stores
    stores = pd.DataFrame({c: st[c] for c in SOURCES["stores"].columns})
    stores["city_tier"] = stores["city_tier"].astype(str)
    stores = stores.assign(_pi=-1, _ts=0, _deliver=0, _part="")
    return {"products": pd.concat(prods, ignore_index=True), "stores": stores,
            "inventory": inventory(w, sales)}


def inventory(w: World, sales: pd.DataFrame) -> pd.DataFrame:
    """Daily stock of our formula in every store: sell, reorder below 7 days, 3-day lead."""
    rng = rng_for(w.params.seed, 3)
    days = w.params.days
    skus = w.catalogue[(w.catalogue["is_own"]) & w.catalogue["category"].isin(
        ["formula", "maternal_formula"])]["sku"].to_numpy()
    n_st, n_sku = len(w.stores), len(skus)
    sold = np.zeros((n_st, n_sku, days))
    if len(sales):
        j = pd.Index(skus).get_indexer(sales["sku"])
        ok = j >= 0
        np.add.at(sold, (sales["store_idx"].to_numpy()[ok], j[ok], sales["day"].to_numpy()[ok]),
                  sales["qty"].to_numpy()[ok])
    rate = sold.mean(axis=2) + 0.2
    on_hand = np.round(rate * rng.uniform(8, 20, rate.shape)).astype(np.int64)
    pipeline = np.zeros((n_st, n_sku, days + 4), dtype=np.int64)
    launched = w.settings.products_change_day
    out_on, out_tr = np.zeros((n_st, n_sku, days), np.int64), np.zeros((n_st, n_sku, days),
                                                                       np.int64)
    for d in range(days):            # days, not rows: each step is vectorised
        on_hand += pipeline[:, :, d]
        on_hand = np.maximum(on_hand - sold[:, :, d].astype(np.int64), 0)
        transit = pipeline[:, :, d + 1:].sum(axis=2)
        reorder = (on_hand + transit) < rate * 7
        qty = np.ceil(rate * 14).astype(np.int64)
        pipeline[:, :, d + 3] += np.where(reorder, qty, 0)
        out_on[:, :, d] = on_hand
        out_tr[:, :, d] = pipeline[:, :, d + 1:].sum(axis=2)
    si, ki, di = np.meshgrid(np.arange(n_st), np.arange(n_sku), np.arange(days), indexing="ij")
    si, ki, di = si.ravel(), ki.ravel(), di.ravel()
    carried = ~((skus[ki] == "ZH3-800A") & (di < launched))
    si, ki, di = si[carried], ki[carried], di[carried]
    expiry = di + 730 - rng.integers(60, 400, len(di))
    return pd.DataFrame({
        "snapshot_date": ev.date_text(w.start64, di),
        "store_id": w.stores["store_id"].to_numpy()[si], "sku": skus[ki].astype(object),
        "on_hand": out_on[si, ki, di].astype(str).astype(object),
        "in_transit": out_tr[si, ki, di].astype(str).astype(object),
        "earliest_expiry": ev.date_text(w.start64, expiry),
        "_pi": -1, "_ts": di * 86400 + 23 * 3600, "_deliver": di, "_part": ""})


# --- files and truth -------------------------------------------------------------------------

def write_one_source(name: str) -> dict:
    w = _WORLD
    assert w is not None
    out = Path(w.params.out)
    src = out / WORK / name
    rows = pa.concat_tables([pq.read_table(f) for f in sorted(src.glob("rows_*.parquet"))])
    # A big source holds more than 2 GiB of text: 64-bit offsets for sorting and slicing.
    rows = rows.cast(pa.schema([pa.field(f.name, pa.large_string()) if f.type == pa.string()
                                else f for f in rows.schema]))
    found = pd.concat([pd.read_parquet(f) for f in sorted(src.glob("defects_*.parquet"))],
                      ignore_index=True)
    plan = w.plan.files[w.plan.files["source"] == name]
    rng = rng_for(w.params.seed, 4, list(SOURCES).index(name))
    record_person, defects, counts = write_source(out, SOURCES[name], plan, rows, found, rng)
    save(record_person, out / WORK / TRUTH / "record_person" / f"{name}.parquet")
    save(defects, out / WORK / TRUTH / "defects" / f"{name}.parquet")
    log.info("wrote %s: %d files, %d rows", name, counts["files"], counts["rows"])
    return {"source": name, **counts}


def concat_truth(out: Path, name: str) -> int:
    parts = sorted((out / WORK / TRUTH / name).glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in parts], promote_options="default")
    pq.write_table(table, out / TRUTH / f"{name}.parquet")
    return table.num_rows


def generate(s: Settings, p: Params) -> dict:
    """Write landing files and ground truth for ``p``; return the manifest."""
    t0 = time.monotonic()
    out = Path(p.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in [*SOURCES, TRUTH, WORK]:       # only what this generator owns
        shutil.rmtree(out / name, ignore_errors=True)
    w = build_world(s, p)
    n_blocks = -(-p.members // s.block_size)
    log.info("generating %d members x %d days from %s (seed %d): %d blocks, %d workers",
             p.members, p.days, p.start, p.seed, n_blocks, p.workers)
    results: list[dict] = []
    ctx = mp.get_context("spawn")
    if p.workers > 1:
        with ctx.Pool(p.workers, initializer=_init_worker, initargs=(w,)) as pool:
            for r in pool.imap(run_block, range(n_blocks)):
                results.append(r)
                log.info("blocks done: %d/%d", len(results), n_blocks)
    else:
        _init_worker(w)
        for b in range(n_blocks):
            results.append(run_block(b))
    log.info("persons simulated in %.1fs", time.monotonic() - t0)
    _init_worker(w)
    sales = pd.concat([r["sales"] for r in results], ignore_index=True)
    sales = sales.groupby(["store_idx", "sku", "day"], as_index=False)["qty"].sum()
    rng = rng_for(p.seed, 5)
    for name, df in reference_frames(w, sales).items():
        rows, found = finish_records(w, SOURCES[name], df, -1, rng, None, dirty=False)
        save(rows, out / WORK / name / "rows_ref.parquet")
        save(found, out / WORK / name / "defects_ref.parquet")
    # Biggest sources first so the pool stays busy.
    sizes = {n: sum(r["counts"].get(n, 0) for r in results) for n in SOURCES}
    names = sorted(SOURCES, key=lambda n: -sizes[n])
    if p.workers > 1:
        with ctx.Pool(p.workers, initializer=_init_worker, initargs=(w,)) as pool:
            written = []
            for r in pool.imap_unordered(write_one_source, names):   # progress in this log
                written.append(r)
                log.info("wrote %s: %d files, %d rows (%d/%d sources)", r["source"],
                         r["files"], r["rows"], len(written), len(names))
    else:
        written = [write_one_source(n) for n in names]
    written.sort(key=lambda r: list(SOURCES).index(r["source"]))
    (out / TRUTH).mkdir(parents=True, exist_ok=True)
    truth_counts = {}
    for name in ["persons", "babies", "life_stage", "journey", "consent", "members", "devices",
                 "record_person", "defects"]:
        truth_counts[name] = concat_truth(out, name)
    cop = pd.DataFrame([{"antecedent": r.antecedent, "consequent": r.consequent,
                         "window_days": r.window_days, "true_confidence": r.confidence,
                         "lag": "uniform 1..window_days days after the antecedent's first "
                                "purchase in the period"} for r in s.copurchase])
    save(cop, out / TRUTH / "copurchase.parquet")
    prods = w.catalogue.copy()
    save(prods, out / TRUTH / "products.parquet")
    truth_counts["copurchase"] = len(cop)
    defects = pd.read_parquet(out / TRUTH / "defects.parquet", columns=["kind"])
    by_kind = defects["kind"].value_counts()
    manifest = {
        "generator": "cradle.generate",
        "seed": p.seed, "members": p.members, "days": p.days,
        "start": p.start.isoformat(), "end": (p.start + timedelta(days=p.days - 1)).isoformat(),
        "block_size": s.block_size, "blocks": n_blocks,
        "settings": s.model_dump(mode="json"),
        "sources": {r["source"]: {"files": r["files"], "rows": r["rows"], "bytes": r["bytes"]}
                    for r in written},
        "truth_rows": truth_counts,
        "defects_by_kind": {k: int(by_kind.get(k, 0)) for k in DEFECT_KINDS},
        "conventions": {
            "days": "valid_to is inclusive; null means still valid at the end of the period",
            "life_stage_age_days": "0-6m < 183 <= 6-12m < 365 <= 1-2y < 730 <= 2-3y < 1095 "
                                   "<= 3-4y < 1461 <= 4-5y < 1826 <= 5-6y < 2191 <= 6y+",
            "record_key": "business key from the values before any dirt, joined with '|'",
            "row_defects": "file/line of the row's first delivery (a duplicate_file copy "
                           "repeats them without new defect rows)",
            "babies": "children born by the end of the period (later births are not listed)",
            "journey": "journey_stage relative to our brand; brand = brand of the latest "
                       "formula purchase (null before any)",
            "crm_initial_extract": "the first crm_members file also holds every member "
                                   "registered before the period, as last updated",
        },
    }
    (out / TRUTH / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True,
                                                          ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    shutil.rmtree(out / WORK, ignore_errors=True)
    total = sum(r["rows"] for r in written)
    log.info("done: %d files, %d rows in %.1fs", sum(r["files"] for r in written), total,
             time.monotonic() - t0)
    return manifest


def default_params(members: int, days: int, start: date, seed: int, out: str,
                   workers: int = 1) -> Params:
    return Params(members=members, days=days, start=start, seed=seed, out=out, workers=workers)
