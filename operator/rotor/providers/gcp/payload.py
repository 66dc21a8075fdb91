"""How values travel to and from Secret Manager: bytes, which may hold a JSON object."""

from __future__ import annotations

import json
from typing import Any

Value = dict[str, Any] | bytes | str


def json_object(data: bytes) -> dict[str, Any] | None:
    """The dict the bytes hold when they are a UTF-8 JSON object, else None."""
    stripped = data.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        parsed = json.loads(stripped.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def to_bytes(value: Value) -> bytes:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    if isinstance(value, str):
        return value.encode("utf-8")
    return value
