"""How values travel to and from AWS: text that may hold a JSON object, or binary."""

from __future__ import annotations

import hmac
import json
from typing import Any

from rotor.providers.base import InvalidConfig

Value = dict[str, Any] | bytes | str


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


def to_text(value: Value) -> str | None:
    """The text form of a value; None for bytes that are not UTF-8 (binary)."""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def secretsmanager_value_params(value: Value) -> dict[str, Any]:
    """``SecretString`` for maps and text, ``SecretBinary`` for bytes."""
    if isinstance(value, bytes):
        return {"SecretBinary": value}
    text = to_text(value)
    return {"SecretString": text}


def parameter_text(value: Value, key: str) -> str:
    """Parameter Store holds text only."""
    text = to_text(value)
    if text is None:
        raise InvalidConfig(
            f"AWS SSM Parameter Store on '{key}': the value is binary, and parameters hold text only; "
            "encode it (e.g. base64) or use Secrets Manager"
        )
    return text


def same_value(expected: Value, text: str | None, binary: bytes | None) -> bool:
    """Does what AWS returned equal ``expected``? (constant-time on the bytes compared)"""
    if isinstance(expected, dict):
        return text is not None and json_object(text) == expected
    want = expected.encode("utf-8") if isinstance(expected, str) else expected
    got = binary if binary is not None else (text.encode("utf-8") if text is not None else None)
    return got is not None and hmac.compare_digest(want, got)
