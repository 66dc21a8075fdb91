"""Writing generated values back to the source (pure).

- Which source properties one rotated Secret key writes: the key itself, plus its companions
  (``<key>.pub`` for key pairs, the private key of a certificate: ``tls.crt`` -> ``tls.key``).
- How the new values are merged into what the remote path holds: every other property is kept.
- A keyed digest of the rotated properties, recorded in status before a write, so a restarted
  operator recognises its own write at the source (and never writes a second new value for one
  rotation) without the value ever being stored anywhere but the source. The digest is keyed with
  the operator's hash key, like ``status.dataHash``: it says nothing about the value to a reader.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rotor.rotation.errors import RotationError
from rotor.rotation.generators import certificate_key_name

KEY_PAIR_KINDS = frozenset({"rsaKeyPair", "ecKeyPair", "ed25519KeyPair"})
CERTIFICATE_KINDS = frozenset({"selfSignedCertificate", "vaultPKI"})
#: ``status.rotation.pendingVersion`` holds ``hmac:<digest>,<digest>...`` (one per remote path,
#: in sorted path order) while a rotation is Pending; the written versions afterwards.
DIGEST_PREFIX = "hmac:"
_PENDING_VERSION_MAX = 256
#: one rotation writes to at most this many remote paths (their digests must fit in status)
MAX_PATHS = 50
FAILED = "Failed"


@dataclass(frozen=True)
class Target:
    """Where one rotated Secret key lives at the source."""

    secret_key: str
    remote_key: str
    property: str | None  # None: the whole remote value


def companion_keys(kind: str | None, key: str) -> tuple[str, ...]:
    """The Secret keys a generator writes besides ``key``."""
    if kind in KEY_PAIR_KINDS:
        return (f"{key}.pub",)
    if kind in CERTIFICATE_KINDS:
        return (certificate_key_name(key),)
    return ()


def rotated_keys(kind: str | None, keys: Iterable[str]) -> list[str]:
    """``keys`` and their companions, in order, without repeats."""
    out: list[str] = []
    for key in keys:
        for name in (key, *companion_keys(kind, key)):
            if name not in out:
                out.append(name)
    return out


def written_properties(kind: str | None, target: Target) -> dict[str, str | None]:
    """Secret key -> source property for everything ``target`` writes (``None``: the whole
    value). ``RotationError`` when companions would need properties the whole value cannot hold."""
    companions = companion_keys(kind, target.secret_key)
    if target.property is None:
        if companions:
            raise RotationError(
                FAILED,
                f"rotation key '{target.secret_key}' is a whole remote value, but the generator also writes "
                f"{', '.join(companions)}: point it at a property (remoteRef.property) or use dataFrom.extract",
            )
        return {target.secret_key: None}
    out: dict[str, str | None] = {target.secret_key: target.property}
    for companion in companions:
        if companion == f"{target.secret_key}.pub":
            out[companion] = f"{target.property}.pub"
        else:
            out[companion] = certificate_key_name(target.property)
    return out


def properties_of(data: Mapping[str, Any] | None, raw: bytes | None) -> dict[str, Any] | None:
    """The property map a remote value holds (a KV map or a JSON object), ``{}`` when it is
    empty, ``None`` when it is an opaque non-JSON value."""
    if data is not None:
        return dict(data)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def merged_value(
    kind: str | None,
    targets: Sequence[Target],
    generated: Mapping[str, bytes],
    data: Mapping[str, Any] | None,
    raw: bytes | None,
) -> dict[str, Any] | str | bytes:
    """The new value of one remote path: the current properties with the rotated ones replaced,
    or the new whole value (text when it is UTF-8)."""
    whole = [t for t in targets if t.property is None]
    if whole:
        if len(targets) > 1:
            raise RotationError(
                FAILED,
                f"remote key '{targets[0].remote_key}' is used whole by rotation key '{whole[0].secret_key}' "
                "and cannot also hold other rotated keys",
            )
        value = generated[whole[0].secret_key]
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    base = properties_of(data, raw)
    if base is None:
        raise RotationError(
            FAILED,
            f"remote key '{targets[0].remote_key}' holds a plain value, not properties: it cannot take "
            f"property '{targets[0].property}'",
        )
    for target in targets:
        for secret_key, prop in written_properties(kind, target).items():
            assert prop is not None
            base[prop] = generated[secret_key].decode("utf-8")
    return base


def rotated_view(
    kind: str | None, targets: Sequence[Target], data: Mapping[str, Any] | None, raw: bytes | None
) -> dict[str, str]:
    """The rotated properties a remote value holds now (``""`` names the whole value)."""
    view: dict[str, str] = {}
    props = properties_of(data, raw)
    for target in targets:
        for prop in written_properties(kind, target).values():
            if prop is None:
                view[""] = (
                    (raw or b"").decode("utf-8", errors="replace")
                    if data is None
                    else json.dumps(data, sort_keys=True)
                )
            else:
                value = (props or {}).get(prop)
                view[prop] = "" if value is None else str(value)
    return view


def value_view(
    kind: str | None, targets: Sequence[Target], value: dict[str, Any] | str | bytes
) -> dict[str, str]:
    """``rotated_view`` of a value about to be written."""
    if isinstance(value, dict):
        return rotated_view(kind, targets, value, None)
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return rotated_view(kind, targets, None, raw)


def digest(key: bytes, view: Mapping[str, str], *, length: int = 16) -> str:
    """A keyed digest of the rotated properties (hex, ``length`` characters)."""
    message = json.dumps(sorted(view.items()), separators=(",", ":")).encode("utf-8")
    return hmac.new(key or b"rotor", message, hashlib.sha256).hexdigest()[:length]


def digest_length(paths: int) -> int:
    """The digest length that keeps ``paths`` digests (at most ``MAX_PATHS``) within
    ``pendingVersion``'s 256 characters: 16 hex characters, fewer for many paths."""
    room = (_PENDING_VERSION_MAX - len(DIGEST_PREFIX)) // max(1, paths) - 1
    return max(4, min(16, room))


def encode_digests(paths: Sequence[str], digests: Mapping[str, str]) -> str:
    return DIGEST_PREFIX + ",".join(digests.get(p, "") for p in sorted(paths))


def decode_digests(paths: Sequence[str], pending_version: str | None) -> dict[str, str]:
    """Path -> recorded digest; empty when nothing was recorded for these paths."""
    if not pending_version or not pending_version.startswith(DIGEST_PREFIX):
        return {}
    parts = pending_version[len(DIGEST_PREFIX) :].split(",")
    ordered = sorted(paths)
    if len(parts) != len(ordered):
        return {}
    return {p: d for p, d in zip(ordered, parts, strict=True) if d}


def same_digest(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a, b)
