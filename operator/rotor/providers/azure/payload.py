"""How values travel to and from Key Vault: a secret is text, which may hold a JSON object."""

from __future__ import annotations

import json
from typing import Any

from rotor.providers.base import InvalidConfig

Value = dict[str, Any] | bytes | str
JSON_CONTENT_TYPE = "application/json"


def json_object(text: str) -> dict[str, Any] | None:
    """The dict a text holds when it is a JSON object, else None."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None
    try:
        parsed = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def to_text(value: Value, key: str) -> tuple[str, str | None]:
    """(the text to store, its content type). Key Vault secrets hold text only."""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True), JSON_CONTENT_TYPE
    if isinstance(value, str):
        return value, None
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError:
        raise InvalidConfig(
            f"Azure Key Vault '{key}': the value is binary, and Key Vault secrets hold text only; "
            "encode it (e.g. base64)"
        ) from None
