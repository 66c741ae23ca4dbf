"""Touchpoint records other than orders: CRM rows, WeChat, app, ads, hospital sign-ups,
Wi-Fi probes, DMP tags and consent. Each builder returns one frame per source with the
contract's fields (as strings, or None for empty) plus private ``_``-prefixed columns:
``_pi`` (block-local person index, -1 for none), ``_ts`` (event time, seconds after day 0
midnight), ``_deliver`` (delivery day), ``_part`` (file split, e.g. platform).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cradle.generate import reference as ref
from cradle.generate.people import (
    HEX,
    NEVER,
    People,
    band_of_age,
    digits,
    md5_hex,
    scramble,
    tokens,
    uuid_like,
)
from cradle.generate.reference import Calendar
from cradle.generate.settings import LIFE_STAGES, PLATFORMS_AD, PURPOSES, Settings

ALL_ZERO = "00000000-0000-0000-0000-000000000000"
TOPIC_BY_STAGE = np.array(["pregnancy_prep", "pregnancy_nutrition", "newborn_care", "weaning",
                           "toddler_nutrition", "toddler_nutrition", "early_education",
                           "early_education", "early_education", "school_readiness"],
                          dtype=object)
# Articles about no stage: what a brand's feed carries beside its parenting content.
GENERIC_TOPICS = np.array(["brand_story", "recipes", "promotion", "family_health"], dtype=object)
# Mobile prefixes no generated mother has (people.MOBILE_PREFIXES): partners' phones
# can never collide with a member's.
PARTNER_PREFIXES = np.array(["173", "176", "178"])
TEST_NAMES = np.array(["测试", "test", "测试账号", "TEST01", "测试001"], dtype=object)


def test_mobiles(rng: np.random.Generator, k: int) -> np.ndarray:
    """Mobiles typed on ``k`` test accounts, made up anew for every run so that no
    configuration can list them in advance. Staff reuse a few numbers (about one per three
    accounts): a repeated digit (13666666666), a round number (13900000000), a run
    (15912345678), or the phone of the staff member who made the account."""
    if k == 0:
        return np.array([], dtype=object)
    m = max(1, k // 3)
    prefix = np.array(["130", "133", "135", "136", "138", "139", "150", "158", "186", "188"])
    p3 = prefix[rng.integers(0, len(prefix), m)]
    d = rng.integers(0, 10, m).astype(str)
    rep = np.array(["1" + x[1] + y * 9 for x, y in zip(p3, d, strict=True)], dtype=object)
    rnd = np.array([x + "00000000" for x in p3], dtype=object)
    run = np.array([x + "12345678" for x in p3], dtype=object)
    staff = np.array([x + f"{v:08d}" for x, v in zip(p3, rng.integers(0, 10**8, m), strict=True)],
                     dtype=object)
    kind = rng.integers(0, 4, m)
    pool = np.select([kind == 0, kind == 1, kind == 2], [rep, rnd, run], staff)
    return pool[rng.integers(0, m, k)]


def ts_text(start: np.datetime64, ts: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' for seconds after the start date's midnight."""
    if len(ts) == 0:
        return np.array([], dtype=object)
    t = np.datetime64(start, "s") + np.asarray(ts).astype("timedelta64[s]")
    return np.char.replace(t.astype(str), "T", " ").astype(object)


def date_text(start: np.datetime64, day: np.ndarray) -> np.ndarray:
    if len(day) == 0:
        return np.array([], dtype=object)
    return (np.datetime64(start, "D") + day.astype("timedelta64[D]")).astype(str).astype(object)


def ids(prefix: str, block: int, n: int, salt: int, width: int = 12) -> np.ndarray:
    """Unique, random-looking ids for ``n`` records of one block (< 10**7 per block)."""
    g = block * 10**7 + np.arange(n, dtype=np.int64)
    return np.char.add(prefix, digits(scramble(g, 10**width, salt), width)).astype(object)


