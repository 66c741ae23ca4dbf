"""Personal data protection in one place: keys, keyed tokens, encryption and masking.

Every stage that touches personal data uses this module (never its own copy).

* ``token``: HMAC-SHA256(token_key, value) as hex, built from ``sha2`` per RFC 2104 so it
  runs in the JVM (no Python UDF) and equals Python's ``hmac.new(key, v, sha256)``.
  Equal values give equal tokens, so identity can join on them; without the key a token
  cannot be reversed or recomputed from a guessed phone number.
* ``encrypt``: AES-256-GCM (``aes_encrypt``) with a random IV, base64 text; only channels
  that must reach the person decrypt it.

* masking: what a person may see. ``mask_mobile`` shows a mobile as ``138****8000``;
  ``mask_text`` / ``mask_text_str`` find mainland mobiles inside free text in any of the
  forms real data carries them (``+86 139-1234-0070``, ``0086 13912340070``, full-width
  digits, NUL bytes between characters from UTF-16 text read as bytes) and mask them the
  same way, along with any other run of 7+ digits (card numbers); ``MaskingFilter`` applies
  ``mask_text_str`` to every log record.

Keys come from ``CRADLE_TOKEN_KEY`` / ``CRADLE_ENCRYPTION_KEY`` (64 hex chars each), or
a secrets file (``secrets.key_file``). The local profile may use the development keys in
``conf/secrets.dev.yaml``; any profile with ``allow_dev_key: false`` refuses them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from cradle.config import EnvConfig, conf_dir, read_yaml, resolve_local

BLOCK = 64  # SHA-256 block size in bytes
DEV_SECRETS_FILE = "secrets.dev.yaml"


class SecretsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Keys:
    token_key: bytes
    encryption_key: bytes
    is_development: bool

    def __repr__(self) -> str:  # never print key material
        return f"Keys(is_development={self.is_development})"


def decode_key(text: str, name: str, origin: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SecretsError(f"{origin}: {name} must be 64 hexadecimal characters") from None
    if len(key) != 32:
        raise SecretsError(f"{origin}: {name} must be 32 bytes (64 hex characters), got {len(key)}")
    return key


def load_keys(env: EnvConfig, directory: Path | None = None) -> Keys:
    """Keys from the environment, else the profile's key file, else (local only) dev keys."""
    dev = read_yaml((directory or conf_dir()) / DEV_SECRETS_FILE)
    dev_keys = (dev.get("token_key", ""), dev.get("encryption_key", ""))
    if os.environ.get("CRADLE_TOKEN_KEY") and os.environ.get("CRADLE_ENCRYPTION_KEY"):
        origin, values = "environment", (os.environ["CRADLE_TOKEN_KEY"], os.environ["CRADLE_ENCRYPTION_KEY"])
    elif env.secrets.key_file:
        path = Path(resolve_local(env.secrets.key_file))
        data = read_yaml(path)
        origin, values = str(path), (data.get("token_key", ""), data.get("encryption_key", ""))
    else:
        origin, values = str((directory or conf_dir()) / DEV_SECRETS_FILE), dev_keys
    is_dev = tuple(v.strip().lower() for v in values) == tuple(v.strip().lower() for v in dev_keys)
    if is_dev and not env.secrets.allow_dev_key:
        raise SecretsError(
            f"environment {env.name!r} refuses the development keys ({DEV_SECRETS_FILE}); set "
            "CRADLE_TOKEN_KEY and CRADLE_ENCRYPTION_KEY or secrets.key_file"
        )
    return Keys(
        token_key=decode_key(values[0], "token_key", origin),
        encryption_key=decode_key(values[1], "encryption_key", origin),
        is_development=is_dev,
    )


def hmac_hex(key: bytes, value: str) -> str:
    """Reference implementation (tests, evaluators)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def token(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of ``value`` (a string column) under ``key``, as lower-case hex."""
    padded = (
        key.ljust(BLOCK, b"\0") if len(key) <= BLOCK else hashlib.sha256(key).digest().ljust(BLOCK, b"\0")
    )
    ipad = bytes(b ^ 0x36 for b in padded)
    opad = bytes(b ^ 0x5C for b in padded)
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.encode(value, "UTF-8")), 256))
    return F.when(value.isNotNull(), F.sha2(F.concat(F.lit(opad), inner), 256))


def encrypt(value: Column, key: bytes) -> Column:
    return F.when(value.isNotNull(), F.base64(F.aes_encrypt(value, F.lit(key), F.lit("GCM"))))


def decrypt(value: Column, key: bytes) -> Column:
    return F.aes_decrypt(F.unbase64(value), F.lit(key), F.lit("GCM")).cast("string")


# --- masking ----------------------------------------------------------------------------

