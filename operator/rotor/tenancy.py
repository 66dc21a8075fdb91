"""Who may use which store and which remote keys (pure; DESIGN §1 ClusterSecretStore, §7)."""

from __future__ import annotations

import fnmatch
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


def key_is_safe(key: str) -> bool:
    """Refuse remote keys that could escape a prefix once a backend normalises them."""
    parts = key.split("/")
    return ".." not in parts and "." not in parts[1:] and "\\" not in key and "\x00" not in key


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
