"""Fixed reference knowledge: geography and city tiers, the product catalogue, the
promotion calendar, and the word lists names and addresses are drawn from.

Tiers follow the common commercial ranking (一线 ... 五线); they are approximate and only
need to be plausible: tier 4-5 cities are many and small, tier 1 cities few and large.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

# (province full name, short name, [(city short name, tier), ...])
PROVINCES: list[tuple[str, str, list[tuple[str, int]]]] = [
    ("北京市", "北京", [("北京", 1)]),
    ("上海市", "上海", [("上海", 1)]),
    ("天津市", "天津", [("天津", 2)]),
    ("重庆市", "重庆", [("重庆", 2)]),
    ("广东省", "广东", [("广州", 1), ("深圳", 1), ("东莞", 2), ("佛山", 2), ("湛江", 3),
                      ("韶关", 4), ("河源", 4), ("云浮", 5)]),
    ("浙江省", "浙江", [("杭州", 2), ("宁波", 2), ("温州", 2), ("金华", 3), ("丽水", 4),
                      ("衢州", 4)]),
    ("江苏省", "江苏", [("南京", 2), ("苏州", 2), ("无锡", 2), ("徐州", 3), ("盐城", 3),
                      ("宿迁", 4)]),
    ("山东省", "山东", [("济南", 2), ("青岛", 2), ("烟台", 3), ("临沂", 3), ("菏泽", 4),
                      ("聊城", 4)]),
    ("河南省", "河南", [("郑州", 2), ("洛阳", 3), ("南阳", 3), ("周口", 4), ("驻马店", 4),
                      ("信阳", 4)]),
    ("河北省", "河北", [("石家庄", 2), ("保定", 3), ("邯郸", 3), ("邢台", 4), ("衡水", 4),
                      ("承德", 5)]),
    ("湖北省", "湖北", [("武汉", 2), ("宜昌", 3), ("襄阳", 3), ("荆州", 4), ("黄冈", 4),
                      ("十堰", 4)]),
    ("湖南省", "湖南", [("长沙", 2), ("衡阳", 3), ("株洲", 3), ("邵阳", 4), ("永州", 4),
                      ("张家界", 5)]),
    ("四川省", "四川", [("成都", 2), ("绵阳", 3), ("宜宾", 3), ("南充", 4), ("达州", 4),
                      ("巴中", 5)]),
    ("福建省", "福建", [("福州", 2), ("厦门", 2), ("泉州", 2), ("漳州", 3), ("龙岩", 4),
                      ("宁德", 4)]),
    ("安徽省", "安徽", [("合肥", 2), ("芜湖", 3), ("阜阳", 3), ("安庆", 4), ("六安", 4),
                      ("亳州", 4)]),
    ("江西省", "江西", [("南昌", 2), ("赣州", 3), ("九江", 3), ("上饶", 4), ("宜春", 4),
                      ("抚州", 4)]),
    ("广西壮族自治区", "广西", [("南宁", 2), ("柳州", 3), ("桂林", 3), ("玉林", 4), ("百色", 5),
                           ("河池", 5)]),
    ("云南省", "云南", [("昆明", 2), ("曲靖", 4), ("玉溪", 4), ("昭通", 5), ("保山", 5)]),
    ("贵州省", "贵州", [("贵阳", 2), ("遵义", 3), ("毕节", 4), ("六盘水", 4), ("铜仁", 5)]),
    ("陕西省", "陕西", [("西安", 2), ("宝鸡", 3), ("咸阳", 3), ("渭南", 4), ("汉中", 4),
                      ("安康", 5)]),
    ("山西省", "山西", [("太原", 2), ("大同", 4), ("运城", 4), ("长治", 4), ("吕梁", 5)]),
    ("辽宁省", "辽宁", [("沈阳", 2), ("大连", 2), ("鞍山", 4), ("锦州", 4), ("铁岭", 5)]),
    ("吉林省", "吉林", [("长春", 2), ("吉林", 4), ("四平", 5), ("白城", 5)]),
    ("黑龙江省", "黑龙江", [("哈尔滨", 2), ("大庆", 4), ("齐齐哈尔", 4), ("绥化", 5)]),
    ("内蒙古自治区", "内蒙古", [("呼和浩特", 3), ("包头", 3), ("赤峰", 4), ("通辽", 5)]),
    ("甘肃省", "甘肃", [("兰州", 3), ("天水", 4), ("定西", 5), ("陇南", 5)]),
    ("新疆维吾尔自治区", "新疆", [("乌鲁木齐", 3), ("克拉玛依", 4), ("哈密", 5)]),
    ("海南省", "海南", [("海口", 3), ("三亚", 3), ("儋州", 5)]),
    ("宁夏回族自治区", "宁夏", [("银川", 3), ("固原", 5)]),
    ("青海省", "青海", [("西宁", 3), ("海东", 5)]),
    ("西藏自治区", "西藏", [("拉萨", 4), ("日喀则", 5)]),
]


def cities() -> pd.DataFrame:
    """One row per city: province, province_short, city (with 市), city_short, city_tier."""
    rows = [
        (prov, short, f"{city}市", city, tier)
        for prov, short, cs in PROVINCES
        for city, tier in cs
    ]
    return pd.DataFrame(rows, columns=["province", "province_short", "city", "city_short",
                                       "city_tier"])


# Spring Festival (春节) moves with the lunar calendar.
SPRING_FESTIVAL = {
    2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29),
    2026: date(2026, 2, 17), 2027: date(2027, 2, 6), 2028: date(2028, 1, 26),
    2029: date(2029, 2, 13), 2030: date(2030, 2, 3), 2031: date(2031, 1, 23),
}

# E-commerce festivals: (month, day) of the peak day.
PROMO_PEAKS = {"618": (6, 18), "double11": (11, 11), "double12": (12, 12)}


@dataclass(frozen=True)
class Calendar:
    """Per-day lookups over the simulated days (index 0 = the first delivery date)."""

    start: date
    days: int
    promo_day: np.ndarray         # bool: a promotion peak day
    days_to_promo: np.ndarray     # int: days until the next peak day (large if none soon)
    festival_closed: np.ndarray   # bool: Spring Festival shutdown (stores shut, no logistics)
    festival_offset: np.ndarray   # int: days since the Spring Festival of the nearest year

    @property
    def promo_names(self) -> dict[int, str]:
        out = {}
        for d in np.flatnonzero(self.promo_day):
            day = self.start.toordinal() + int(d)
            dt = date.fromordinal(day)
            for name, (m, dd) in PROMO_PEAKS.items():
                if (dt.month, dt.day) == (m, dd):
                    out[int(d)] = name
        return out


def build_calendar(start: date, days: int, horizon: int = 400) -> Calendar:
    """Calendar for ``days`` simulated days, with ``horizon`` extra days of look-ahead."""
    n = days + horizon
    ordinals = start.toordinal() + np.arange(n)
    dates = [date.fromordinal(int(o)) for o in ordinals]
    promo = np.array([(d.month, d.day) in PROMO_PEAKS.values() for d in dates])
    days_to = np.full(n, 10_000, dtype=np.int32)
    nxt = 10_000
    for i in range(n - 1, -1, -1):
        nxt = 0 if promo[i] else nxt + 1
        days_to[i] = nxt
    fest = np.array([
        min((abs(d.toordinal() - sf.toordinal()), d.toordinal() - sf.toordinal())
            for sf in SPRING_FESTIVAL.values())[1]
        for d in dates
    ], dtype=np.int32)
    if not (min(SPRING_FESTIVAL) <= start.year <= max(SPRING_FESTIVAL)):
        raise ValueError(f"start {start} outside the Spring Festival table "
                         f"({min(SPRING_FESTIVAL)}-{max(SPRING_FESTIVAL)})")
    closed = (fest >= -1) & (fest <= 6)
    return Calendar(start, days, promo, days_to, closed, fest)


# --- products --------------------------------------------------------------------------------

OWN_SERIES = {"ZH": ("臻护", "Zhenhu"), "QF": ("启赋", "Qifu")}
COMPETITOR_SERIES = {"XF": ("星飞", "Xingfei"), "BA": ("贝安", "Beian")}
STAGE_NAMES = {0: "孕产妇配方奶粉", 1: "婴儿配方奶粉1段", 2: "较大婴儿配方奶粉2段",
               3: "幼儿配方奶粉3段", 4: "儿童配方奶粉4段"}
FORMULA_PRICE = {"ZH": 338.0, "QF": 298.0, "XF": 318.0, "BA": 238.0}


def products(with_launch: bool) -> pd.DataFrame:
    """The catalogue. ``with_launch`` adds the SKU launched mid-period (a products change)."""
    rows: list[dict] = []
    for code, (cn, en) in {**OWN_SERIES, **COMPETITOR_SERIES}.items():
        own = code in OWN_SERIES
        for stage in range(5):
            size = 400 if stage == 0 else 800
            price = FORMULA_PRICE[code] * (0.62 if stage == 0 else 1.0 - 0.03 * max(stage - 1, 0))
            rows.append(dict(sku=f"{code}{stage}-{size}", name=f"{cn}{STAGE_NAMES[stage]}{size}g",
                             series=f"{cn}/{en}", category="maternal_formula" if stage == 0
                             else "formula", stage=stage, pack_size_g=size,
                             list_price=round(price, 0), shelf_life_days=730, is_own=own))
            if own:
                rows.append(dict(sku=f"SMP-{code}{stage}", name=f"{cn}{stage}段试用装50g",
                                 series=f"{cn}/{en}", category="sample", stage=stage,
                                 pack_size_g=50, list_price=0.0, shelf_life_days=540,
                                 is_own=True))
    other = [
        ("DP-NB", "纸尿裤NB码", "diapers", 90.0, 0), ("DP-M", "纸尿裤M码", "diapers", 99.0, 0),
        ("DP-XL", "拉拉裤XL码", "diapers", 109.0, 0),
        ("CF-RICE", "高铁米粉", "complementary_food", 58.0, 540),
        ("CF-PUREE", "果泥组合装", "complementary_food", 45.0, 365),
        ("CF-NOODLE", "婴幼儿面条", "complementary_food", 29.0, 540),
        ("ST-LITE", "轻便婴儿推车", "stroller", 899.0, 0),
        ("ST-PRO", "高景观婴儿推车", "stroller", 2499.0, 0),
        ("CS-0", "新生儿安全座椅", "car_seat", 1599.0, 0),
        ("CS-1", "儿童安全座椅", "car_seat", 1899.0, 0),
        ("TY-BLOCKS", "积木套装", "toys", 129.0, 0), ("TY-PUZZLE", "早教拼图", "toys", 69.0, 0),
        ("TY-PLUSH", "安抚玩偶", "toys", 89.0, 0),
        ("CL-ROMPER", "纯棉连体衣", "clothing", 119.0, 0),
        ("CL-SET", "儿童家居服套装", "clothing", 149.0, 0),
    ]
    for sku, name, cat, price, shelf in other:
        rows.append(dict(sku=sku, name=name, series="", category=cat, stage=None,
                         pack_size_g=None, list_price=price,
                         shelf_life_days=shelf or None, is_own=True))
    if with_launch:
        rows.append(dict(sku="ZH3-800A", name="臻护幼儿配方奶粉3段800g(新配方)",
                         series="臻护/Zhenhu", category="formula", stage=3, pack_size_g=800,
                         list_price=348.0, shelf_life_days=730, is_own=True))
    out = pd.DataFrame(rows)
    out["stage"] = out["stage"].astype("Int64")
    out["pack_size_g"] = out["pack_size_g"].astype("Int64")
    out["shelf_life_days"] = out["shelf_life_days"].astype("Int64")
    return out


# --- names and addresses ---------------------------------------------------------------------

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓"
                "曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈")
SURNAME_WEIGHTS = np.array([7.1, 7.0, 6.8, 5.4, 4.5, 3.1, 2.2, 2.0, 2.0, 1.7, 1.7, 1.5, 1.2,
                            1.2, 1.2, 1.1, 1.1, 1.0, 1.0, 0.9, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7,
                            0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                            0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.3, 0.3])
GIVEN_CHARS = list("丽娜静敏燕艳娟霞芳婷雪慧颖琳倩洁玲佳欣怡晨璐瑶萌梦婉晴涵雅思悦文月红华兰秀英")
# Characters a hurried clerk or a pinyin input method swaps in (同音/形近字).
TYPO_CHARS = list("利那竟民艳妍绢侠方亭雲惠影林茜杰铃家新仪辰路遥蒙孟宛清含亚斯越")
DISTRICTS = ["城东区", "城西区", "高新区", "新城区", "经开区", "滨江区", "开发区", "南湖区"]
STREETS = ["人民路", "解放路", "建设路", "中山路", "和平路", "新华路", "幸福路", "朝阳路",
           "文化路", "学府路", "长江路", "黄河路"]
COMMUNITIES = ["花园", "小区", "家园", "公寓", "新村", "苑"]
HOSPITAL_KIND = ["妇幼保健院", "人民医院", "妇产医院", "中心医院"]
STORE_CHAINS_MBS = ["孩子王", "爱婴室", "乐友", "贝贝熊", "丽家宝贝", "宝宝乐"]
STORE_CHAINS_KA = ["大润发", "永辉", "沃尔玛", "华润万家", "物美"]
