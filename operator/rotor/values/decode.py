"""``decode`` of a ManagedSecret data entry: None, Base64 or Auto."""

from __future__ import annotations

import base64
import binascii
import re

from rotor.values.errors import InvalidSpec, ValidationFailed
from rotor.values.properties import quote_name

DECODE_MODES = ("None", "Base64", "Auto")

_STANDARD = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE = re.compile(rb"[A-Za-z0-9_-]*={0,2}")
_WHITESPACE = re.compile(rb"\s+")


def decode(value: bytes, mode: str, *, key: str) -> bytes:
    """``value`` decoded as ``mode`` says, for Secret key ``key``.

    - ``None``: as it is.
    - ``Base64``: standard or URL-safe alphabet, padding optional, line breaks ignored; anything
      else is refused with ValidationFailed.
    - ``Auto``: decoded when it is canonical base64 (standard or URL-safe, no whitespace),
      otherwise kept as it is. A short plain text such as ``abcd`` is valid base64 too, so prefer
      an explicit mode where the source is known.
    """
    if mode == "None":
        return value
    if mode == "Base64":
        decoded = strict_b64decode(_WHITESPACE.sub(b"", value))
        if decoded is None:
            raise ValidationFailed(f"key {quote_name(key)} failed decode Base64: not valid base64")
        return decoded
    if mode == "Auto":
        decoded = strict_b64decode(value)
        if decoded is None or not value or not _is_canonical(value, decoded):
            return value
        return decoded
    raise InvalidSpec(f"key {quote_name(key)} has unknown decode mode {quote_name(mode)}")


def strict_b64decode(text: bytes) -> bytes | None:
    """The bytes ``text`` encodes in base64 (standard or URL-safe, not mixed; padding optional),
    or None when it is not base64."""
    if _STANDARD.fullmatch(text):
        alphabet_fixed = text
    elif _URL_SAFE.fullmatch(text):
        alphabet_fixed = text.translate(bytes.maketrans(b"-_", b"+/"))
    else:
        return None
    body = alphabet_fixed.rstrip(b"=")
    padding = len(alphabet_fixed) - len(body)
    if len(body) % 4 == 1 or (padding and (len(body) + padding) % 4 != 0):
        return None
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return None


def _is_canonical(text: bytes, decoded: bytes) -> bool:
    """Whether encoding ``decoded`` again gives ``text`` (modulo alphabet and padding), which
    rules out inputs whose unused trailing bits are set."""
    again = base64.b64encode(decoded).rstrip(b"=")
    return again == text.rstrip(b"=").translate(bytes.maketrans(b"-_", b"+/"))
