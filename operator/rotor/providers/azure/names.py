"""Key Vault's rules for secret names and version ids, checked before a request is made."""

from __future__ import annotations

import re

from rotor.providers.base import InvalidSpec

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Fa-f]{32}$")


def secret_name(key: str) -> str:
    if not _NAME.match(key):
        raise InvalidSpec(
            f"Azure Key Vault secret name '{key[:200]}' is not valid: 1-127 letters, digits and dashes "
            "(Key Vault has no folders; use dashes instead of '/')"
        )
    return key


def version_id(version: str | None) -> str | None:
    """A 32-hex-digit version id, or None for the current version (``latest`` and ``current`` too)."""
    if version is None or version.lower() in ("latest", "current", ""):
        return None
    if not _VERSION.match(version):
        raise InvalidSpec(
            f"Azure Key Vault version '{version[:100]}' is not valid: a version id is 32 hex digits "
            "(leave version out for the current one)"
        )
    return version.lower()
