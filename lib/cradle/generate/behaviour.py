"""Purchases that follow life stage, the brand journey, and planted co-purchase rules.

Formula is bought by *consumers*: one per pregnancy (maternal formula, stage 0) and one per
formula-fed child under 6. Each consumer's purchases form a renewal process: the next
purchase is due when the cans bought run out. The loop runs over purchase rounds (a few
dozen), each round vectorised over every consumer still buying, never over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cradle.generate.people import FORMULA_EDGES, NEVER, People, formula_stage_of_age
from cradle.generate.reference import Calendar
from cradle.generate.settings import PLATFORMS_ECOM, Settings

BRAND_NONE, BRAND_OWN, BRAND_COMP = 0, 1, 2
CHANNEL_STORE = 0          # 1..4 are PLATFORMS_ECOM[channel - 1]
RULE_ORDER = ["maternal_formula", "stroller", "car_seat", "toys", "clothing"]


@dataclass
class Purchases:
    lines: pd.DataFrame       # one row per order line, with order grouping and channel
    samples: pd.DataFrame     # sample claims: pi, day, sku
    journey: pd.DataFrame     # truth: person journey intervals
    firsts: pd.DataFrame      # pi, category, first day in window (for co-purchase checks)


def _formula_consumers(rng: np.random.Generator, people: People, days: int) -> pd.DataFrame:
    p = people.persons
    n = len(p)
    formula = p["formula"].to_numpy()
    rows = []
    maternal = formula & (people.preg_start < NEVER) & (rng.random(n) < 0.6)
    start = people.preg_start + 84                       # from the second trimester
    rows.append(pd.DataFrame({"pi": np.flatnonzero(maternal), "birth": NEVER,
                              "start": start[maternal], "end": people.births[maternal, 2],
                              "kind": 0}))
    breastfed = p["breastfed"].to_numpy()
    for k in range(3):
        b = people.births[:, k]
        has = formula & (b < NEVER)
        delay = np.where(breastfed, 183, rng.integers(0, 21, n))
        rows.append(pd.DataFrame({"pi": np.flatnonzero(has), "birth": b[has],
                                  "start": (b + delay)[has], "end": (b + 2191)[has],
                                  "kind": 1}))
    cons = pd.concat(rows, ignore_index=True)
    cons = cons[(cons["end"] > 0) & (cons["start"] < days)].reset_index(drop=True)
    return cons


def noisy_formula_stage(rng: np.random.Generator, s: Settings, age: np.ndarray,
                        stage: np.ndarray, is_child: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The stage a family actually buys: near a stage change some move early, some late.

    Within ``noise.formula.transition_days`` before a change a share already buys the next
    stage; within as many days after it a share still buys the previous one. A family that
    has moved on does not go back to an earlier stage.
    """
    f = s.noise.formula
    nxt = np.searchsorted(FORMULA_EDGES, age, side="right")
    edges = np.concatenate([FORMULA_EDGES, [NEVER]])
    to_next = edges[nxt] - age
    since = age - np.concatenate([[-NEVER], FORMULA_EDGES])[nxt]
    buying = is_child & (stage >= 1) & (stage <= 4)
    early = buying & (stage < 4) & (to_next <= f.transition_days) & (rng.random(len(age)) < f.early)
    late = buying & (stage >= 2) & (since < f.transition_days) & (rng.random(len(age)) < f.late)
    out = np.where(early, stage + 1, np.where(late, stage - 1, stage))
    return np.where(buying & (last >= 1), np.maximum(out, last), out)


def other_child_formula(rng: np.random.Generator, s: Settings, people: People,
                        days: int) -> pd.DataFrame:
    """Formula a household buys for a relative's or friend's child: any stage, either brand."""
    p = people.persons
    buyers = np.flatnonzero(p["formula"].to_numpy())
    pi, day = poisson_days(rng, buyers, np.zeros(len(buyers), dtype=np.int64),
                           np.full(len(buyers), days, dtype=np.int64),
                           s.noise.formula.other_child_per_90d / 90.0)
    k = len(pi)
    return pd.DataFrame({"pi": pi, "day": day, "stage": rng.integers(1, 5, k),
                         "qty": np.ones(k, dtype=np.int64),
                         "brand": np.where(rng.random(k) < 0.5, BRAND_OWN, BRAND_COMP)})