def stage_at(people: People, pi: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Life-stage code of persons ``pi`` on ``day`` (clipped into the simulated days)."""
    d = np.clip(day, 0, people.stage.shape[1] - 1)
    return people.stage[pi, d]


def older_child_stage(people: People, pi: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Life-stage code of an older sibling of the youngest child on ``day``, -1 if none.

    While pregnant the youngest born child is the older one; otherwise the second-latest
    birth on or before ``day``.
    """
    b = people.births[pi]
    born = np.sort(np.where(b <= day[:, None], b, -NEVER), axis=1)
    pregnant = stage_at(people, pi, day) == 1
    older = np.where(pregnant, born[:, -1], born[:, -2])
    has = older > -NEVER
    return np.where(has, band_of_age(np.where(has, day - older, 0)), -1)


def article_topics(rng: np.random.Generator, s: Settings, people: People, pi: np.ndarray,
                   day: np.ndarray) -> np.ndarray:
    """The topic of each article view: mostly the youngest child's stage, not always.

    Shares (``noise.articles``): the current stage, the next one (reading ahead), an older
    sibling's stage (where there is one; otherwise the current), or generic content.
    """
    a = s.noise.articles
    stage = stage_at(people, pi, day).astype(np.int64)
    sib = older_child_stage(people, pi, day)
    u = rng.random(len(pi))
    code = np.where(u < a.current + a.next, np.where(u < a.current, stage, np.minimum(stage + 1, 9)),
                    np.where((u < a.current + a.next + a.sibling) & (sib >= 0), sib, stage))
    generic = u >= a.current + a.next + a.sibling
    return np.where(generic, GENERIC_TOPICS[rng.integers(0, len(GENERIC_TOPICS), len(pi))],
                    TOPIC_BY_STAGE[code])


def crm_rows(rng: np.random.Generator, s: Settings, people: People, block: int, days: int,
             stores: pd.DataFrame, start: np.datetime64) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CRM registrations and updates; also the member table (truth) incl. re-registrations."""
    p = people.persons
    n = len(p)
    reg = p["reg_day"].to_numpy()
    births = people.births
    pending_due = np.where(people.preg_start < NEVER, people.preg_start + 280, NEVER)
    parts = []
    # Initial extract on day 0: every member registered before the period, as last updated.
    old = np.flatnonzero(reg < 0)
    upd = reg[old] + np.floor(rng.random(len(old)) * (-reg[old])).astype(np.int64)
    parts.append(pd.DataFrame({"pi": old, "day": upd, "reg": reg[old], "deliver": 0,
                               "kind": "initial"}))
    new = np.flatnonzero((reg >= 0) & (reg < days))
    parts.append(pd.DataFrame({"pi": new, "day": reg[new], "reg": reg[new],
                               "deliver": reg[new], "kind": "register"}))
    # Birth updates by members who tell the brand (some never do).
    for k in range(3):
        b = births[:, k]
        who = np.flatnonzero((b >= 0) & (b < days) & (reg <= b) & (rng.random(n) < 0.6))
        d = b[who] + rng.integers(0, 31, len(who))
        ok = d < days
        parts.append(pd.DataFrame({"pi": who[ok], "day": d[ok], "reg": reg[who[ok]],
                                   "deliver": d[ok], "kind": "birth"}))
    # Pregnancy announced (due date set) around the end of the first trimester.
    d = people.preg_start + 70 + rng.integers(0, 30, n)
    who = np.flatnonzero((d >= 0) & (d < days) & (reg <= d) & (rng.random(n) < 0.5))
    parts.append(pd.DataFrame({"pi": who, "day": d[who], "reg": reg[who], "deliver": d[who],
                               "kind": "pregnancy"}))
    rows = pd.concat(parts, ignore_index=True)
    pi = rows["pi"].to_numpy()
    day = rows["day"].to_numpy()
    tod = rng.integers(8 * 3600, 22 * 3600, len(rows))
    reg_tod = (p["gidx"].to_numpy() * 7919 % (12 * 3600)) + 9 * 3600
    # The latest birth on or before the row's day; due date of a pregnancy known by then.
    youngest = np.max(np.where(births[pi] <= day[:, None], births[pi], -NEVER), axis=1)
    due = pending_due[pi]
    show_due = (people.preg_start[pi] + 70 <= day) & (due < NEVER)
    gender = np.where((p["gidx"].to_numpy() % 2) == 0, "F", "M")[pi]
    stores_id = stores["store_id"].to_numpy()
    reg_store = p["reg_store"].to_numpy()[pi]
    unionid_rate = p["reg_channel"].map(s.population.crm_unionid_by_channel).fillna(0.0)
    crm_unionid = (p["wechat"].to_numpy() & (rng.random(n) < unionid_rate.to_numpy())
                   & p["unionid"].notna().to_numpy())
    out = pd.DataFrame({
        "member_id": p["member_id"].to_numpy()[pi],
        "mobile": p["mobile"].to_numpy()[pi],
        "name": p["name"].to_numpy()[pi],
        "mother_birth_date": np.where(rng.random(len(rows)) < 0.85,
                                      date_text(start, p["mother_birth"].to_numpy()[pi]), None),
        "baby_birth_date": np.where(youngest > -NEVER, date_text(start, np.maximum(
            youngest, -10**5)), None),
        "due_date": np.where(show_due, date_text(start, np.minimum(due, 10**5)), None),
        "province": np.where(rng.random(len(rows)) < 0.3, p["province_short"].to_numpy()[pi],
                             p["province"].to_numpy()[pi]),
        "city": np.where(rng.random(len(rows)) < 0.3, p["city_short"].to_numpy()[pi],
                         p["city"].to_numpy()[pi]),
        "address": p["address"].to_numpy()[pi],
        "register_store_id": np.where(reg_store >= 0, stores_id[np.maximum(reg_store, 0)], None),
        "register_channel": p["reg_channel"].to_numpy()[pi],
        "member_card_no": p["card_no"].to_numpy()[pi],
        "unionid": np.where(crm_unionid[pi], p["unionid"].to_numpy()[pi], None),
        "registered_at": ts_text(start, rows["reg"].to_numpy() * 86400 + reg_tod[pi]),
        "updated_at": ts_text(start, np.where(rows["kind"].isin(["initial", "register"]),
                                              np.maximum(day, rows["reg"].to_numpy()) * 86400
                                              + reg_tod[pi], day * 86400 + tod)),
        "baby_gender": np.where(youngest > -NEVER, gender, None),
        "_pi": pi, "_ts": np.where(rows["kind"].isin(["initial", "register"]),
                                  np.maximum(day, rows["reg"].to_numpy()) * 86400 + reg_tod[pi],
                                  day * 86400 + tod),
        "_deliver": rows["deliver"].to_numpy(), "_part": "",
        "_initial": (rows["kind"] == "initial").to_numpy(),
    })
    members = pd.DataFrame({"pi": np.flatnonzero(reg < days),
                            "member_id": p["member_id"].to_numpy()[reg < days],
                            "card_no": p["card_no"].to_numpy()[reg < days],
                            "reg_day": reg[reg < days], "is_primary": True})
    # Re-registration: the same person joins again (new member_id and card), e.g. at
    # another store that could not find her record.
    again = np.flatnonzero((reg < days) & (rng.random(n) < s.dirt.re_registration))
    lo = np.maximum(reg[again], 0)
    d2 = lo + np.floor(rng.random(len(again)) * (days - lo)).astype(np.int64)
    # Half of them re-registered before the period: they appear in the initial extract.
    past = rng.random(len(again)) < 0.5
    d2 = np.where(past & (reg[again] < -1), reg[again] + np.floor(
        rng.random(len(again)) * -reg[again]).astype(np.int64), d2)
    gi = p["gidx"].to_numpy()[again]
    mid2 = np.char.add("M", digits(scramble(gi + 10**8, 10**9, 29), 9)).astype(object)
    card2 = digits(scramble(gi + 10**8, 10**12, 31), 12).astype(object)
    dup = out.iloc[:0].copy()
    if len(again):
        base = pd.DataFrame({c: out[c].iloc[:1].repeat(len(again)).to_numpy() for c in out.columns})
        base["member_id"] = mid2
        base["member_card_no"] = card2
        base["mobile"] = p["mobile"].to_numpy()[again]
        base["name"] = p["name"].to_numpy()[again]
        base["address"] = p["address"].to_numpy()[again]
        base["province"] = p["province"].to_numpy()[again]
        base["city"] = p["city"].to_numpy()[again]
        base["mother_birth_date"] = None
        yb = np.max(np.where(births[again] <= d2[:, None], births[again], -NEVER), axis=1)
        base["baby_birth_date"] = np.where(yb > -NEVER, date_text(start, np.maximum(yb, -10**5)),
                                           None)
        base["due_date"] = None
        base["baby_gender"] = None
        ch = np.array(["store", "wechat", "app"], dtype=object)[rng.integers(0, 3, len(again))]
        base["register_channel"] = ch
        # Only a re-registration through the mini-program carries her (same) unionid.
        base["unionid"] = np.where((ch == "wechat") & p["wechat"].to_numpy()[again],
                                   p["unionid"].to_numpy()[again], None)
        st = p["home_store"].to_numpy()[again]
        base["register_store_id"] = np.where(ch == "store", stores_id[st], None)
        t2 = d2 * 86400 + rng.integers(9 * 3600, 21 * 3600, len(again))
        base["registered_at"] = ts_text(start, t2)
        base["updated_at"] = ts_text(start, t2)
        base["_pi"] = again
        base["_ts"] = t2
        base["_deliver"] = np.maximum(d2, 0)
        base["_initial"] = d2 < 0
        base["_rereg"] = True
        dup = base
        members = pd.concat([members, pd.DataFrame({
            "pi": again, "member_id": mid2, "card_no": card2, "reg_day": d2,
            "is_primary": False})], ignore_index=True)
    out["_rereg"] = False
    # Test accounts typed in by store staff and developers.
    k = rng.binomial(n, s.dirt.test_account)
    tst = pd.DataFrame({c: [None] * k for c in out.columns})
    if k:
        gi = block * 1000 + np.arange(k)
        tst["member_id"] = np.char.add("M", digits(scramble(gi + 9 * 10**8, 10**9, 29), 9))
        tst["member_card_no"] = digits(scramble(gi + 9 * 10**8, 10**12, 31), 12)
        tst["mobile"] = test_mobiles(rng, k)
        tst["name"] = TEST_NAMES[rng.integers(0, len(TEST_NAMES), k)]
        tst["register_channel"] = "store"
        tst["register_store_id"] = stores_id[rng.integers(0, len(stores_id), k)]
        td = rng.integers(0, days, k)
        t = td * 86400 + rng.integers(9 * 3600, 21 * 3600, k)
        tst["registered_at"] = ts_text(start, t)
        tst["updated_at"] = tst["registered_at"]
        tst["province"] = "广东省"
        tst["city"] = "深圳市"
        tst["address"] = "测试地址"
        tst["_pi"] = -1
        tst["_ts"] = t
        tst["_deliver"] = td
        tst["_part"] = ""
        tst["_initial"] = False
        tst["_rereg"] = False
        tst["_test"] = True
    out["_test"] = False
    dup["_test"] = False
    allrows = pd.concat([out, dup, tst], ignore_index=True)
    allrows["_test"] = allrows["_test"].astype(bool)
    allrows["_rereg"] = allrows["_rereg"].astype(bool)
    allrows["_initial"] = allrows["_initial"].astype(bool)
    allrows["_pi"] = allrows["_pi"].astype(np.int64)
    allrows["_ts"] = allrows["_ts"].astype(np.int64)
    allrows["_deliver"] = allrows["_deliver"].astype(np.int64)
    allrows["_part"] = ""
    return allrows, members


def wechat_events(rng: np.random.Generator, s: Settings, people: People, block: int, days: int,
                  cal: Calendar, claims: pd.DataFrame, start: np.datetime64) -> pd.DataFrame:
    p = people.persons
    n = len(p)
    wx = np.flatnonzero(p["wechat"].to_numpy())
    frames = []
    o = np.repeat(wx, rng.poisson(days / 8.0, len(wx)))
    d = rng.integers(0, days, len(o))
    frames.append(pd.DataFrame({"pi": o, "day": d, "event": "page_view"}))
    for peak in np.flatnonzero(cal.promo_day[:days]):
        who = wx[rng.random(len(wx)) < 0.2]
        dd = peak - rng.integers(0, 6, len(who))
        ok = dd >= 0
        frames.append(pd.DataFrame({"pi": who[ok], "day": dd[ok], "event": "coupon_claim"}))
    frames.append(pd.DataFrame({"pi": claims["pi"], "day": claims["day"],
                                "event": "sample_claim", "sku": claims["sku"]}))
    reg = p["reg_day"].to_numpy()
    # Phone authorisation is a tap per user that the brand pays for per call: members who
    # registered in the mini-program did it at registration; others rarely do.
    channel = np.where(reg < days, p["reg_channel"].to_numpy(), "none")
    bind_rate = pd.Series(channel).map(s.population.wechat_bind_mobile).fillna(0.0).to_numpy()
    binders = wx[rng.random(len(wx)) < bind_rate[wx]]
    frames.append(pd.DataFrame({"pi": binders, "day": rng.integers(0, days, len(binders)),
                                "event": "bind_mobile"}))
    joined = wx[(reg[wx] >= 0) & (reg[wx] < days) & (channel[wx] == "wechat")]
    frames.append(pd.DataFrame({"pi": joined, "day": reg[joined], "event": "bind_mobile"}))
    newf = np.flatnonzero(p["wechat"].to_numpy() & (((reg >= 0) & (reg < days)
                                                    & (p["reg_channel"] == "wechat").to_numpy())
                                                   | (rng.random(n) < 0.02)))
    frames.append(pd.DataFrame({"pi": newf, "day": np.where((reg[newf] >= 0) & (reg[newf] < days),
                                                             reg[newf],
                                                             rng.integers(0, days, len(newf))),
                                "event": "subscribe"}))
    unsub = wx[rng.random(len(wx)) < 0.01 * days / 30.0]
    frames.append(pd.DataFrame({"pi": unsub, "day": rng.integers(0, days, len(unsub)),
                                "event": "unsubscribe"}))
    ev = pd.concat(frames, ignore_index=True)
    ev = ev[(ev["day"] >= 0) & (ev["day"] < days)].reset_index(drop=True)
    pi = ev["pi"].to_numpy()
    k = len(ev)
    event = ev["event"].to_numpy()
    in_oa = np.isin(event, ["subscribe", "unsubscribe"]) | ((event == "page_view")
                                                             & (rng.random(k) < 0.3))
    topic = article_topics(rng, s, people, pi, ev["day"].to_numpy())
    sku = ev["sku"].to_numpy() if "sku" in ev else np.full(k, None)
    page = np.select([event == "page_view", event == "coupon_claim", event == "sample_claim"],
                     ["pages/article/" + topic, np.full(k, "pages/coupon/promo", dtype=object),
                      "pages/sample/" + pd.Series(sku).fillna("").to_numpy()], None)
    ts = ev["day"].to_numpy() * 86400 + rng.integers(7 * 3600, 24 * 3600, k)
    u_phone = rng.random(k)
    return pd.DataFrame({
        "event_id": ids("WX", block, k, 101),
        "appid": np.where(in_oa, "wx8c3f0a2d5e7b1c94", "wx51d9e6b3a07f2c18").astype(object),
        "openid": np.where(in_oa, p["openid_oa"].to_numpy()[pi], p["openid_mp"].to_numpy()[pi]),
        "unionid": np.where(rng.random(k) < s_unionid_missing(people), None,
                            p["unionid"].to_numpy()[pi]),
        "event": event.astype(object), "page": page,
        # Binding asks for WeChat's phone-number authorisation; a sample claim needs a phone
        # to ship to; a coupon claim needs none.
        "mobile": np.where((event == "bind_mobile")
                           | ((event == "sample_claim") & (u_phone < s.population.sample_claim_phone))
                           | ((event == "coupon_claim") & (u_phone < s.population.coupon_claim_phone)),
                           p["mobile"].to_numpy()[pi], None),
        "event_time": ts_text(start, ts),
        "_pi": pi, "_ts": ts, "_deliver": ts // 86400, "_part": "",
    })


def s_unionid_missing(people: People) -> float:
    return float(people.persons.attrs.get("unionid_missing", 0.08))


def devices(rng: np.random.Generator, s: Settings, people: People) -> pd.DataFrame:
    """Device table: every person's phone, plus 1-2 more for multi-device app users."""
    p = people.persons
    n = len(p)
    ios = p["ios"].to_numpy()
    base = pd.DataFrame({"pi": np.arange(n), "dev_no": 0, "ios": ios, "idfa": p["idfa"],
                         "oaid": p["oaid"], "android_id": p["android_id"], "mac": p["mac"]})
    multi = np.flatnonzero(p["app"].to_numpy() & (rng.random(n) < s.dirt.multi_device))
    extra_n = rng.integers(1, 3, len(multi))
    mpi = np.repeat(multi, extra_n)
    k = len(mpi)
    dev_no = pd.Series(mpi).groupby(mpi).cumcount().to_numpy() + 1
    eios = rng.random(k) < 0.4       # a tablet or second phone, often the other OS
    extra = pd.DataFrame({
        "pi": mpi, "dev_no": dev_no, "ios": eios,
        "idfa": np.where(eios, uuid_like(rng, k, True), None),
        "oaid": np.where(~eios, uuid_like(rng, k, False), None),
        "android_id": np.where(~eios, tokens(rng, k, 16, HEX), None),
        "mac": pd.Series(tokens(rng, k, 12, HEX)).str.findall("..").str.join(":").to_numpy()})
    out = pd.concat([base, extra], ignore_index=True).sort_values(["pi", "dev_no"])
    out = out.reset_index(drop=True)
    # App Tracking Transparency is asked per app: an iOS user may decline it in the brand
    # app and allow it in an ad platform's app, or the other way round.
    rate = s.population.ios_att_optout
    out["att_app"] = out["ios"].to_numpy() & (rng.random(len(out)) < rate)
    for j in range(len(PLATFORMS_AD)):
        out[f"att_ad{j}"] = out["ios"].to_numpy() & (rng.random(len(out)) < rate)
    return out


def pick_device(rng: np.random.Generator, devs: pd.DataFrame, pi: np.ndarray) -> np.ndarray:
    """Row index into ``devs`` of a device of each person (uniform among theirs)."""
    first = np.searchsorted(devs["pi"].to_numpy(), pi, side="left")
    last = np.searchsorted(devs["pi"].to_numpy(), pi, side="right")
    return first + np.floor(rng.random(len(pi)) * (last - first)).astype(np.int64)


def app_events(rng: np.random.Generator, s: Settings, people: People, devs: pd.DataFrame, block: int,
               days: int, start: np.datetime64) -> pd.DataFrame:
    p = people.persons
    users = np.flatnonzero(p["app"].to_numpy())
    sess_pi = np.repeat(users, rng.poisson(days / 6.0, len(users)))
    s_n = len(sess_pi)
    s_day = rng.integers(0, days, s_n)
    order = np.lexsort((s_day, sess_pi))
    sess_pi, s_day = sess_pi[order], s_day[order]
    s_ts = s_day * 86400 + rng.integers(6 * 3600, 24 * 3600 - 1800, s_n)
    s_dev = pick_device(rng, devs, sess_pi)
    # 30% of app users first log in during the period, at one of their sessions.
    new_login = rng.random(len(p)) < 0.3
    first_sess = np.ones(s_n, dtype=bool)
    first_sess[1:] = sess_pi[1:] != sess_pi[:-1]
    sess_no = pd.Series(sess_pi).groupby(sess_pi).cumcount().to_numpy()
    n_sess = np.bincount(sess_pi, minlength=len(p))
    login_at = np.floor(rng.random(len(p)) * np.maximum(n_sess, 1)).astype(np.int64)
    is_login = new_login[sess_pi] & (sess_no == login_at[sess_pi])
    logged = ~new_login[sess_pi] | (sess_no >= login_at[sess_pi])
    del first_sess
    n_ev = 1 + rng.poisson(1.5, s_n) + is_login
    e_sess = np.repeat(np.arange(s_n), n_ev)
    e_no = pd.Series(e_sess).groupby(e_sess).cumcount().to_numpy()
    k = len(e_sess)
    u = rng.random(k)
    event = np.where(e_no == 0, "open", np.where(u < 0.55, "view_article",
                                                 np.where(u < 0.9, "view_product", "add_cart")))
    # The login is the second event of its session.
    event = np.where(is_login[e_sess] & (e_no == 1), "login", event).astype(object)
    ts = s_ts[e_sess] + e_no * rng.integers(5, 120, k)
    pi = sess_pi[e_sess]
    dev = s_dev[e_sess]
    ios = devs["ios"].to_numpy()[dev]
    has_uid = logged[e_sess] & ((e_no >= 1) | ~is_login[e_sess]) & (rng.random(k) > 0.03)
    att = devs["att_app"].to_numpy()[dev]
    return pd.DataFrame({
        "event_id": ids("AE", block, k, 103),
        "app_user_id": np.where(has_uid, p["app_user_id"].to_numpy()[pi], None),
        "os": np.where(ios, "ios", "android").astype(object),
        "idfa": np.where(att, ALL_ZERO, devs["idfa"].to_numpy()[dev]),
        "oaid": devs["oaid"].to_numpy()[dev],
        "android_id": devs["android_id"].to_numpy()[dev],
        "event": event,
        "article_topic": np.where(event == "view_article",
                                  article_topics(rng, s, people, pi, ts // 86400), None),
        "mobile": np.where(event == "login", p["mobile"].to_numpy()[pi], None),
        "event_time": ts_text(start, ts),
        "_pi": pi, "_ts": ts, "_deliver": ts // 86400, "_part": "",
        "_dev_no": devs["dev_no"].to_numpy()[dev], "_att_zero": att,
    })


def ad_events(rng: np.random.Generator, s: Settings, people: People, devs: pd.DataFrame,
              block: int, days: int, campaigns: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    p = people.persons
    n = len(p)
    pi = np.repeat(np.arange(n), rng.poisson(days / 12.0, n))
    k = len(pi)
    ts = rng.integers(0, days, k) * 86400 + rng.integers(6 * 3600, 24 * 3600, k)
    click = rng.random(k) < 0.03
    pi = np.concatenate([pi, pi[click]])
    ts = np.concatenate([ts, ts[click] + rng.integers(1, 30, click.sum())])
    etype = np.concatenate([np.full(k, "impression", dtype=object),
                            np.full(click.sum(), "click", dtype=object)])
    k = len(pi)
    plat = np.array(PLATFORMS_AD, dtype=object)[rng.choice(4, k, p=[0.35, 0.15, 0.15, 0.35])]
    camp = campaigns[rng.integers(0, len(campaigns), k)]
    camp = np.concatenate([camp[: k - click.sum()], camp[: k - click.sum()][click]])
    plat = np.concatenate([plat[: k - click.sum()], plat[: k - click.sum()][click]])
    dev = pick_device(rng, devs, pi)
    ios = devs["ios"].to_numpy()[dev]
    # An Android device reports its OAID where it supports one, else its Android id.
    use_oaid = (rng.random(len(devs)) < s.population.oaid_share)[dev]
    dtype_ = np.where(ios, "idfa", np.where(use_oaid, "oaid", "android_id")).astype(object)
    plat_no = pd.Index(PLATFORMS_AD).get_indexer(plat)
    att = np.zeros(k, dtype=bool)
    for j in range(len(PLATFORMS_AD)):
        att |= (plat_no == j) & devs[f"att_ad{j}"].to_numpy()[dev]
    # Since Android 8 the Android id differs per app signing key: the ad platform's SDK
    # sees another value than the brand app (one per platform's app), never the same.
    android = ~ios & ~use_oaid
    scoped = np.full(k, None, dtype=object)
    if android.any():
        raw = devs["android_id"].to_numpy()[dev][android] + "|" + plat[android]
        scoped[android] = np.array([h[:16] for h in md5_hex(raw)], dtype=object)
    did = np.where(ios, np.where(att, ALL_ZERO, devs["idfa"].to_numpy()[dev]),
                   np.where(use_oaid, devs["oaid"].to_numpy()[dev], scoped))
    return pd.DataFrame({
        "event_id": ids("AD", block, k, 107), "platform": plat, "campaign_id": camp,
        "event_type": etype, "device_id": did, "device_id_type": dtype_,
        "mobile_md5": np.where(rng.random(k) < s.population.ad_hashed_mobile,
                               p["mobile_md5"].to_numpy()[pi], None),
        "event_time": ts_text(start, ts),
        "_pi": pi, "_ts": ts, "_deliver": ts // 86400, "_part": plat,
        "_dev_no": devs["dev_no"].to_numpy()[dev], "_att_zero": att,
    })


def hospital_signups(rng: np.random.Generator, s: Settings, people: People,
                     hospitals: pd.DataFrame, block: int, days: int,
                     start: np.datetime64) -> pd.DataFrame:
    """Course sign-ups: pregnant members (some through their partner's phone), and members
    signing up for a pregnant relative's course (``noise.hospital``)."""
    p = people.persons
    n = len(p)
    nh = s.noise.hospital
    lo = np.maximum(people.preg_start + 56, 0)
    hi = np.minimum(people.births[:, 2], days)
    own = np.flatnonzero((people.preg_start < NEVER) & (lo < hi)
                         & (rng.random(n) < s.population.hospital_signup))
    own_day = lo[own] + np.floor(rng.random(len(own)) * (hi[own] - lo[own])).astype(np.int64)
    own_due = people.preg_start[own] + 280
    # A relative's course: the member is not pregnant; the due date is the relative's.
    rel = np.flatnonzero(rng.random(n) < 1 - (1 - nh.relative_per_90d) ** (days / 90.0))
    rel_day = rng.integers(0, max(days, 1), len(rel))
    keep = stage_at(people, rel, rel_day) != 1
    rel, rel_day = rel[keep], rel_day[keep]
    rel_due = rel_day + rng.integers(30, 225, len(rel))
    who = np.concatenate([own, rel])
    day = np.concatenate([own_day, rel_day])
    due = np.concatenate([own_due, rel_due])
    week = (day - (due - 280)) // 7
    course = np.where(week < 28, "pregnancy-nutrition",
                      np.where(rng.random(len(who)) < 0.5, "breastfeeding", "newborn-care"))
    # The partner signs up (and attends) with his own phone, which no other source carries.
    partner = np.concatenate([rng.random(len(own)) < nh.partner, np.zeros(len(rel), dtype=bool)])
    partner_mobile = np.char.add(PARTNER_PREFIXES[rng.integers(0, len(PARTNER_PREFIXES), len(who))],
                                 digits(scramble(p["gidx"].to_numpy()[who], 10**8, 53), 8))
    h_city = hospitals["city"].to_numpy()
    order = np.argsort(h_city, kind="stable")
    first = np.searchsorted(h_city[order], p["city"].to_numpy()[who])
    h = order[first + rng.integers(0, 2, len(who))]
    ts = day * 86400 + rng.integers(8 * 3600, 18 * 3600, len(who))
    k = len(who)
    return pd.DataFrame({
        "signup_id": ids("HS", block, k, 109, 10),
        "hospital_id": hospitals["hospital_id"].to_numpy()[h],
        "hospital_name": hospitals["hospital_name"].to_numpy()[h],
        "course": course.astype(object), "name": p["name"].to_numpy()[who],
        "mobile": np.where(partner, partner_mobile, p["mobile"].to_numpy()[who]),
        "due_date": date_text(start, due),
        "signed_up_at": ts_text(start, ts),
        "_pi": who, "_ts": ts, "_deliver": ts // 86400, "_part": "",
    })


def random_macs(rng: np.random.Generator, k: int) -> np.ndarray:
    """Randomised (locally administered) MACs: second hex digit in 2, 6, a, e."""
    raw = pd.Series(tokens(rng, k, 12, HEX))
    second = np.array(list("26ae"), dtype=object)[rng.integers(0, 4, k)]
    raw = raw.str[0] + second + raw.str[2:]
    return raw.str.findall("..").str.join(":").to_numpy(dtype=object)


def network_macs(macs: np.ndarray, network: np.ndarray) -> np.ndarray:
    """The private MAC a phone shows one Wi-Fi network: stable for that network, different
    on every other one, locally administered (second hex digit 2, 6, a or e)."""
    h = pd.Series(md5_hex((pd.Series(macs, dtype=object) + "|" + pd.Series(network, dtype=object)
                           ).to_numpy(dtype=object)), dtype=object)
    second = h.str[1].map(lambda c: "26ae"[int(c, 16) % 4])
    raw = h.str[0] + second + h.str[2:12]
    return raw.str.findall("..").str.join(":").to_numpy(dtype=object)


def wifi_probes(rng: np.random.Generator, s: Settings, people: People, devs: pd.DataFrame,
                store_orders: pd.DataFrame, stores: pd.DataFrame, days: int,
                start: np.datetime64) -> pd.DataFrame:
    """Visits seen by store Wi-Fi: most store purchases, plus browsing visits.

    Since Android 10 and iOS 14 a phone shows each Wi-Fi network its own private MAC. A
    phone that joined a chain's Wi-Fi keeps that MAC in every store of the chain (one
    network name); a phone that never joined is seen only through probes under a fresh
    random MAC per visit and can be tied to nobody. The portal verifies the mobile by SMS,
    but the retailer passes it on to the brand only for visitors who consented to that.
    """
    p = people.persons
    n = len(p)
    seen = store_orders[rng.random(len(store_orders)) < 0.5]
    browse_pi = np.repeat(np.arange(n), rng.poisson(days / 30.0 * (1 - p["p_ecom"].to_numpy())))
    bts = rng.integers(0, days, len(browse_pi)) * 86400 + rng.integers(9 * 3600, 21 * 3600,
                                                                       len(browse_pi))
    pi = np.concatenate([seen["pi"].to_numpy(), browse_pi])
    center = np.concatenate([seen["ts"].to_numpy(), bts])
    store = np.concatenate([seen["store_idx"].to_numpy(), p["home_store"].to_numpy()[browse_pi]])
    k = len(pi)
    first = center - rng.integers(60, 1200, k)
    last = center + rng.integers(30, 600, k)
    joined = rng.random(n) < s.population.wifi_joined
    consents = joined & (rng.random(n) < s.population.wifi_portal_consent)
    randomised = ~joined[pi]
    chain = stores["chain"].to_numpy()[store]
    mac = random_macs(rng, k)
    if (~randomised).any():
        mac[~randomised] = network_macs(p["mac"].to_numpy()[pi][~randomised],
                                        chain[~randomised])
    login = consents[pi]
    return pd.DataFrame({
        "store_id": stores["store_id"].to_numpy()[store], "mac": mac,
        "mobile": np.where(login, p["mobile"].to_numpy()[pi], None),
        "first_seen": ts_text(start, first), "last_seen": ts_text(start, last),
        "dwell_seconds": (last - first).astype(str).astype(object),
        "_pi": pi, "_ts": first, "_deliver": np.maximum(first, 0) // 86400, "_part": "",
        "_randomised": randomised,
    })


DMPS = ["qiyun", "tagsky"]
TAG_RULES = {  # tag -> life-stage codes it fits
    "pregnancy_app": {0, 1}, "parenting_app": {2, 3, 4, 5, 6}, "early_education": {4, 5, 6, 7, 8},
    "cartoons": {5, 6, 7, 8, 9}, "diapers": {2, 3, 4}, "complementary_food": {3, 4, 5},
    "preschool_toys": {4, 5, 6, 7, 8}, "children_clothing": {2, 3, 4, 5, 6, 7, 8, 9},
}


def dmp_tags(rng: np.random.Generator, s: Settings, people: People, days: int,
             start: np.datetime64) -> pd.DataFrame:
    """Weekly files (Mondays); each covered person is refreshed every fourth week.

    A DMP knows a fitting tag only sometimes and adds false ones; its scores for the two
    overlap (``noise.dmp``), so a score is a weak hint, not a probability.
    """
    nd = s.noise.dmp
    p = people.persons
    weekday = (np.datetime64(start, "D").astype(np.int64) + 3) % 7      # 0 = Monday
    mondays = np.flatnonzero((weekday + np.arange(days)) % 7 == 0)
    cov = np.flatnonzero(p["dmp"].to_numpy())
    which = rng.choice(3, len(cov), p=[0.4, 0.4, 0.2])          # a, b or both
    gidx = p["gidx"].to_numpy()
    frames = []
    tags = list(TAG_RULES)
    fit = np.zeros((10, len(tags)), dtype=bool)
    for j, t in enumerate(tags):
        fit[list(TAG_RULES[t]), j] = True
    for w, monday in enumerate(mondays):
        who = cov[(gidx[cov] + w) % 4 == 0]
        wh = which[(gidx[cov] + w) % 4 == 0]
        st = stage_at(people, who, np.full(len(who), monday - 1))
        hit = fit[st] & (rng.random((len(who), len(tags))) < nd.hit)
        noise = ~fit[st] & (rng.random((len(who), len(tags))) < nd.false_tag)
        r, c = np.nonzero(hit | noise)
        score = np.where(hit[r, c], rng.beta(*nd.hit_score, len(r)),
                         rng.beta(*nd.false_score, len(r)))
        for d_i, dmp in enumerate(DMPS):
            ok = (wh[r] == d_i) | (wh[r] == 2)
            frames.append(pd.DataFrame({
                "dmp": dmp, "mobile_md5": p["mobile_md5"].to_numpy()[who[r[ok]]],
                "tag": np.array(tags, dtype=object)[c[ok]],
                "score": np.round(score[ok], 3).astype(str),
                "tag_date": date_text(start, np.full(ok.sum(), monday - 1)),
                "_pi": who[r[ok]], "_ts": np.full(ok.sum(), (monday - 1) * 86400 + 86399),
                "_deliver": monday, "_part": dmp}))
    if not frames:
        return pd.DataFrame(columns=["dmp", "mobile_md5", "tag", "score", "tag_date", "_pi",
                                     "_ts", "_deliver", "_part"])
    return pd.concat(frames, ignore_index=True)


def consent(rng: np.random.Generator, s: Settings, people: People, members: pd.DataFrame,
            block: int, days: int, start: np.datetime64) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Consent events and consent truth intervals for each primary member and purpose."""
    prim = members[members["is_primary"]]
    mpi = prim["pi"].to_numpy()
    reg = prim["reg_day"].to_numpy()
    ev_frames, truth_frames = [], []
    chans = np.array(["app", "wechat", "sms", "store", "web"], dtype=object)
    for pur in PURPOSES:
        g0 = rng.random(len(mpi)) < s.consent.initial_grant[pur]
        state = g0.copy()
        since = reg.copy()
        # A grant at registration: an event when it falls inside the period; for earlier
        # members, a row of the first delivery's initial extract (like the CRM's), so the
        # pipeline starts from every member's consent state.
        t_reg = reg * 86400 + 12 * 3600 + rng.integers(0, 3600, len(mpi))
        ev_frames.append(pd.DataFrame({"pi": mpi[g0], "member_id": prim["member_id"].to_numpy()[
            g0], "purpose": pur, "action": "grant", "ts": t_reg[g0], "initial": reg[g0] < 0}))
        t = np.maximum(reg, 0).astype(float)
        for _ in range(3):
            rate = np.where(state, s.consent.withdraw_per_30d, s.consent.regrant_per_30d) / 30.0
            t = t + rng.exponential(1.0 / np.maximum(rate, 1e-9))
            change = t < days
            day = np.where(change, np.floor(np.where(change, t, 0)), -1).astype(np.int64)
            truth_frames.append(pd.DataFrame({
                "pi": mpi[change], "member_id": prim["member_id"].to_numpy()[change],
                "purpose": pur, "from": since[change], "to": day[change] - 1,
                "granted": state[change]}))
            ts = day * 86400 + rng.integers(7 * 3600, 23 * 3600, len(day))
            ev_frames.append(pd.DataFrame({"pi": mpi[change], "member_id": prim[
                "member_id"].to_numpy()[change], "purpose": pur,
                "action": np.where(state[change], "withdraw", "grant"), "ts": ts[change],
                "initial": False}))
            since = np.where(change, day, since)
            state = np.where(change, ~state, state)
            t = np.where(change, t, np.inf)
        truth_frames.append(pd.DataFrame({"pi": mpi, "member_id": prim["member_id"].to_numpy(),
                                          "purpose": pur, "from": since, "to": -1,
                                          "granted": state}))
    ev = pd.concat(ev_frames, ignore_index=True)
    k = len(ev)
    ts = ev["ts"].to_numpy().astype(np.int64)
    events = pd.DataFrame({
        "event_id": ids("CE", block, k, 113), "member_id": ev["member_id"].to_numpy(),
        "purpose": ev["purpose"].to_numpy(), "action": ev["action"].to_numpy(),
        "channel": chans[rng.integers(0, len(chans), k)], "event_time": ts_text(start, ts),
        "_pi": ev["pi"].to_numpy(), "_ts": ts, "_deliver": np.maximum(ts // 86400, 0), "_part": "",
        "_initial": ev["initial"].to_numpy(dtype=bool)})
    tr = pd.concat(truth_frames, ignore_index=True)
    tr = tr[(tr["to"] < 0) | (tr["to"] >= tr["from"])]
    truth = pd.DataFrame({
        "person_id": people.persons["person_id"].to_numpy()[tr["pi"]],
        "member_id": tr["member_id"].to_numpy(), "purpose": tr["purpose"].to_numpy(),
        "valid_from": (np.datetime64(start, "D") + tr["from"].to_numpy().astype(
            "timedelta64[D]")).astype(object),
        "valid_to": pd.Series((np.datetime64(start, "D") + tr["to"].to_numpy().astype(
            "timedelta64[D]")).astype(object)).where(tr["to"].to_numpy() >= 0),
        "granted": tr["granted"].to_numpy().astype(bool)})
    return events, truth


__all__ = ["ALL_ZERO", "LIFE_STAGES", "ref"]
