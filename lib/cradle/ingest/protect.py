"""Keyed tokens and encryption for personal data, with Spark built-ins only.

* ``token``: HMAC-SHA256(token_key, value) as hex, built from ``sha2`` per RFC 2104 so it
  runs in the JVM (no Python UDF) and equals Python's ``hmac.new(key, v, sha256)``.
  Equal values give equal tokens, so identity can join on them; without the key a token
  cannot be reversed or recomputed from a guessed phone number.
* ``encrypt``: AES-256-GCM (``aes_encrypt``) with a random IV, base64 text; only channels
  that must reach the person decrypt it.

Keys come from ``CRADLE_TOKEN_KEY`` / ``CRADLE_ENCRYPTION_KEY`` (64 hex chars each), or
a secrets file (``secrets.key_file``). The local profile may use the development keys in
``conf/secrets.dev.yaml``; any profile with ``allow_dev_key: false`` refuses them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
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


def mask_digits(text: Column) -> Column:
    """Mask every run of 7+ digits (phones, card numbers) in free text: 13800138000 -> 138****8000."""
    return F.regexp_replace(text, r"(\d{3})\d{4,}(\d{4})", "$1****$2")