FULL_WIDTH = "０１２３４５６７８９＋－＊（）　"
HALF_WIDTH = "0123456789+-*() "
# Characters that may sit between the digits of a formatted mobile: spaces, dashes, dots,
# and NUL (UTF-16 text decoded byte by byte puts a NUL between every two characters).
_SEP = r"[\s.\-\x00]*"
# A mainland mobile, optionally with the country code, digits possibly separated. Groups
# keep the first three and last four digits. The same pattern is valid Java and Python.
MOBILE_IN_TEXT = (
    r"(?<![0-9])(?:(?:\+|00)?"
    + _SEP
    + "8"
    + _SEP
    + "6"
    + _SEP
    + ")?"
    + "(1)"
    + _SEP
    + "([3-9])"
    + _SEP
    + "([0-9])"
    + "".join(_SEP + "[0-9]" for _ in range(4))
    + "".join(_SEP + "([0-9])" for _ in range(4))
    + r"(?![0-9])"
)
LONG_DIGITS = r"([0-9]{3})[0-9]{4,}([0-9]{4})"  # card numbers and other long identifiers
_MOBILE_RE = re.compile(MOBILE_IN_TEXT)
_LONG_RE = re.compile(LONG_DIGITS)
_WIDTH = str.maketrans(FULL_WIDTH, HALF_WIDTH)


def half_width(text: Column) -> Column:
    """Full-width digits and punctuation (as typed on Chinese keyboards) to ASCII."""
    return F.translate(text, FULL_WIDTH, HALF_WIDTH)


def mask_mobile(mobile: Column) -> Column:
    """An 11-digit mobile as ``138****8000``."""
    return F.concat(F.substring(mobile, 1, 3), F.lit("****"), F.substring(mobile, 8, 4))


def mask_name(name: Column) -> Column:
    """王小明 -> 王**; keeps the family name, as Chinese platforms show names."""
    return F.when(
        F.length(name) > 0, F.concat(F.substring(name, 1, 1), F.repeat(F.lit("*"), F.length(name) - 1))
    )


def mask_text(text: Column) -> Column:
    """Free text with every mobile (any format) and every run of 7+ digits masked.

    >>> mask_text(F.lit("call +86 139-1234-0070"))   # 'call 139****0070'
    """
    plain = half_width(text)
    masked = F.regexp_replace(plain, MOBILE_IN_TEXT, "$1$2$3****$4$5$6$7")
    return F.regexp_replace(masked, LONG_DIGITS, "$1****$2")


def mask_text_str(text: str) -> str:
    """``mask_text`` for Python strings (log lines, CLI output, error messages)."""
    plain = text.translate(_WIDTH)
    masked = _MOBILE_RE.sub(
        lambda m: "".join(m.group(1, 2, 3)) + "****" + "".join(m.group(4, 5, 6, 7)), plain
    )
    return _LONG_RE.sub(r"\1****\2", masked)


class MaskingFilter(logging.Filter):
    """Masks mobiles and long digit runs in every log record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text_str(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = mask_text_str(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text_str(record.exc_text)
        return True


# --- mobiles where no mobile belongs ------------------------------------------------------

# A mobile standing on its own inside a value: not glued to letters or digits, so the
# digits inside identifiers (UUIDs, hex ids) are never taken for a phone.
MOBILE_ALONE = r"(?<![0-9A-Za-z])" + MOBILE_IN_TEXT + r"(?![0-9A-Za-z])"
# A value that is nothing but a mobile (any format): a phone typed into a card-number field.
MOBILE_ONLY = r"^[\s\x00]*" + MOBILE_IN_TEXT + r"[\s\x00]*$"


def is_mobile_value(value: Column) -> Column:
    """Whether the whole value is a mainland mobile in any format (+86, spaces, dashes,
    full-width digits, NULs between characters)."""
    return half_width(value).rlike(MOBILE_ONLY)


def has_mobile(value: Column) -> Column:
    """Whether the value holds a mainland mobile standing on its own (see ``MOBILE_ALONE``)."""
    return half_width(value).rlike(MOBILE_ALONE)


def mobile_number(value: Column) -> Column:
    """The 11 national digits of a value that is a mobile: '+86 139-1234-0070' -> '13912340070'."""
    digits = F.regexp_replace(half_width(value), r"[^0-9]", "")
    return F.substring(digits, -11, 11)


def protect_stray_mobiles(value: Column, token_key: bytes) -> Column:
    """A non-personal text value with any mobile in it made safe to store: a value that is
    only a mobile becomes ``mobile:<its keyed token>`` (the same token a mobile field gets,
    so equal numbers stay equal); a mobile inside longer text is masked in place."""
    masked = F.regexp_replace(half_width(value), MOBILE_ALONE, "$1$2$3****$4$5$6$7")
    return (
        F.when(is_mobile_value(value), F.concat(F.lit("mobile:"), token(mobile_number(value), token_key)))
        .when(has_mobile(value), masked)
        .otherwise(value)
    )
