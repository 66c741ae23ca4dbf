"""The landing contract (docs/sources.md) as data: fields, keys and file names per source."""

from __future__ import annotations

from dataclasses import dataclass

from cradle.generate.events import DMPS
from cradle.generate.settings import PLATFORMS_AD, PLATFORMS_ECOM


@dataclass(frozen=True)
class SourceSpec:
    name: str
    fmt: str                           # "csv" or "jsonl"
    columns: tuple[str, ...]
    key: tuple[str, ...]
    parts: tuple[str, ...] = ("",)      # one file per part (platform, dmp) and day
    event_field: str | None = None      # event time; late records say so here
    date_fields: tuple[str, ...] = ()
    mobile_fields: tuple[str, ...] = ()
    text_fields: tuple[str, ...] = ()
    raw_fields: tuple[str, ...] = ()    # JSON written as is (nested values)
    numeric_fields: tuple[str, ...] = ()  # JSON numbers
    reference: bool = False

    def file_name(self, part: str, ymd: str) -> str:
        base = f"{self.name}_{part}_{ymd}" if part else f"{self.name}_{ymd}"
        return f"{base}.{self.fmt}"


SOURCES: dict[str, SourceSpec] = {s.name: s for s in [
    SourceSpec("crm_members", "csv", (
        "member_id", "mobile", "name", "mother_birth_date", "baby_birth_date", "due_date",
        "province", "city", "address", "register_store_id", "register_channel",
        "member_card_no", "unionid", "registered_at", "updated_at", "baby_gender"), ("member_id",),
        event_field="updated_at",
        date_fields=("mother_birth_date", "baby_birth_date", "due_date", "registered_at",
                     "updated_at"),
        mobile_fields=("mobile",), text_fields=("name", "address")),
    SourceSpec("pos_orders", "csv", (
        "order_no", "line_no", "store_id", "member_card_no", "mobile", "sku", "qty",
        "unit_price", "amount", "paid_at"), ("order_no", "line_no"), event_field="paid_at",
        date_fields=("paid_at",), mobile_fields=("mobile",)),
    SourceSpec("ecom_orders", "jsonl", (
        "platform", "order_id", "buyer_id", "receiver_mobile", "receiver_name",
        "receiver_province", "receiver_city", "receiver_address", "status", "pay_time",
        "updated_at", "items"), ("platform", "order_id"), parts=tuple(PLATFORMS_ECOM),
        event_field="updated_at", date_fields=("pay_time", "updated_at"),
        mobile_fields=("receiver_mobile",), text_fields=("receiver_name", "receiver_address"),
        raw_fields=("items",)),
    SourceSpec("wechat_events", "jsonl", (
        "event_id", "appid", "openid", "unionid", "event", "page", "mobile", "event_time"),
        ("event_id",), event_field="event_time", date_fields=("event_time",),
        mobile_fields=("mobile",)),
    SourceSpec("app_events", "jsonl", (
        "event_id", "app_user_id", "os", "idfa", "oaid", "android_id", "event",
        "article_topic", "mobile", "event_time"), ("event_id",), event_field="event_time",
        date_fields=("event_time",), mobile_fields=("mobile",)),
    SourceSpec("ad_events", "csv", (
        "event_id", "platform", "campaign_id", "event_type", "device_id", "device_id_type",
        "mobile_md5", "event_time"), ("event_id",), parts=tuple(PLATFORMS_AD),
        event_field="event_time", date_fields=("event_time",)),
    SourceSpec("hospital_signups", "csv", (
        "signup_id", "hospital_id", "hospital_name", "course", "name", "mobile", "due_date",
        "signed_up_at"), ("signup_id",), event_field="signed_up_at",
        date_fields=("due_date", "signed_up_at"), mobile_fields=("mobile",),
        text_fields=("name",)),
    SourceSpec("wifi_probes", "csv", (
        "store_id", "mac", "mobile", "first_seen", "last_seen", "dwell_seconds"),
        ("store_id", "mac", "first_seen"), event_field="first_seen",
        date_fields=("first_seen", "last_seen"), mobile_fields=("mobile",)),
    SourceSpec("dmp_tags", "csv", ("dmp", "mobile_md5", "tag", "score", "tag_date"),
               ("dmp", "mobile_md5", "tag", "tag_date"), parts=tuple(DMPS),
               date_fields=("tag_date",)),
    SourceSpec("consent_events", "jsonl", (
        "event_id", "member_id", "purpose", "action", "channel", "event_time"), ("event_id",),
        event_field="event_time", date_fields=("event_time",)),
    SourceSpec("products", "csv", (
        "sku", "name", "series", "category", "stage", "pack_size_g", "list_price",
        "shelf_life_days"), ("sku",), reference=True),
    SourceSpec("stores", "csv", (
        "store_id", "store_name", "store_phone", "chain", "channel", "province", "city",
        "city_tier", "opened_on"), ("store_id",), reference=True),
    SourceSpec("inventory", "csv", (
        "snapshot_date", "store_id", "sku", "on_hand", "in_transit", "earliest_expiry"),
        ("snapshot_date", "store_id", "sku"), reference=True),
]}

# crm_members files gain this column from Dirt.added_column_from on.
ADDED_COLUMN = ("crm_members", "baby_gender")
