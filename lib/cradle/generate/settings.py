"""Typed generator settings (``conf/generator.yaml``) and the run parameters.

Every rate is a probability per the unit its name or comment states; the defaults in the
YAML are the realistic ones, the model defaults only keep partial test configs short.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from cradle.config import Frozen, conf_dir, load_model, parse_model, read_yaml

LIFE_STAGES = ["preparing", "pregnant", "0-6m", "6-12m", "1-2y", "2-3y", "3-4y", "4-5y",
               "5-6y", "6y+"]
PLATFORMS_ECOM = ["tmall", "jd", "pdd", "douyin"]
PLATFORMS_AD = ["toutiao", "baidu", "weibo", "tencent"]
PURPOSES = ["marketing_sms", "marketing_wechat", "marketing_app_push", "ad_targeting",
            "third_party_sharing"]
DEFECT_KINDS = [
    "mobile_format", "masked_mobile", "typo", "multi_device", "family_shared_mobile",
    "store_phone_walkin", "all_zero_device", "test_account", "re_registration",
    "duplicate_row", "duplicate_file", "corrected_file", "truncated_row", "malformed_row",
    "impossible_date", "out_of_range", "encoding_gbk", "encoding_bom", "reordered_columns",
    "added_column", "late_event",
]

Prob = Annotated[float, Field(ge=0.0, le=1.0)]    # a probability


# Mutable defaults are safe here: pydantic copies them per instance (hence the RUF012 noqa).


class Population(Frozen):
    tier_share: dict[int, Prob] = {1: 0.07, 2: 0.20, 3: 0.23, 4: 0.28, 5: 0.22}  # noqa: RUF012
    preparing_share: Prob = 0.08
    pregnant_share: Prob = 0.22
    # Age band of the youngest child for households with a baby, in LIFE_STAGES[2:] order.
    youngest_band_share: list[float] = [0.22, 0.20, 0.24, 0.15, 0.08, 0.05, 0.03, 0.03]  # noqa: RUF012
    second_child_share: Prob = 0.18        # households with a baby that also have an older one
    pregnant_again_share: Prob = 0.04      # households with a child >= 18 months, pregnant again
    twin_rate: Prob = 0.015
    conceive_per_30d: Prob = 0.15          # preparing households that conceive, per 30 days
    mother_age_mean: float = 30.0
    mother_age_sd: float = 4.5
    registered_share: Prob = 0.85          # members already registered before the start
    registers_later_share: Prob = 0.10     # of the rest: register during the period
    register_channel_share: dict[str, Prob] = {"store": 0.45, "wechat": 0.25, "app": 0.1,  # noqa: RUF012
                                                "ecom": 0.1, "hospital": 0.1}
    wechat_share: Prob = 0.8
    unionid_missing: Prob = 0.08           # per wechat record
    # Followers authorising their phone number in the mini-program during the period, by the
    # channel they registered through ("none": not a member). See docs/sources.md.
    wechat_bind_mobile: dict[str, Prob] = {"wechat": 0.30, "store": 0.10, "app": 0.08,  # noqa: RUF012
                                            "ecom": 0.08, "hospital": 0.10, "none": 0.05}
    sample_claim_phone: Prob = 0.8         # sample claims carrying a phone (needed to ship it)
    coupon_claim_phone: Prob = 0.0         # coupon claims need no phone
    # CRM records holding the member's unionid, by registration channel: the mini-program
    # member centre stores it; other channels only when she later logs in there.
    crm_unionid_by_channel: dict[str, Prob] = {"wechat": 0.95, "store": 0.15, "app": 0.10,  # noqa: RUF012
                                               "ecom": 0.10, "hospital": 0.15}
    oaid_share: Prob = 0.7                 # Android devices that support OAID (else Android id)
    ios_att_optout: Prob = 0.5             # per iOS device and app: tracking declined (zero IDFA)
    wifi_joined: Prob = 0.25               # persons whose phone joined the store chain's Wi-Fi
    wifi_portal_consent: Prob = 0.2        # joined persons consenting to pass the portal phone on
    ad_hashed_mobile: Prob = 0.0           # ad events carrying a hashed mobile (logs carry none)
    app_share: Prob = 0.35
    ios_share_by_tier: dict[int, Prob] = {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.2, 5: 0.15}  # noqa: RUF012
    dmp_coverage: Prob = 0.4
    hospital_signup: Prob = 0.35           # pregnant households signing up for a course
    formula_share: Prob = 0.85             # households that buy formula at all
    exclusive_breastfeeding: Prob = 0.3    # of formula households: no formula before 6 months


class Consumption(Frozen):
    days_per_can: dict[int, float] = {0: 25.0, 1: 9.0, 2: 11.0, 3: 15.0, 4: 20.0}  # noqa: RUF012
    cans_mean: float = 2.0                  # cans per purchase (geometric, >= 1)
    promo_wait_days: int = 7                # purchases due this close to a peak wait for it
    promo_wait_share: Prob = 0.5
    promo_qty_factor: float = 2.0
    festival_stockup_share: Prob = 0.7
    diapers_share: Prob = 0.5
    diapers_interval: float = 18.0
    complementary_share: Prob = 0.45
    complementary_interval: float = 24.0
    stroller_share: Prob = 0.35             # around a birth, among non-maternal-buyers
    toys_per_90d: float = 0.5
    toys_share: Prob = 0.35
    base_car_seat_share: Prob = 0.05
    base_clothing_per_90d: float = 0.1


class Channels(Frozen):
    ecom_share_by_tier: dict[int, Prob] = {1: 0.55, 2: 0.48, 3: 0.40, 4: 0.30, 5: 0.22}  # noqa: RUF012
    platform_share_by_tier: dict[int, list[float]] = {  # noqa: RUF012
        1: [0.45, 0.35, 0.08, 0.12], 2: [0.42, 0.33, 0.12, 0.13], 3: [0.35, 0.28, 0.20, 0.17],
        4: [0.28, 0.22, 0.28, 0.22], 5: [0.22, 0.18, 0.35, 0.25]}
    ka_share_by_tier: dict[int, Prob] = {1: 0.4, 2: 0.35, 3: 0.25, 4: 0.15, 5: 0.1}  # noqa: RUF012
    # Store orders where the customer shows no brand member card, by store type
    # (mbs = mother-and-baby store, ka = supermarket), and walk-ins whose own mobile is typed.
    walk_in_share: dict[str, Prob] = {"mbs": 0.15, "ka": 0.6}  # noqa: RUF012
    walk_in_mobile_typed: dict[str, Prob] = {"mbs": 0.5, "ka": 0.05}  # noqa: RUF012
    refund_share: Prob = 0.02
    members_per_store: int = 250


class Journey(Frozen):
    own_share_initial: Prob = 0.55           # ongoing formula buyers already on our brand
    loyal_share_initial: Prob = 0.8          # ... of whom repeat buyers
    new_consumer_own: Prob = 0.3             # first formula purchase is ours (no sample)
    sample_conversion: Prob = 0.55           # first/next purchase is ours after a sample
    switch_at_transition: Prob = 0.25        # own -> competitor when the formula stage changes
    switch_with_sample: Prob = 0.08          # ... when a next-stage sample was claimed first
    win_at_transition: Prob = 0.10           # competitor -> own at a stage change
    base_switch: Prob = 0.01                 # per purchase, either way
    sample_competitor: Prob = 0.12           # competitor/new buyers claiming a sample, per purchase
    sample_transition: Prob = 0.35           # own buyers claiming the next-stage sample
    sample_pickup_in_store: Prob = 0.7


class CoPurchase(Frozen):
    antecedent: str
    consequent: str
    window_days: int = Field(ge=1)
    confidence: Prob


class Consent(Frozen):
    initial_grant: dict[str, Prob] = {"marketing_sms": 0.7, "marketing_wechat": 0.8,  # noqa: RUF012
                                       "marketing_app_push": 0.5, "ad_targeting": 0.4,
                                       "third_party_sharing": 0.2}
    withdraw_per_30d: Prob = 0.02
    regrant_per_30d: Prob = 0.01


class Dirt(Frozen):
    """Rates of each defect kind; the unit each rate is per is in the comment."""

    mobile_format: Prob = 0.05        # per rendered mobile value
    # Per e-commerce order paid on or after the platform's masking date (earlier: none).
    masked_mobile: dict[str, Prob] = {"tmall": 1.0, "jd": 1.0, "pdd": 1.0, "douyin": 1.0}  # noqa: RUF012
    masked_mobile_from: dict[str, date] = {"tmall": date(2022, 8, 24), "jd": date(2021, 6, 1),  # noqa: RUF012
                                           "pdd": date(2021, 6, 1), "douyin": date(2021, 8, 1)}
    typo: Prob = 0.02                 # per name/address value
    multi_device: Prob = 0.06         # per app user: uses 2-3 devices
    family_shared_mobile: Prob = 0.10  # per household: a relative's mobile on store orders
    family_phone_member: Prob = 0.2   # ... the relative is herself a member (else a non-member)
    store_phone_walkin: Prob = 0.3    # per walk-in store order: the store's phone typed
    store_phone_listed: Prob = 0.7    # per store: its counter phone is in the store master
    all_zero_device: Prob = 0.03      # per app/ad record
    test_account: Prob = 0.002        # test accounts per member
    re_registration: Prob = 0.02      # per registered member: registered twice
    duplicate_row: Prob = 0.005       # per record
    duplicate_file: Prob = 0.02       # per file
    corrected_file: Prob = 0.01       # per file
    truncated_row: Prob = 0.02        # per non-empty file
    malformed_row: Prob = 0.001       # per record
    impossible_date: Prob = 0.002     # per record with a date field
    out_of_range: Prob = 0.003        # per record with a checkable value
    encoding_gbk: dict[str, Prob] = {"pos_orders": 0.4, "hospital_signups": 0.5,  # noqa: RUF012
                                      "crm_members": 0.05, "stores": 0.3, "inventory": 0.3}
    encoding_bom: Prob = 0.05         # per UTF-8 CSV file
    reordered_columns: Prob = 0.03    # per CSV file
    late_event: Prob = 0.02           # per event record: delivered 1-10 days late
    added_column_from: date = date(2026, 2, 15)   # crm_members gains baby_gender


class ArticleNoise(Frozen):
    """Which stage an article a member reads is about (shares of article views)."""

    current: Prob = 0.55       # the youngest child's current stage
    next: Prob = 0.15          # the stage coming next: parents read ahead
    sibling: Prob = 0.10       # an older sibling's stage (households without one: current)
    generic: Prob = 0.20       # brand stories, recipes, promotions: no stage at all

    @model_validator(mode="after")
    def check(self) -> ArticleNoise:
        total = self.current + self.next + self.sibling + self.generic
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"noise.articles shares must sum to 1, got {total:.4f}")
        return self


class FormulaNoise(Frozen):
    """Formula bought for another age than the youngest child's exact stage."""

    transition_days: int = Field(30, ge=0)   # window either side of a formula-stage change
    early: Prob = 0.25         # purchases in the window before a change: next stage already
    late: Prob = 0.30          # purchases in the window after a change: previous stage still
    other_child_per_90d: Prob = 0.04   # formula households buying for a relative's child


