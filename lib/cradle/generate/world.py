"""Things shared by every block of persons: stores, hospitals and ad campaigns.

They are generated once per run from their own seed, so every block (and worker) sees
the same stores whatever the block size or number of workers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cradle.generate import reference as ref
from cradle.generate.people import digits, scramble


def make_stores(rng: np.random.Generator, cities: pd.DataFrame, members: int,
                members_per_store: int, phone_listed: float = 1.0) -> pd.DataFrame:
    """Stores spread over cities by their expected share of members; >= 1 per city.

    ``counter_phone`` is the phone clerks type for customers who give none; the store
    master (``store_phone``) lists it for a share ``phone_listed`` of stores only (store
    masters are kept for logistics, not for identity)."""
    total = max(members // members_per_store, len(cities))
    # Lower tiers hold more households but have smaller stores: stores follow households.
    weight = cities["city_tier"].map({1: 3.0, 2: 2.0, 3: 1.5, 4: 1.0, 5: 0.8}).to_numpy()
    extra = rng.multinomial(total - len(cities), weight / weight.sum())
    per_city = 1 + extra
    ci = np.repeat(np.arange(len(cities)), per_city)
    n = len(ci)
    c = cities.iloc[ci].reset_index(drop=True)
    ka_share = c["city_tier"].map({1: 0.4, 2: 0.35, 3: 0.25, 4: 0.15, 5: 0.1}).to_numpy()
    is_ka = rng.random(n) < ka_share
    chain = np.where(is_ka, np.array(ref.STORE_CHAINS_KA)[rng.integers(0, 5, n)],
                     np.array(ref.STORE_CHAINS_MBS)[rng.integers(0, 6, n)])
    district = np.array(ref.DISTRICTS)[rng.integers(0, len(ref.DISTRICTS), n)]
    store_id = np.char.add("S", digits(scramble(np.arange(n), 10**5, 3), 5))
    # Mother-and-baby stores give the owner's mobile (17x numbers, never a member's);
    # supermarkets a landline.
    owner = np.char.add(np.array(["173", "176", "178"])[rng.integers(0, 3, n)],
                        digits(scramble(np.arange(n), 10**8, 11), 8))
    area = np.array(["10", "20", "21", "22", "23", "24", "25", "27", "28", "29", "311", "351",
                     "371", "431", "451", "531", "551", "571", "591", "731", "769", "871"])
    landline = np.char.add(np.char.add("0", area[rng.integers(0, len(area), n)]),
                           np.char.add("-", digits(rng.integers(2_000_0000, 8_999_9999, n), 8)))
    counter = np.where(is_ka, landline, owner).astype(object)
    listed = rng.random(n) < phone_listed
    opened = np.datetime64("2026-01-01") - rng.integers(200, 4000, n).astype("timedelta64[D]")
    return pd.DataFrame({
        "store_id": store_id.astype(object),
        "store_name": (pd.Series(chain) + "(" + c["city_short"] + pd.Series(district) + "店)"),
        "store_phone": np.where(listed, counter, None).astype(object),
        "counter_phone": counter,
        "chain": chain.astype(object),
        "channel": np.where(is_ka, "ka", "mbs").astype(object),
        "province": c["province"], "city": c["city"], "city_tier": c["city_tier"],
        "opened_on": pd.Series(opened.astype("datetime64[D]").astype(str)),
        "is_mobile_phone": ~is_ka,
    })


def make_hospitals(rng: np.random.Generator, cities: pd.DataFrame) -> pd.DataFrame:
    """Two maternity hospitals per city."""
    ci = np.repeat(np.arange(len(cities)), 2)
    c = cities.iloc[ci].reset_index(drop=True)
    kind = np.array(ref.HOSPITAL_KIND)[rng.integers(0, len(ref.HOSPITAL_KIND), len(ci))]
    return pd.DataFrame({
        "hospital_id": np.char.add("HOS", digits(np.arange(len(ci)) + 1, 4)).astype(object),
        "hospital_name": (c["city_short"] + "市" + pd.Series(kind)).to_numpy(dtype=object),
        "city": c["city"],
    })


def make_campaigns(rng: np.random.Generator, n: int = 40) -> np.ndarray:
    return np.char.add("C", digits(rng.integers(100000, 999999, n), 6)).astype(object)
