"""Column-level normalisation of identifiers and places (Column in, Column out)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from cradle.privacy import half_width

MOBILE = r"^1[3-9][0-9]{9}$"
MASKED_MOBILE = r"^1[3-9][0-9]\*{4}[0-9]{4}$"


def mobile_digits(raw: Column) -> Column:
    """'+86 138-0013-8000', '8613800138000', full-width digits -> '13800138000'.

    Returns the 11-digit form when the input is a valid Chinese mobile, else null.
    """
    digits = F.regexp_replace(half_width(raw), r"[^0-9*]", "")
    national = F.regexp_replace(digits, r"^(0086|86)(1[3-9][0-9]{9})$", "$2")
    return F.when(national.rlike(MOBILE), national)


def masked_mobile_form(raw: Column) -> Column:
    """'138****8000' when the input is an already-masked mobile, else null."""
    compact = F.regexp_replace(half_width(raw), r"[^0-9*]", "")
    compact = F.regexp_replace(compact, r"^(0086|86)", "")
    return F.when(compact.rlike(MASKED_MOBILE), compact)


def mobile_status(raw: Column) -> Column:
    return (
        F.when(raw.isNull(), F.lit("missing"))
        .when(mobile_digits(raw).isNotNull(), F.lit("valid"))
        .when(masked_mobile_form(raw).isNotNull(), F.lit("masked"))
        .otherwise(F.lit("invalid"))
    )


def device_id(raw: Column) -> Column:
    """IDFA/OAID as upper-case 8-4-4-4-12 UUIDs; Android ids and others lower-case hex.

    Placeholders such as the all-zero id are kept here: whether an identifier may link
    people is the identity stage's decision (conf/identity.yaml), not ingestion's.
    """
    text = F.trim(half_width(raw))
    compact = F.lower(F.regexp_replace(text, r"[^0-9A-Fa-f]", ""))
    uuid = F.upper(
        F.concat_ws(
            "-",
            F.substring(compact, 1, 8),
            F.substring(compact, 9, 4),
            F.substring(compact, 13, 4),
            F.substring(compact, 17, 4),
            F.substring(compact, 21, 12),
        )
    )
    return (
        F.when(
            text.rlike(r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$"),
            uuid,
        )
        .when(text.rlike(r"^[0-9A-Fa-f]{13,16}$"), compact)
        .when(text != "", text)
    )


def mac(raw: Column) -> Column:
    compact = F.lower(F.regexp_replace(half_width(raw), r"[^0-9A-Fa-f]", ""))
    pairs = F.regexp_replace(compact, r"(..)(?!$)", "$1:")
    return F.when(F.length(compact) == 12, pairs)


def md5_hex(raw: Column) -> Column:
    text = F.lower(F.trim(raw))
    return F.when(text.rlike(r"^[0-9a-f]{32}$"), text)
