"""HMAC-SHA256 over the exact request body, sent as ``X-Rotor-Signature: sha256=<hex>`` (the
GitHub webhook convention, so existing senders and tools can produce it)."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(key: bytes, body: bytes) -> str:
    """The header value for ``body`` under ``key``."""
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``key``: constant-time, and False
    for a missing, malformed or empty-keyed header (an empty key authenticates nobody)."""
    if not key or not header:
        return False
    header = header.strip()
    if not header.lower().startswith(PREFIX):
        return False
    given = header[len(PREFIX) :].strip().lower()
    if len(given) != 64:
        return False
    expected = sign(key, body)[len(PREFIX) :]
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