def formula_purchases(rng: np.random.Generator, s: Settings, people: People, cal: Calendar,
                      days: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Formula purchase events, sample claims and each person's journey starting point."""
    c = s.consumption
    j = s.journey
    cons = _formula_consumers(rng, people, days)
    m = len(cons)
    pi = cons["pi"].to_numpy()
    birth = cons["birth"].to_numpy()
    kind = cons["kind"].to_numpy()
    end = np.minimum(cons["end"].to_numpy(), days)
    start = cons["start"].to_numpy()
    dpc = np.array([c.days_per_can[k] for k in range(5)])
    ongoing = start < 0
    stage0 = np.where(kind == 0, 0, np.clip(formula_stage_of_age(np.maximum(-birth, 0)), 1, 4))
    t = np.where(ongoing, rng.uniform(0, 1, m) * c.cans_mean * dpc[stage0], start).astype(float)
    brand = np.where(ongoing, np.where(rng.random(m) < j.own_share_initial, BRAND_OWN,
                                       BRAND_COMP), BRAND_NONE)
    init_brand = brand.copy()
    last_stage = np.where(ongoing, stage0, -1)
    last_day = np.full(m, -1)
    wechat = people.persons["wechat"].to_numpy()[pi]
    closed = cal.festival_closed
    fest_off = cal.festival_offset
    to_promo = cal.days_to_promo
    out: list[tuple[np.ndarray, ...]] = []
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    active = t < end
    while active.any():
        idx = np.flatnonzero(active)
        day = np.floor(t[idx]).astype(np.int64)
        k = len(idx)
        qty = rng.geometric(1.0 / c.cans_mean, k)
        # Spring Festival: stores shut and couriers stop, so families stock up before.
        shut = closed[day]
        early = day - (fest_off[day] + 2) - rng.integers(0, 5, k)
        # ... but not before the need starts (no stage-1 tins for an unborn child).
        stock = (shut & (rng.random(k) < c.festival_stockup_share) & (early > last_day[idx])
                 & (early >= start[idx]))
        day = np.where(stock, early, np.where(shut, day + (7 - fest_off[day]), day))
        qty = np.where(stock, qty + 1, qty)
        # A purchase due just before a promotion peak waits for it and buys more.
        wait = to_promo[day]
        waits = (wait > 0) & (wait <= c.promo_wait_days) & (rng.random(k) < c.promo_wait_share)
        day = np.where(waits, day + wait, day)
        qty = np.where(waits, np.ceil(qty * c.promo_qty_factor).astype(np.int64), qty)
        age = day - birth[idx]
        stage = np.where(kind[idx] == 0, 0, formula_stage_of_age(np.maximum(age, 0)))
        stage = noisy_formula_stage(rng, s, np.maximum(age, 0), stage, kind[idx] == 1,
                                    last_stage[idx])
        ok = (day < end[idx]) & (stage <= 4) & (day >= 0)
        idx, day, qty, stage = idx[ok], day[ok], qty[ok], stage[ok]
        k = len(idx)
        b = brand[idx]
        trans = (last_stage[idx] >= 0) & (stage != last_stage[idx])
        u = rng.random(k)
        can_sample = wechat[idx]
        samp_own = can_sample & (b == BRAND_OWN) & trans & (rng.random(k) < j.sample_transition)
        samp_other = can_sample & (b != BRAND_OWN) & (rng.random(k) < j.sample_competitor)
        p_switch = np.where(trans, np.where(samp_own, j.switch_with_sample,
                                            j.switch_at_transition), j.base_switch)
        p_win = np.where(samp_other, j.sample_conversion,
                         np.where(trans, j.win_at_transition, j.base_switch))
        p_first = np.where(samp_other, j.sample_conversion, j.new_consumer_own)
        new_brand = np.select(
            [b == BRAND_OWN, b == BRAND_COMP],
            [np.where(u < p_switch, BRAND_COMP, BRAND_OWN),
             np.where(u < p_win, BRAND_OWN, BRAND_COMP)],
            np.where(u < p_first, BRAND_OWN, BRAND_COMP))
        sampled = samp_own | samp_other
        sday = day - rng.integers(2, 11, k)
        keep_s = sampled & (sday >= 0)
        samples.append((pi[idx[keep_s]], sday[keep_s], stage[keep_s]))
        brand[idx] = new_brand
        out.append((idx, day, stage, qty, new_brand))
        last_stage[idx] = stage
        last_day[idx] = day
        t[idx] = day + qty * dpc[stage] * rng.lognormal(-0.02, 0.2, k)
        active[:] = False
        active[idx] = t[idx] < end[idx]
    empty = [np.array([], dtype=np.int64)] * 5
    cols = [np.concatenate(x) for x in zip(*out, strict=True)] if out else empty
    ci, day, stage, qty, br = cols
    buys = pd.DataFrame({"pi": pi[ci], "day": day, "stage": stage, "qty": qty, "brand": br})
    sp = [np.concatenate(x) for x in zip(*samples, strict=True)] if samples else [
        np.array([], dtype=np.int64)] * 3
    claims = pd.DataFrame({"pi": sp[0], "day": sp[1], "stage": sp[2]})
    # Where each person's journey stands at day 0 (ongoing consumers only).
    n = len(people.persons)
    loyal = rng.random(n) < j.loyal_share_initial
    own0 = np.zeros(n, dtype=bool)
    comp0 = np.zeros(n, dtype=bool)
    np.logical_or.at(own0, pi[ongoing], init_brand[ongoing] == BRAND_OWN)
    np.logical_or.at(comp0, pi[ongoing], init_brand[ongoing] == BRAND_COMP)
    start_state = pd.DataFrame({"prior_own": np.where(own0, np.where(loyal, 2, 1), 0),
                                "last_brand": np.where(own0, BRAND_OWN,
                                                       np.where(comp0, BRAND_COMP, BRAND_NONE))})
    return buys, claims, start_state


def renewal(rng: np.random.Generator, owner: np.ndarray, start: np.ndarray, end: np.ndarray,
            mean: float, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases every ~``mean`` days between ``start`` and ``end`` (exclusive)."""
    end = np.minimum(end, days)
    t = np.where(start < 0, rng.uniform(0, mean, len(owner)), start).astype(float)
    os_, ds = [], []
    active = t < end
    while active.any():
        idx = np.flatnonzero(active)
        os_.append(owner[idx])
        ds.append(np.floor(t[idx]).astype(np.int64))
        t[idx] += mean * rng.lognormal(-0.045, 0.3, len(idx))
        active[:] = False
        active[idx] = t[idx] < end[idx]
    if not os_:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    return np.concatenate(os_), np.concatenate(ds)


def poisson_days(rng: np.random.Generator, owner: np.ndarray, start: np.ndarray,
                 end: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson process of ``rate`` per day on [start, end) per owner."""
    length = np.maximum(end - start, 0)
    count = rng.poisson(rate * length)
    o = np.repeat(owner, count)
    d = np.repeat(start, count) + np.floor(rng.random(count.sum()) * np.repeat(length, count))
    return o, d.astype(np.int64)


def _around_births(people: People, lo: int, hi: int, days: int) -> tuple[np.ndarray, ...]:
    """(pi, first day, end day) of windows [birth+lo, birth+hi) within the period."""
    ps, ss, es = [], [], []
    for k in range(3):
        b = people.births[:, k]
        has = b < NEVER
        s_, e_ = np.maximum(b + lo, 0), np.minimum(b + hi, days)
        ok = has & (s_ < e_)
        ps.append(np.flatnonzero(ok))
        ss.append(s_[ok])
        es.append(e_[ok])
    return np.concatenate(ps), np.concatenate(ss), np.concatenate(es)


def other_purchases(rng: np.random.Generator, s: Settings, people: People, days: int,
                    maternal_first: pd.Series) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Non-formula categories, with the planted co-purchase rules applied in order."""
    c = s.consumption
    n = len(people.persons)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    takes = rng.random(n) < c.diapers_share
    pi, st, en = _around_births(people, 0, 900, days)
    keep = takes[pi]
    out["diapers"] = renewal(rng, pi[keep], np.where(st[keep] > 0, st[keep], -1), en[keep],
                             c.diapers_interval, days)
    takes = rng.random(n) < c.complementary_share
    pi, st, en = _around_births(people, 183, 1095, days)
    keep = takes[pi]
    # Ongoing buyers (window already open at day 0) start at a random phase.
    pre = people.births[pi, 0] < NEVER
    del pre
    st0 = np.where(st > 0, st, -1)
    out["complementary_food"] = renewal(rng, pi[keep], st0[keep], en[keep],
                                        c.complementary_interval, days)
    firsts: dict[str, pd.Series] = {"maternal_formula": maternal_first}

    def base(cat: str) -> tuple[np.ndarray, np.ndarray]:
        if cat == "stroller":
            pi, st, en = _around_births(people, -60, 120, days)
            pi, idx = np.unique(pi, return_index=True)
            st, en = st[idx], en[idx]
            ok = rng.random(len(pi)) < c.stroller_share * (en - st) / 180.0
            day = st + np.floor(rng.random(len(pi)) * (en - st)).astype(np.int64)
            return pi[ok], day[ok]
        if cat == "car_seat":
            pi, st, en = _around_births(people, 0, 1461, days)
            pi, idx = np.unique(pi, return_index=True)
            st, en = st[idx], en[idx]
            ok = rng.random(len(pi)) < c.base_car_seat_share * (en - st) / 365.0
            day = st + np.floor(rng.random(len(pi)) * (en - st)).astype(np.int64)
            return pi[ok], day[ok]
        if cat == "toys":
            takes = rng.random(n) < c.toys_share
            pi, st, en = _around_births(people, 180, 2191, days)
            keep = takes[pi]
            return poisson_days(rng, pi[keep], st[keep], en[keep], c.toys_per_90d / 90.0)
        if cat == "clothing":
            pi, st, en = _around_births(people, 0, 2191, days)
            return poisson_days(rng, pi, st, en, c.base_clothing_per_90d / 90.0)
        raise ValueError(cat)

    for cat in RULE_ORDER[1:]:
        rules = [r for r in s.copurchase if r.consequent == cat]
        covered = np.zeros(n, dtype=bool)
        os_, ds = [], []
        for r in rules:
            first = firsts[r.antecedent]
            a_pi = first.index.to_numpy()
            a_day = first.to_numpy()
            covered[a_pi] = True
            hit = rng.random(len(a_pi)) < r.confidence
            lag = rng.integers(1, r.window_days + 1, len(a_pi))
            d = a_day + lag
            ok = hit & (d < days)
            os_.append(a_pi[ok])
            ds.append(d[ok])
        bo, bd = base(cat)
        # Antecedent buyers get the consequent only through the rule, so the confidence
        # measured on the orders is the planted one.
        ok = ~covered[bo]
        os_.append(bo[ok])
        ds.append(bd[ok])
        o, d = np.concatenate(os_).astype(np.int64), np.concatenate(ds).astype(np.int64)
        out[cat] = (o, d)
        if len(o):
            firsts[cat] = pd.Series(d).groupby(o).min()
        else:
            firsts[cat] = pd.Series([], dtype=np.int64)
    return out


def _tod(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Seconds after midnight: stores 9-21h peaking after work, e-commerce peaking at 21h."""
    k = len(channel)
    store_h = rng.normal(np.where(rng.random(k) < 0.5, 11.0, 18.0), 1.8)
    store_h = np.where((store_h < 9) | (store_h > 21), rng.uniform(9, 21, k), store_h)
    ecom_h = np.where(rng.random(k) < 0.6, rng.normal(21.0, 1.5, k), rng.uniform(7, 23.9, k))
    h = np.where(channel == CHANNEL_STORE, store_h, np.clip(ecom_h, 0, 23.99))
    return (h * 3600).astype(np.int64)


def assemble(rng: np.random.Generator, s: Settings, people: People, cal: Calendar, days: int,
             catalogue: pd.DataFrame) -> Purchases:
    """All purchases of a block as order lines, plus journey truth and sample claims."""
    p = people.persons
    buys, claims, start_state = formula_purchases(rng, s, people, cal, days)
    buys = pd.concat([buys, other_child_formula(rng, s, people, days)], ignore_index=True)
    own_series = p["own_series"].to_numpy()[buys["pi"]]
    comp_series = p["comp_series"].to_numpy()[buys["pi"]]
    series = np.where(buys["brand"] == BRAND_OWN, own_series, comp_series)
    size = np.where(buys["stage"] == 0, "400", "800")
    sku = (pd.Series(series) + buys["stage"].astype(str).to_numpy() + "-" + size).to_numpy()
    launched = (buys["day"].to_numpy() >= s.products_change_day) & (sku == "ZH3-800")
    sku = np.where(launched & (rng.random(len(sku)) < 0.3), "ZH3-800A", sku)
    mat = buys[buys["stage"] == 0]
    maternal_first = mat["day"].groupby(mat["pi"]).min()
    frames = [pd.DataFrame({"pi": buys["pi"], "day": buys["day"], "sku": sku,
                            "qty": buys["qty"], "own": buys["brand"] == BRAND_OWN})]
    others = other_purchases(rng, s, people, days, maternal_first)
    cat_skus = catalogue.groupby("category")["sku"].apply(list).to_dict()
    for cat, (o, d) in others.items():
        if cat == "diapers":
            # Size follows the youngest child's age.
            age = d - people.births[o].max(axis=1, where=people.births[o] <= d[:, None],
                                               initial=-NEVER)
            sk = np.where(age < 120, "DP-NB", np.where(age < 540, "DP-M", "DP-XL"))
            q = rng.integers(1, 4, len(o))
        else:
            opts = np.array([x for x in cat_skus[cat] if not x.endswith("A")])
            sk = opts[rng.integers(0, len(opts), len(o))]
            q = np.where(np.isin(cat, ["stroller", "car_seat"]), 1, rng.integers(1, 3, len(o)))
        frames.append(pd.DataFrame({"pi": o, "day": d, "sku": sk, "qty": q, "own": True}))
    # Samples picked up in the home store are zero-price POS lines.
    pick = rng.random(len(claims)) < s.journey.sample_pickup_in_store
    cl = claims[pick]
    pick_day = cl["day"].to_numpy() + rng.integers(0, 6, len(cl))
    ok = pick_day < days
    frames.append(pd.DataFrame({
        "pi": cl["pi"].to_numpy()[ok], "day": pick_day[ok],
        "sku": ("SMP-" + pd.Series(own_of(p, cl["pi"].to_numpy()[ok]))
                + cl["stage"].astype(str).to_numpy()[ok]).to_numpy(),
        "qty": 1, "own": True, "is_sample": True}))
    lines = pd.concat(frames, ignore_index=True)
    lines["is_sample"] = lines["is_sample"].astype("boolean").fillna(False).astype(bool)
    # Spring Festival shutdown: non-formula buys move before it, or after it.
    day = lines["day"].to_numpy()
    shut = cal.festival_closed[np.clip(day, 0, None)] & (day >= 0)
    off = cal.festival_offset[np.clip(day, 0, None)]
    early = day - (off + 2) - rng.integers(0, 5, len(day))
    lines["day"] = np.where(shut & (early >= 0) & (rng.random(len(day)) < 0.6), early,
                            np.where(shut, day + (7 - off), day))
    lines = lines[(lines["day"] >= 0) & (lines["day"] < days)]

    # Channel: competitor formula and samples only in stores; otherwise by person propensity.
    k = len(lines)
    pi = lines["pi"].to_numpy()
    ecom = (rng.random(k) < p["p_ecom"].to_numpy()[pi]) & lines["own"].to_numpy() & ~lines[
        "is_sample"].to_numpy()
    plat = p["platform"].to_numpy()[pi]
    # Ecom shoppers mostly use their favourite platform, sometimes another.
    plat = np.where(rng.random(k) < 0.85, plat, rng.integers(0, 4, k))
    lines["channel"] = np.where(ecom, plat + 1, CHANNEL_STORE)
    lines = lines.sort_values(["pi", "day", "channel", "sku"], kind="stable").reset_index(drop=True)
    # Same person, day and channel: one order (a basket).
    key = lines[["pi", "day", "channel"]].to_numpy()
    new = np.ones(len(lines), dtype=bool)
    new[1:] = (key[1:] != key[:-1]).any(axis=1)
    lines["order_seq"] = np.cumsum(new) - 1
    lines["line_no"] = lines.groupby("order_seq").cumcount() + 1
    n_orders = int(new.sum())
    tod = _tod(rng, lines["channel"].to_numpy()[new])
    lines["ts"] = lines["day"].to_numpy() * 86400 + tod[lines["order_seq"].to_numpy()]
    price = catalogue.set_index("sku")["list_price"]
    lines["unit_price"] = price.reindex(lines["sku"]).to_numpy()
    day = lines["day"].to_numpy()
    promo = cal.days_to_promo[day] <= 2
    is_ecom = lines["channel"].to_numpy() != CHANNEL_STORE
    gross = lines["qty"].to_numpy() * lines["unit_price"].to_numpy()
    disc = np.where(is_ecom & promo, 0.12 * gross, 0.0)
    coupon = (~is_ecom) & (rng.random(len(lines)) < 0.1) & (gross > 100)
    disc = np.round(np.where(coupon, disc + 10.0, disc), 2)
    lines["discount"] = disc
    lines["amount"] = np.round(gross - disc, 2)
    lines["store_idx"] = p["home_store"].to_numpy()[lines["pi"].to_numpy()]
    del n_orders

    journey = journey_truth(people, buys, claims, start_state, cal)
    firsts = []
    cat_of = catalogue.set_index("sku")["category"]
    lc = cat_of.reindex(lines["sku"]).to_numpy()
    ff = pd.DataFrame({"pi": lines["pi"], "category": lc, "day": lines["day"]})
    firsts = ff.groupby(["pi", "category"], as_index=False)["day"].min()
    return Purchases(lines, claims.assign(
        sku=("SMP-" + pd.Series(own_of(p, claims["pi"].to_numpy()))
             + claims["stage"].astype(str).to_numpy()).to_numpy()), journey, firsts)


def own_of(p: pd.DataFrame, pi: np.ndarray) -> np.ndarray:
    return p["own_series"].to_numpy()[pi]


def journey_truth(people: People, buys: pd.DataFrame, claims: pd.DataFrame,
                  start_state: pd.DataFrame, cal: Calendar) -> pd.DataFrame:
    """Journey intervals per person: education -> trial -> new_customer -> loyal, or lost."""
    n = len(people.persons)
    ev = pd.concat([
        pd.DataFrame({"pi": np.arange(n), "day": 0, "kind": 0, "brand": BRAND_NONE}),
        pd.DataFrame({"pi": claims["pi"], "day": claims["day"], "kind": 1,
                      "brand": BRAND_NONE}),
        pd.DataFrame({"pi": buys["pi"], "day": buys["day"], "kind": 2, "brand": buys["brand"]}),
    ], ignore_index=True).sort_values(["pi", "day", "kind"], kind="stable")
    pi = ev["pi"].to_numpy()
    own_buy = ((ev["kind"] == 2) & (ev["brand"] == BRAND_OWN)).to_numpy().astype(np.int64)
    trial = (ev["kind"] == 1).to_numpy().astype(np.int64)
    own_cum = ev.assign(x=own_buy).groupby("pi")["x"].cumsum().to_numpy()
    own_cum = own_cum + start_state["prior_own"].to_numpy()[pi]
    trial_cum = ev.assign(x=trial).groupby("pi")["x"].cumsum().to_numpy()
    brand = ev["brand"].to_numpy().astype(float)
    brand[(ev["kind"] != 2).to_numpy()] = np.nan
    first = (ev["kind"] == 0).to_numpy()
    brand[first] = start_state["last_brand"].to_numpy()[pi[first]]
    brand = pd.Series(brand).groupby(pi).ffill().to_numpy().astype(np.int64)
    stage = np.select(
        [(brand == BRAND_COMP) & (own_cum > 0), own_cum >= 2, own_cum == 1, trial_cum > 0],
        ["lost", "loyal", "new_customer", "trial"], "education")
    df = pd.DataFrame({"pi": pi, "day": ev["day"].to_numpy(), "stage": stage,
                       "brand": np.array([None, "own", "competitor"], dtype=object)[brand]})
    df = df.groupby(["pi", "day"], as_index=False, sort=True).last()
    prev_same = (df["pi"].eq(df["pi"].shift()) & df["stage"].eq(df["stage"].shift())
                 & df["brand"].fillna("-").eq(df["brand"].fillna("-").shift()))
    df = df[~prev_same].reset_index(drop=True)
    nxt = df["day"].shift(-1)
    same = df["pi"].eq(df["pi"].shift(-1))
    start = np.datetime64(cal.start, "D")
    valid_to = np.where(same, nxt - 1, -1).astype(np.int64)
    out = pd.DataFrame({
        "person_id": people.persons["person_id"].to_numpy()[df["pi"]],
        "valid_from": (start + df["day"].to_numpy().astype("timedelta64[D]")).astype(object),
        "valid_to": pd.Series((start + valid_to.astype("timedelta64[D]")).astype(object)).where(
            valid_to >= 0),
        "journey_stage": df["stage"].to_numpy(),
        "brand": df["brand"].to_numpy(),
    })
    return out


__all__ = ["PLATFORMS_ECOM", "Purchases", "assemble"]
