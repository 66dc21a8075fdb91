"""Keyed digests of Secret data, for change detection (DESIGN, lesson 6).

The digest is an HMAC, so ``status.dataHash`` and the Secret's ``rotor.dev/data-hash``
annotation never let anyone test guesses of a low-entropy value offline.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

DIGEST_PREFIX = "hmac-sha256:"
_DATA_DOMAIN = b"rotor.dev/data-hash/v1"
_CONSUMER_DOMAIN = b"rotor.dev/consumer-digest/v1"
_PRESENT = b"\x01"
_ABSENT = b"\x00"


def data_hash(
    data: Mapping[str, bytes],
    *,
    key: bytes,
    secret_type: str = "Opaque",  # noqa: S107 - a Secret type, not a password
    extra: Mapping[str, str] | None = None,
) -> str:
    """``hmac-sha256:<hex>`` over the Secret's type, its data, and ``extra`` (for example the
    labels and annotations Rotor writes), in a canonical encoding: sorted keys, every field
    length-prefixed, so no two different inputs encode the same."""
    mac = _new_mac(key, _DATA_DOMAIN)
    _field(mac, secret_type.encode("utf-8"))
    _mapping(mac, {name: bytes(value) for name, value in data.items()})
    _mapping(mac, {name: value.encode("utf-8") for name, value in (extra or {}).items()})
    return DIGEST_PREFIX + mac.hexdigest()


def consumer_digest(data: Mapping[str, bytes], keys: Iterable[str], *, key: bytes) -> str:
    """``hmac-sha256:<hex>`` over only ``keys`` of ``data``: what a workload consuming those keys
    sees. A listed key that is missing counts differently from one that is empty."""
    mac = _new_mac(key, _CONSUMER_DOMAIN)
    names = sorted(set(keys))
    _field(mac, len(names).to_bytes(8, "big"))
    for name in names:
        _field(mac, name.encode("utf-8"))
        if name in data:
            mac.update(_PRESENT)
            _field(mac, bytes(data[name]))
        else:
            mac.update(_ABSENT)
    return DIGEST_PREFIX + mac.hexdigest()


def _new_mac(key: bytes, domain: bytes) -> hmac.HMAC:
    if not key:
        raise ValueError("the data hash key must not be empty")
    mac = hmac.new(key, digestmod=hashlib.sha256)
    _field(mac, domain)
    return mac


def _mapping(mac: hmac.HMAC, items: Mapping[str, bytes]) -> None:
    _field(mac, len(items).to_bytes(8, "big"))
    for name in sorted(items):
        _field(mac, name.encode("utf-8"))
        _field(mac, items[name])


def _field(mac: hmac.HMAC, value: bytes) -> None:
    mac.update(len(value).to_bytes(8, "big"))
    mac.update(value)
