"""The receiver's JSON body, and how a notified name matches a key a ManagedSecret reads.

```json
{"store": {"kind": "SecretStore", "namespace": "team-a", "name": "vault"}, "keys": ["app/db"]}
```
``kind`` defaults to SecretStore; a ClusterSecretStore has no namespace. ``keys`` are the remote
keys as ManagedSecrets name them (``remoteRef.key``); for AWS an ARN matches its secret's name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from rotor.api.common import SpecModel
from rotor.api.registry import describe_errors

#: the largest body the receiver reads (a list of 100 long keys fits many times over)
MAX_BODY_BYTES = 64 * 1024
MAX_KEYS = 100

StoreKey = tuple[str, str, str]


class InvalidNotification(ValueError):
    """A body that is not a notification; the message says what to fix (no values in it)."""


class _StoreName(SpecModel):
    kind: Literal["SecretStore", "ClusterSecretStore"] = "SecretStore"
    namespace: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=253)]


class _Body(SpecModel):
    store: _StoreName
    keys: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=2048)]], Field(min_length=1, max_length=MAX_KEYS)
    ]


@dataclass(frozen=True)
class Notification:
    store: StoreKey
    keys: tuple[str, ...]


def parse_notification(body: bytes) -> Notification:
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidNotification("the body is not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidNotification('the body must be an object: {"store": {...}, "keys": [...]}')
    try:
        parsed = _Body.model_validate(raw)
    except ValidationError as exc:
        # pydantic's messages name the rule, never the input value
        raise InvalidNotification(describe_errors(exc).replace("spec.", "")) from None
    store = parsed.store
    if store.kind == "SecretStore" and store.namespace is None:
        raise InvalidNotification("store.namespace is required for a SecretStore")
    if store.kind == "ClusterSecretStore" and store.namespace is not None:
        raise InvalidNotification("a ClusterSecretStore has no namespace; leave store.namespace out")
    keys = tuple(dict.fromkeys(parsed.keys))
    return Notification((store.kind, store.namespace or "", store.name), keys)


_ARN = re.compile(r"^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)$")
#: Secrets Manager appends a hyphen and six random characters to a secret's name in its ARN
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


def _names(identifier: str) -> set[str]:
    """The names ``identifier`` may stand for: itself, and for a Secrets Manager ARN the secret's
    name with and without the random suffix."""
    found = {identifier}
    match = _ARN.match(identifier)
    if match:
        name = match.group("name")
        found.add(name)
        found.add(_SUFFIX.sub("", name))
    return found


def names_match(notified: str, key: str) -> bool:
    """Whether a notified identifier (a key, a name or an ARN) names the key a ManagedSecret reads
    (itself a name or an ARN)."""
    if notified == key:
        return True
    if _ARN.match(key) and _ARN.match(notified):
        return False  # two different full ARNs are different secrets
    return bool(_names(notified) & _names(key))
