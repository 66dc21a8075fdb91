"""Who may use which store and which remote keys (pure; DESIGN §1 ClusterSecretStore, §7)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def namespace_allowed(
    conditions: Iterable[Mapping[str, Any]], namespace: str, labels: Mapping[str, str] | None
) -> bool:
    """A ClusterSecretStore's ``conditions``: any one condition admitting the namespace is enough.
    No conditions means no namespace may use the store."""
    for cond in conditions:
        names = cond.get("namespaces")
        if names and namespace in names:
            return True
        selector = cond.get("namespaceSelector")
        if selector is not None and labels is not None and selector_matches(selector, labels):
            return True
    return False


#: a percent-escape such as %2F or %2e: a backend (or a proxy before it) may decode it into a '/'
#: or a dot segment after Rotor's check
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def key_problem(key: str) -> str | None:
    """Why a remote key is not in canonical form, or None when it is. Rotor checks a key against
    ``allowedKeys`` exactly as written, so it refuses any spelling a backend could resolve to
    another path: percent-escapes, empty segments (``a//b``), ``.`` and ``..`` segments,
    backslashes and control characters. One leading ``/`` is allowed (SSM parameter names)."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        return "a control character"
    if "\\" in key:
        return "a backslash"
    if _PERCENT_ESCAPE.search(key):
        return "a percent-escape (such as %2F); write the key as the backend stores it"
    parts = (key[1:] if key.startswith("/") else key).split("/")
    if any(part == "" for part in parts[:-1]):
        return "an empty path segment (//)"
    if any(part in (".", "..") for part in parts):
        return "a '.' or '..' path segment"
    return None


def key_is_safe(key: str) -> bool:
    """Whether a remote key is in canonical form (``key_problem``): no spelling that could escape
    a prefix once a backend normalises it."""
    return key_problem(key) is None


def key_allowed(allowed_keys: Iterable[str] | None, key: str, namespace: str) -> bool:
    """``allowedKeys`` globs, with ``{namespace}`` standing for the ManagedSecret's namespace.
    Absent (None) allows every key; an empty list allows none."""
    if allowed_keys is None:
        return key_is_safe(key)
    if not key_is_safe(key):
        return False
    normalized = key.lstrip("/")
    for pattern in allowed_keys:
        concrete = pattern.replace("{namespace}", namespace).lstrip("/")
        if fnmatch.fnmatchcase(normalized, concrete):
            return True
    return False
