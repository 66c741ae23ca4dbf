"""Households, mothers, babies and their life stage, vectorised over a block of persons.

Days are integers relative to the first delivery date (day 0); negative days are history.
A person is the mother of one household; her life stage is ``pregnant`` while pregnant,
else the age band of her youngest child, else ``preparing``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cradle.generate import reference as ref
from cradle.generate.settings import LIFE_STAGES, PLATFORMS_ECOM, Settings

NEVER = 10**7                      # "no such day"
# Age (days) at which each band after 0-6m starts: 6m, 1y, 2y, ..., 6y.
BAND_EDGES = np.array([183, 365, 730, 1095, 1461, 1826, 2191])
# Age (days) at which formula stages 2, 3, 4 start and formula stops.
FORMULA_EDGES = np.array([183, 365, 1095, 2191])
MOBILE_PREFIXES = np.array(["130", "131", "132", "133", "135", "136", "137", "138", "139",
                            "150", "151", "152", "153", "155", "156", "157", "158", "159",
                            "166", "177", "180", "181", "182", "183", "185", "186", "187",
                            "188", "189", "198", "199"])
HEX = np.array(list("0123456789abcdef"))
B62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"))


def scramble(x: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection on [0, modulus) for modulus = 10**k: ids look random but never collide.

    Two rounds of (affine map, then add the high digits into the low ones): each step is
    invertible modulo 10**k; the affine map spreads low digits upwards, the addition
    spreads high digits downwards, so neighbouring inputs give unrelated outputs.
    """
    width = len(str(modulus)) - 1
    half = 10 ** (width // 2)
    y = x.astype(np.int64) % modulus
    for r in range(2):
        a = 2 * (salt * 797 + 1_000_003 + r * 7_919) + 1   # odd, small enough not to overflow
        if a % 5 == 0:                                        # coprime to 10, so invertible
            a += 2
        y = (y * a + salt * 1_000_003 + r) % modulus
        hi, lo = y // half, y % half
        y = hi * half + (lo + hi * 7_777 + salt) % half
    return y


def digits(x: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal strings."""
    if len(x) == 0:
        return np.array([], dtype=f"<U{width}")
    return np.char.zfill(x.astype(np.int64).astype(str), width)


def tokens(rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray) -> np.ndarray:
    """``n`` random strings of ``length`` characters from ``alphabet``."""
    if n == 0:
        return np.array([], dtype=object)
    idx = rng.integers(0, len(alphabet), size=(n, length))
    chars = alphabet[idx].astype("U1")
    return np.ascontiguousarray(chars).view(f"<U{length}").ravel().astype(object)


def md5_hex(values: np.ndarray) -> np.ndarray:
    """Lower-case hex MD5 per value (hashlib has no vectorised form; ~1 µs per value)."""
    return np.array([hashlib.md5(v.encode()).hexdigest() for v in values], dtype=object)


def uuid_like(rng: np.random.Generator, n: int, upper: bool) -> np.ndarray:
    raw = tokens(rng, n, 32, HEX)
    s = pd.Series(raw, dtype=object)
    out = (s.str[:8] + "-" + s.str[8:12] + "-" + s.str[12:16] + "-" + s.str[16:20] + "-"
           + s.str[20:32])
    return (out.str.upper() if upper else out).to_numpy(dtype=object)


def band_of_age(age: np.ndarray) -> np.ndarray:
    """Life-stage code (2..9) for a child's age in days (age >= 0)."""
    return 2 + np.searchsorted(BAND_EDGES, age, side="right")


def formula_stage_of_age(age: np.ndarray) -> np.ndarray:
    """Formula stage 1..4 for a child's age in days; 5 means past formula age."""
    return 1 + np.searchsorted(FORMULA_EDGES, age, side="right")


@dataclass
class People:
    """One block of persons: columns on ``persons``, children in ``births`` (n x 3)."""

    persons: pd.DataFrame
    births: np.ndarray        # birth day per child slot (older, youngest, pending); NEVER if none
    twins: np.ndarray         # bool per slot
    preg_start: np.ndarray    # first day of the (current or future) pregnancy, NEVER if none
    stage: np.ndarray         # (n, days) int8 life-stage code per day


def make_people(rng: np.random.Generator, s: Settings, g0: int, n: int, days: int,
                cities: pd.DataFrame, stores: pd.DataFrame) -> People:
    """Generate ``n`` persons with global indices ``g0 .. g0+n-1``."""
    pop = s.population
    gidx = np.arange(g0, g0 + n, dtype=np.int64)
    tiers = cities["city_tier"].to_numpy()
    w = np.array([pop.tier_share[int(t)] / (tiers == t).sum() for t in tiers])
    city_i = rng.choice(len(cities), size=n, p=w / w.sum())

    # Registrations reach ~3 years back: 21.5 at the start keeps every clean mother an adult
    # (18+) on every date her records carry; younger ones are injected as out_of_range only.
    age_years = np.clip(rng.normal(pop.mother_age_mean, pop.mother_age_sd, n), 21.5, 45)
    mother_birth = -np.round(age_years * 365.25).astype(np.int64)

    # --- pregnancy and children ------------------------------------------------------
    u = rng.random(n)
    state = np.where(u < pop.preparing_share, 0,
                     np.where(u < pop.preparing_share + pop.pregnant_share, 1, 2))
    births = np.full((n, 3), NEVER, dtype=np.int64)
    twins = np.zeros((n, 3), dtype=bool)
    preg_start = np.full(n, NEVER, dtype=np.int64)

    has_baby = state == 2
    band = rng.choice(8, size=n, p=np.array(pop.youngest_band_share) / sum(pop.youngest_band_share))
    lo = np.concatenate([[0], BAND_EDGES])[band]
    hi = np.concatenate([BAND_EDGES, [2550]])[band]
    young_age = rng.integers(lo, hi)
    births[has_baby, 1] = -young_age[has_baby]
    older = has_baby & (rng.random(n) < pop.second_child_share)
    births[older, 0] = births[older, 1] - rng.integers(730, 1826, older.sum())

    again = has_baby & (young_age >= 548) & (rng.random(n) < pop.pregnant_again_share)
    pregnant = (state == 1) | again
    due = rng.integers(1, 281, n)
    preg_start[pregnant] = due[pregnant] - 280
    # Preparing: time to conception is geometric in 30-day steps.
    preparing = state == 0
    wait = rng.exponential(30.0 / max(pop.conceive_per_30d, 1e-9), n).astype(np.int64)
    preg_start[preparing] = wait[preparing] - 14      # pregnancy is dated from the LMP
    due_all = preg_start + 280
    with_preg = preg_start < NEVER
    birth_new = due_all + np.clip(np.round(rng.normal(-3, 8, n)), -35, 14).astype(np.int64)
    births[with_preg, 2] = birth_new[with_preg]
    twin = rng.random((n, 3)) < pop.twin_rate
    twins = twin & (births < NEVER)

    # Life stage per day (int8 codes into LIFE_STAGES).
    d = np.arange(days, dtype=np.int64)[None, :]
    youngest = np.full((n, days), -NEVER, dtype=np.int64)
    for k in range(3):
        b = births[:, k : k + 1]
        youngest = np.where(b <= d, np.maximum(youngest, b), youngest)
    has_child = youngest > -NEVER
    age = np.where(has_child, d - youngest, 0)
    stage = np.where(has_child, band_of_age(age), 0)
    preg_now = (preg_start[:, None] <= d) & (d < births[:, 2:3])
    stage = np.where(preg_now, 1, stage).astype(np.int8)

    # --- identity ------------------------------------------------------------------------
    suffix = digits(scramble(gidx, 10**8, 17), 8)
    prefix = MOBILE_PREFIXES[rng.integers(0, len(MOBILE_PREFIXES), n)]
    mobile = np.char.add(prefix, suffix).astype(object)
    sur = np.array(ref.SURNAMES)[rng.choice(len(ref.SURNAMES), n,
                                           p=ref.SURNAME_WEIGHTS / ref.SURNAME_WEIGHTS.sum())]
    g = np.array(ref.GIVEN_CHARS)
    given = np.where(rng.random(n) < 0.7,
                     np.char.add(g[rng.integers(0, len(g), n)], g[rng.integers(0, len(g), n)]),
                     g[rng.integers(0, len(g), n)])
    name = np.char.add(sur, given).astype(object)
    c = cities.iloc[city_i].reset_index(drop=True)
    addr = (np.array(ref.DISTRICTS)[rng.integers(0, len(ref.DISTRICTS), n)].astype(object)
            + np.array(ref.STREETS)[rng.integers(0, len(ref.STREETS), n)]
            + rng.integers(1, 400, n).astype(str) + "号"
            + np.array(ref.COMMUNITIES)[rng.integers(0, len(ref.COMMUNITIES), n)]
            + rng.integers(1, 30, n).astype(str) + "栋"
            + rng.integers(101, 2800, n).astype(str) + "室")

    # --- membership ----------------------------------------------------------------------
    u = rng.random(n)
    registered = u < pop.registered_share
    later = ~registered & (rng.random(n) < pop.registers_later_share)
    reg_day = np.full(n, NEVER, dtype=np.int64)
    # Members joined while preparing/pregnant or after birth: up to ~3 years back.
    reg_day[registered] = -rng.integers(1, 1100, registered.sum())
    oldest_event = np.minimum(preg_start, births.min(axis=1)) - 200
    reg_day[registered] = np.maximum(reg_day[registered], np.minimum(oldest_event[registered], -1))
    reg_day[later] = rng.integers(0, max(days, 1), later.sum())
    channels = list(pop.register_channel_share)
    cw = np.array(list(pop.register_channel_share.values()))
    reg_channel = np.array(channels)[rng.choice(len(channels), n, p=cw / cw.sum())]

    # Home store: a store in the person's city (every city has at least one).
    st_city = stores["city"].to_numpy()
    order = np.argsort(st_city, kind="stable")
    sorted_city = st_city[order]
    first = np.searchsorted(sorted_city, c["city"].to_numpy(), side="left")
    last = np.searchsorted(sorted_city, c["city"].to_numpy(), side="right")
    home_store = order[first + (rng.random(n) * (last - first)).astype(np.int64)]
    ka_pref = rng.random(n) < np.vectorize(s.channels.ka_share_by_tier.get)(c["city_tier"])
    # A KA shopper uses a KA store in the city when one exists.
    st_ka = (stores["channel"].to_numpy() == "ka")[order]
    for want_ka in (True,):
        pick = ka_pref.copy()
        # scan up to 8 stores of the city for one of the wanted channel
        for k in range(8):
            pos = np.minimum(first + k, last - 1)
            ok = pick & (st_ka[pos] == want_ka)
            home_store = np.where(ok, order[pos], home_store)
            pick &= ~ok
    reg_store = np.where(reg_channel == "store", home_store, -1)

    member_id = np.char.add("M", digits(scramble(gidx, 10**9, 29), 9)).astype(object)
    card_no = digits(scramble(gidx, 10**12, 31) , 12).astype(object)

    tier = c["city_tier"].to_numpy()
    ecom_mean = np.vectorize(s.channels.ecom_share_by_tier.get)(tier)
    p_ecom = rng.beta(ecom_mean * 6, (1 - ecom_mean) * 6)
    pw = np.stack([s.channels.platform_share_by_tier[int(t)] for t in range(1, 6)])
    cum = np.cumsum(pw[tier - 1], axis=1)
    platform = (rng.random(n)[:, None] > cum / cum[:, -1:]).sum(axis=1)

    ios = rng.random(n) < np.vectorize(pop.ios_share_by_tier.get)(tier)
    persons = pd.DataFrame({
        "gidx": gidx,
        "person_id": np.char.add("PS", digits(gidx, 9)).astype(object),
        "household_id": np.char.add("HH", digits(scramble(gidx, 10**9, 5), 9)).astype(object),
        "province": c["province"], "province_short": c["province_short"],
        "city": c["city"], "city_short": c["city_short"], "city_tier": tier,
        "mother_birth": mother_birth, "mobile": mobile, "name": name, "address": addr,
        "state0": state, "reg_day": reg_day, "reg_channel": reg_channel,
        "reg_store": reg_store, "home_store": home_store, "member_id": member_id,
        "card_no": card_no, "p_ecom": p_ecom, "platform": platform,
        "formula": rng.random(n) < pop.formula_share,
        "breastfed": rng.random(n) < pop.exclusive_breastfeeding,
        "wechat": rng.random(n) < pop.wechat_share,
        "app": rng.random(n) < pop.app_share, "ios": ios,
        "dmp": rng.random(n) < pop.dmp_coverage,
        "own_series": np.where(rng.random(n) < 0.55, "ZH", "QF"),
        "comp_series": np.where(rng.random(n) < 0.5, "XF", "BA"),
    })
    persons["unionid"] = "oU" + pd.Series(tokens(rng, n, 26, B62))
    persons["openid_oa"] = "oA" + pd.Series(tokens(rng, n, 26, B62))
    persons["openid_mp"] = "oM" + pd.Series(tokens(rng, n, 26, B62))
    persons["app_user_id"] = np.char.add("U", digits(scramble(gidx, 10**10, 41), 10))
    persons["idfa"] = np.where(ios, uuid_like(rng, n, True), None)
    persons["oaid"] = np.where(~ios, uuid_like(rng, n, False), None)
    persons["android_id"] = np.where(~ios, tokens(rng, n, 16, HEX), None)
    persons["mac"] = pd.Series(tokens(rng, n, 12, HEX)).str.findall("..").str.join(":")
    for k, plat in enumerate(PLATFORMS_ECOM):
        persons[f"buyer_{plat}"] = f"{['tb', 'jd', 'pdd', 'dy'][k]}_" + pd.Series(
            tokens(rng, n, 8, HEX))
    persons["mobile_md5"] = md5_hex(mobile)
    return People(persons, births, twins, preg_start, stage)


def life_stage_intervals(people: People, start: np.datetime64) -> pd.DataFrame:
    """Run-length intervals of the daily life stage (valid_to inclusive, null if open)."""
    stage = people.stage
    n, days = stage.shape
    change = np.ones((n, days), dtype=bool)
    change[:, 1:] = stage[:, 1:] != stage[:, :-1]
    pi, di = np.nonzero(change)
    nxt = np.empty_like(di)
    nxt[:-1] = di[1:]
    same_person_next = np.zeros(len(pi), dtype=bool)
    same_person_next[:-1] = pi[1:] == pi[:-1]
    valid_to = np.where(same_person_next, nxt - 1, -1)
    out = pd.DataFrame({
        "person_id": people.persons["person_id"].to_numpy()[pi],
        "valid_from": start + di.astype("timedelta64[D]"),
        "valid_to": pd.Series(start + valid_to.astype("timedelta64[D]")).where(valid_to >= 0),
        "life_stage": np.array(LIFE_STAGES, dtype=object)[stage[pi, di]],
    })
    out["valid_from"] = out["valid_from"].dt.date
    out["valid_to"] = out["valid_to"].dt.date
    return out


def babies_table(people: People, start: np.datetime64, days: int) -> pd.DataFrame:
    """One row per child (twins are two rows with the same birth date)."""
    b = people.births
    pi, k = np.nonzero((b < NEVER) & (b < days))
    twin = people.twins[pi, k]
    pi = np.concatenate([pi, pi[twin]])
    k = np.concatenate([k, k[twin]])
    is_twin = np.concatenate([twin, np.ones(twin.sum(), dtype=bool)])
    df = pd.DataFrame({"pi": pi, "k": k, "birth": b[pi, k], "is_twin": is_twin})
    df = df.sort_values(["pi", "birth", "k"], kind="stable").reset_index(drop=True)
    df["baby_no"] = df.groupby("pi").cumcount() + 1
    return pd.DataFrame({
        "person_id": people.persons["person_id"].to_numpy()[df["pi"]],
        "baby_no": df["baby_no"].astype(np.int32),
        "birth_date": (start + df["birth"].to_numpy().astype("timedelta64[D]")).astype(
            "datetime64[D]").astype(object),
        "is_twin": df["is_twin"],
        "born_in_period": (df["birth"] >= 0).to_numpy(),
    })
