"""Order lines as the POS and e-commerce systems deliver them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cradle.generate.behaviour import CHANNEL_STORE
from cradle.generate.events import ts_text
from cradle.generate.people import People, digits, scramble
from cradle.generate.settings import PLATFORMS_ECOM, Settings

ORDER_PREFIX = {"tmall": "T", "jd": "J", "pdd": "D", "douyin": "Y"}
ORDERS_PER_BLOCK = 10**6      # order sequence numbers reserved per block


def order_numbers(block: int, seq: np.ndarray, salt: int) -> np.ndarray:
    """8-digit order sequence numbers, unique across blocks (10 digits past 100 blocks)."""
    if len(seq) and seq.max() >= ORDERS_PER_BLOCK:
        raise ValueError("more orders in one block than reserved; lower block_size")
    g = block * ORDERS_PER_BLOCK + seq
    width = 8 if block < 100 else 10
    return digits(scramble(g, 10**width, salt), width)


def money(x: np.ndarray) -> np.ndarray:
    return np.char.mod("%.2f", np.asarray(x, dtype=float)).astype(object)


def pos_rows(rng: np.random.Generator, s: Settings, people: People, lines: pd.DataFrame,
             stores: pd.DataFrame, block: int, start: np.datetime64) -> pd.DataFrame:
    """Store order lines. Clerks type phones: sometimes the customer's, sometimes the store's."""
    p = people.persons
    n = len(p)
    st = lines[lines["channel"] == CHANNEL_STORE].reset_index(drop=True)
    pi = st["pi"].to_numpy()
    seq = st["order_seq"].to_numpy()
    k = len(st)
    # Order-level draws, shared by the lines of one order.
    uniq, first = np.unique(seq, return_index=True)
    pos = np.searchsorted(uniq, seq)
    m = len(uniq)
    u_card, u_type, u_store = rng.random(m), rng.random(m), rng.random(m)
    day = st["day"].to_numpy()
    store_idx = st["store_idx"].to_numpy()
    store_ids = stores["store_id"].to_numpy()[store_idx]
    kind = stores["channel"].to_numpy()[store_idx]
    member = p["reg_day"].to_numpy()[pi] <= day
    walk_rate = pd.Series(kind).map(s.channels.walk_in_share).fillna(0.0).to_numpy()
    typed_rate = pd.Series(kind).map(s.channels.walk_in_mobile_typed).fillna(0.0).to_numpy()
    shows_card = member & (u_card[pos] >= walk_rate)
    walk_in = ~shows_card
    typed_own = np.where(shows_card, u_type[pos] < 0.5, u_type[pos] < typed_rate)
    store_phone = walk_in & ~typed_own & (u_store[pos] < s.dirt.store_phone_walkin)
    # A relative's phone on a household's store orders: a husband's or grandmother's who is
    # no member (a number seen nowhere else), or, for some, a relative who is herself a
    # member (another person's mobile). One fixed relative per affected household.
    shares = rng.random(n) < s.dirt.family_shared_mobile
    is_member_relative = rng.random(n) < s.dirt.family_phone_member
    relative = (np.arange(n) + rng.integers(1, max(n, 2), n)) % max(n, 1)
    outsider = np.char.add("199", digits(scramble(p["gidx"].to_numpy(), 10**8, 53), 8)).astype(object)
    family = shares[pi] & typed_own
    family_member = family & is_member_relative[pi]
    relative_mobile = np.where(is_member_relative, p["mobile"].to_numpy()[relative], outsider)
    mob = np.where(family, relative_mobile[pi], p["mobile"].to_numpy()[pi])
    mobile = np.where(typed_own, mob, np.where(store_phone,
                                               stores["counter_phone"].to_numpy()[store_idx], None))
    order_no = ("P" + pd.Series(store_ids) + pd.Series(
        order_numbers(block, seq, 201))).to_numpy(dtype=object)
    out = pd.DataFrame({
        "order_no": order_no, "line_no": st["line_no"].astype(str).to_numpy(dtype=object),
        "store_id": store_ids,
        "member_card_no": np.where(shows_card, p["card_no"].to_numpy()[pi], None),
        "mobile": mobile, "sku": st["sku"].to_numpy(),
        "qty": st["qty"].astype(str).to_numpy(dtype=object),
        "unit_price": money(st["unit_price"].to_numpy()),
        "amount": money(st["amount"].to_numpy()),
        "paid_at": ts_text(start, st["ts"].to_numpy()),
        "_pi": pi, "_ts": st["ts"].to_numpy(), "_deliver": day, "_part": "",
        "_store_phone": store_phone, "_family": family_member,
        "_relative": np.where(family_member, p["person_id"].to_numpy()[relative[pi]], None),
        "_family_outsider": family & ~family_member,
    })
    del first, k
    return out


def ecom_rows(rng: np.random.Generator, s: Settings, people: People, lines: pd.DataFrame,
              block: int, days: int, start: np.datetime64) -> pd.DataFrame:
    """One JSON record per order, plus a later 'refunded' record for refunded orders."""
    p = people.persons
    ec = lines[lines["channel"] != CHANNEL_STORE].reset_index(drop=True)
    item = ('{"sku": "' + ec["sku"] + '", "qty": ' + ec["qty"].astype(str) + ', "price": '
            + ec["unit_price"].map(repr) + "}")
    items = "[" + item.groupby(ec["order_seq"]).agg(", ".join) + "]"
    orders = ec.groupby("order_seq", as_index=False).first()
    orders["items"] = items.reindex(orders["order_seq"]).to_numpy()
    pi = orders["pi"].to_numpy()
    m = len(orders)
    plat = np.array(PLATFORMS_ECOM, dtype=object)[orders["channel"].to_numpy() - 1]
    dates = (np.datetime64(start, "D") + orders["day"].to_numpy().astype("timedelta64[D]"))
    ymd = np.char.replace(dates.astype(str), "-", "")
    prefix = np.array([ORDER_PREFIX[x] for x in plat], dtype=object) if m else plat
    order_id = (pd.Series(prefix) + pd.Series(ymd) + pd.Series(
        order_numbers(block, orders["order_seq"].to_numpy(), 203))
                ).to_numpy(dtype=object)
    buyer = np.select([plat == x for x in PLATFORMS_ECOM],
                      [p[f"buyer_{x}"].to_numpy()[pi] for x in PLATFORMS_ECOM], None)
    mask_rate = np.array([s.dirt.masked_mobile.get(x, 0.0) for x in plat])
    since = np.array([(np.datetime64(s.dirt.masked_mobile_from[x], "D") - np.datetime64(start, "D"))
                      .astype(np.int64) if x in s.dirt.masked_mobile_from else -10**6 for x in plat],
                     dtype=np.int64)
    masked = (rng.random(m) < mask_rate) & (orders["day"].to_numpy() >= since)
    mobile = p["mobile"].to_numpy()[pi]
    masked_mobile = pd.Series(mobile).str[:3] + "****" + pd.Series(mobile).str[7:]
    name = pd.Series(p["name"].to_numpy()[pi])
    ts = orders["ts"].to_numpy()
    base = pd.DataFrame({
        "platform": plat, "order_id": order_id, "buyer_id": buyer,
        "receiver_mobile": np.where(masked, masked_mobile, mobile),
        "receiver_name": np.where(masked, name.str[0] + "*", name),
        "receiver_province": p["province"].to_numpy()[pi],
        "receiver_city": p["city"].to_numpy()[pi],
        "receiver_address": p["address"].to_numpy()[pi],
        "status": "paid", "pay_time": ts_text(start, ts), "updated_at": ts_text(start, ts),
        "items": orders["items"].to_numpy(),
        "_pi": pi, "_ts": ts, "_deliver": orders["day"].to_numpy(), "_part": plat,
        "_masked": masked,
    })
    refund = rng.random(m) < s.channels.refund_share
    rts = ts + rng.integers(1, 15, m) * 86400 + rng.integers(-3600, 3600, m)
    refund &= rts // 86400 < days
    ref = base[refund].copy()
    ref["status"] = "refunded"
    ref["updated_at"] = ts_text(start, rts[refund])
    ref["_ts"] = rts[refund]
    ref["_deliver"] = rts[refund] // 86400
    return pd.concat([base, ref], ignore_index=True)
