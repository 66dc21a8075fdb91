"""Pick Secret values out of what a backend returned: one property, or every property.

A remote secret is either a map (Vault KV data, a JSON object in AWS) or a raw value. Properties
are addressed by name; a dotted name walks nested maps (``db.password``), and a key that itself
contains dots wins over the walk. Values that are not strings are JSON-encoded, bytes stay bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rotor.values.errors import InvalidSpec, PropertyNotFound, ValidationFailed

#: Kubernetes Secret and ConfigMap key names (``IsConfigMapKey``).
SECRET_KEY_MAX_LENGTH = 253
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_SECRET_KEY_BAD_CHAR = re.compile(r"[^-._a-zA-Z0-9]")
#: how much of an offending name to quote in a message
_NAME_QUOTE_LIMIT = 80


def encode_property(value: Any) -> bytes:
    """One property as Secret bytes: strings as UTF-8, bytes as they are, the rest as JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def extract_property(
    data: Mapping[str, Any] | None, raw: bytes | None, prop: str | None, *, key: str
) -> bytes:
    """The value of ``prop`` in remote secret ``key``, or the whole secret when ``prop`` is None.

    ``data`` is the secret's map of properties when the backend gave one; otherwise ``raw`` is its
    value, and a raw value holding a JSON object is read as that map. Raises PropertyNotFound.
    """
    if prop is None:
        if raw is not None:
            return raw
        if data is not None:
            return encode_property(dict(data))
        raise PropertyNotFound(f"remote secret {quote_name(key)} has no value")
    properties = _as_map(data, raw)
    if properties is None:
        raise PropertyNotFound(
            f"property {quote_name(prop)} not found: remote secret {quote_name(key)} is not a JSON object"
        )
    found, value = _lookup(properties, prop.split(".") if prop else [prop])
    if not found:
        raise PropertyNotFound(f"property {quote_name(prop)} not found in remote secret {quote_name(key)}")
    return encode_property(value)


def flatten_map(data: Mapping[str, Any] | None, raw: bytes | None, *, key: str) -> dict[str, bytes]:
    """Every top-level property of remote secret ``key`` (``dataFrom.extract``).

    Raises ValidationFailed when the secret is not a map. Property names are returned as they are;
    check them with ``require_secret_key`` or ``sanitize_secret_key`` before writing.
    """
    properties = _as_map(data, raw)
    if properties is None:
        raise ValidationFailed(
            f"remote secret {quote_name(key)} is not a JSON object, so its properties cannot be extracted"
        )
    return {str(name): encode_property(value) for name, value in properties.items()}


def secret_key_is_valid(name: str) -> bool:
    """Whether Kubernetes accepts ``name`` as a key of a Secret's data."""
    return (
        0 < len(name) <= SECRET_KEY_MAX_LENGTH
        and _SECRET_KEY_RE.fullmatch(name) is not None
        and not name.startswith("..")
        and name != "."
    )


def sanitize_secret_key(name: str) -> str:
    """``name`` made into a legal Secret key: illegal characters become ``_``, then it is cut to
    253 characters. A name that is already legal is returned unchanged."""
    if secret_key_is_valid(name):
        return name
    cleaned = _SECRET_KEY_BAD_CHAR.sub("_", name)[:SECRET_KEY_MAX_LENGTH]
    if cleaned.startswith(".."):
        cleaned = "_" + cleaned[1:]
    if cleaned in ("", "."):
        cleaned = "_"
    return cleaned


def require_secret_key(name: str, *, source: str) -> str:
    """``name`` if it is a legal Secret key; otherwise InvalidSpec naming it and where it came from
    (for example ``"dataFrom.extract apps/db"``)."""
    if secret_key_is_valid(name):
        return name
    raise InvalidSpec(
        f"{quote_name(name)} from {source} is not a valid Secret key: use 1 to {SECRET_KEY_MAX_LENGTH} "
        "characters of letters, digits, '-', '_' and '.', not starting with '..'"
    )


def require_secret_keys(names: Iterable[str], *, source: str) -> None:
    """``require_secret_key`` for each of ``names``."""
    for name in names:
        require_secret_key(name, source=source)


def quote_name(name: str) -> str:
    """A name (key, property, path) quoted for a message, cut short when very long."""
    if len(name) > _NAME_QUOTE_LIMIT:
        return repr(name[:_NAME_QUOTE_LIMIT]) + "..."
    return repr(name)


def _as_map(data: Mapping[str, Any] | None, raw: bytes | None) -> Mapping[str, Any] | None:
    if data is not None:
        return data
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # nested past Python's limit: not a usable document
        return None
    return parsed if isinstance(parsed, dict) else None


def _lookup(node: Any, parts: list[str]) -> tuple[bool, Any]:
    """Find the property named by ``parts`` joined with dots, preferring the longest exact key at
    every level, so ``{"a.b": 1}`` answers ``a.b`` even when ``{"a": {"b": 2}}`` is also present."""
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        found, child = _child(node, name)
        if not found:
            continue
        if cut == len(parts):
            return True, child
        found, value = _lookup(child, parts[cut:])
        if found:
            return True, value
    return False, None


def _child(node: Any, name: str) -> tuple[bool, Any]:
    if isinstance(node, Mapping):
        if name in node:
            return True, node[name]
        return False, None
    if isinstance(node, list) and name.isdigit() and int(name) < len(node):
        return True, node[int(name)]
    return False, None