class DmpNoise(Frozen):
    """Third-party tags: coverage of fitting tags, false tags, and overlapping scores."""

    hit: Prob = 0.45           # per fitting tag and refresh
    false_tag: Prob = 0.15     # per non-fitting tag and refresh
    hit_score: tuple[float, float] = (3.0, 2.5)     # beta(a, b) of a fitting tag's score
    false_score: tuple[float, float] = (2.5, 3.0)   # beta(a, b) of a false tag's score


class HospitalNoise(Frozen):
    """Hospital course sign-ups not made by the pregnant member herself."""

    partner: Prob = 0.15              # of a pregnancy's sign-ups: with the partner's mobile
    relative_per_90d: Prob = 0.01     # non-pregnant members signing up for a relative's course


class Noise(Frozen):
    """How far behavioural life-stage signals stray from the youngest child's stage."""

    articles: ArticleNoise = ArticleNoise()
    formula: FormulaNoise = FormulaNoise()
    dmp: DmpNoise = DmpNoise()
    hospital: HospitalNoise = HospitalNoise()


class Settings(Frozen):
    block_size: int = Field(20_000, ge=100)
    population: Population = Population()
    consumption: Consumption = Consumption()
    channels: Channels = Channels()
    journey: Journey = Journey()
    copurchase: list[CoPurchase] = [  # noqa: RUF012
        CoPurchase(antecedent="maternal_formula", consequent="stroller", window_days=60,
                   confidence=0.3),
        CoPurchase(antecedent="stroller", consequent="car_seat", window_days=90,
                   confidence=0.7),
        CoPurchase(antecedent="toys", consequent="clothing", window_days=30, confidence=0.45),
    ]
    consent: Consent = Consent()
    dirt: Dirt = Dirt()
    noise: Noise = Noise()
    products_change_day: int = 20      # a new SKU is launched on this simulated day

    @model_validator(mode="after")
    def check(self) -> Settings:
        cats = {"maternal_formula", "stroller", "car_seat", "toys", "clothing"}
        for rule in self.copurchase:
            if rule.antecedent not in cats or rule.consequent not in cats:
                raise ValueError(f"co-purchase categories must be among {sorted(cats)}")
        if len(self.population.youngest_band_share) != 8:
            raise ValueError("population.youngest_band_share needs 8 values (0-6m .. 6y+)")
        return self


class Params(Frozen):
    """One run: scale, window, seed and output."""

    members: int = Field(ge=1)
    days: int = Field(ge=1, le=3650)
    start: date
    seed: int
    out: str
    workers: int = Field(1, ge=1)


def load_settings(path: str | Path | None = None) -> Settings:
    """Load ``conf/generator.yaml`` (or ``path``) into :class:`Settings`."""
    if path is None:
        return load_model(Settings, "generator.yaml", conf_dir())
    p = Path(path)
    return parse_model(Settings, read_yaml(p), p)
