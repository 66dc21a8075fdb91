"""What a PushSecret pushes, and whether it may (pure; DESIGN §11, docs/push.md).

- Which remote keys and properties the spec writes (``targets``), and the keyed digest of the
  data pushed with where it goes (``push_hash``): a push happens when it changes.
- The value a remote key gets (``desired_value``): the pushed properties merged into what the
  remote holds, or the whole value.
- Per remote key, from the remote's current version and the version Rotor pushed last
  (``decide``): nothing to do, write (check-and-set on the version read, or create-only), or a
  ``RemoteConflict`` that writes nothing.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rotor.api.pushsecret import PushSecretSpec
from rotor.rotation.writeback import properties_of
from rotor.values.hashing import data_hash

#: the Secret type fed to the data hash, so a push digest never equals a Secret's
_HASH_DOMAIN = "rotor.dev/push"


@dataclass(frozen=True)
class PushTarget:
    """One Secret key going to one remote key (and property; None: the whole value)."""

    secret_key: str
    remote_key: str
    property: str | None


class PushProblem(Exception):
    """A push that cannot be made as asked: a documented reason and a message (never a value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def targets(spec: PushSecretSpec, *, maps_only: bool) -> dict[str, list[PushTarget]]:
    """Remote key -> what goes there, in spec order. A store that holds maps only (Vault KV)
    takes a whole-value entry as the property named like its secretKey."""
    out: dict[str, list[PushTarget]] = {}
    for item in spec.data:
        prop = item.remote_ref.property
        if prop is None and maps_only:
            prop = item.secret_key
        out.setdefault(item.remote_ref.key, []).append(PushTarget(item.secret_key, item.remote_ref.key, prop))
    return out


def missing_keys(spec: PushSecretSpec, data: Mapping[str, bytes]) -> list[str]:
    return [item.secret_key for item in spec.data if item.secret_key not in data]


def push_hash(by_key: Mapping[str, Sequence[PushTarget]], data: Mapping[str, bytes], *, key: bytes) -> str:
    """Keyed digest of every pushed value with its destination (never the value itself)."""
    pushed = {
        json.dumps([t.remote_key, t.property]): bytes(data[t.secret_key])
        for group in by_key.values()
        for t in group
    }
    return data_hash(pushed, key=key, secret_type=_HASH_DOMAIN)


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def desired_value(
    group: Sequence[PushTarget],
    data: Mapping[str, bytes],
    current: tuple[Mapping[str, Any] | None, bytes | None] | None,
) -> dict[str, Any] | str | bytes:
    """The new value of one remote key. ``current`` is (data, raw) as the remote holds it now,
    None when it does not exist."""
    if len(group) == 1 and group[0].property is None:
        return _text(data[group[0].secret_key])
    base: dict[str, Any] | None = {} if current is None else properties_of(*current)
    if base is None:
        raise PushProblem(
            "RemoteConflict",
            f"remote key '{group[0].remote_key}' holds a plain value, not properties: it cannot take "
            f"property '{group[0].property}' (push it whole, without remoteRef.property, or use another key)",
        )
    for target in group:
        assert target.property is not None
        value = _text(data[target.secret_key])
        if isinstance(value, bytes):
            raise PushProblem(
                "InvalidSpec",
                f"Secret key '{target.secret_key}' is binary: a property holds text only; push it whole "
                "(without remoteRef.property) to a store that keeps binary values (AWS Secrets Manager)",
            )
        base[target.property] = value
    return base


def holds(
    group: Sequence[PushTarget],
    data: Mapping[str, bytes],
    current: tuple[Mapping[str, Any] | None, bytes | None] | None,
) -> bool:
    """Does the remote already hold exactly the pushed values?"""
    if current is None:
        return False
    remote_data, raw = current
    if len(group) == 1 and group[0].property is None:
        want = bytes(data[group[0].secret_key])
        if raw is not None:
            return hmac.compare_digest(raw, want)
        if remote_data is not None:
            return False
        return want == b""
    props = properties_of(remote_data, raw)
    if props is None:
        return False
    for target in group:
        have = props.get(target.property or "")
        if not isinstance(have, str) or not hmac.compare_digest(
            have.encode("utf-8"), bytes(data[target.secret_key])
        ):
            return False
    return True


Action = Literal["none", "write", "conflict"]


@dataclass(frozen=True)
class KeyDecision:
    action: Action
    #: write only: the version read, for check-and-set (None with ``create``)
    cas: str | None = None
    #: write only: the remote key does not exist; create it, never overwrite
    create: bool = False
    #: write only: the remote version someone else wrote since Rotor's last push (Replace)
    overwrites: str | None = None
    message: str = ""


def decide(
    remote_key: str,
    policy: str,
    *,
    exists: bool,
    current_version: str | None,
    recorded_version: str | None,
    in_sync: bool,
) -> KeyDecision:
    """What to do with one remote key (the Secret's values already differ, or not: ``in_sync``)."""
    if not exists:
        return KeyDecision("write", create=True)
    if in_sync:
        return KeyDecision("none")
    foreign = recorded_version is None or current_version != recorded_version
    if policy == "IfNotExists":
        if foreign:
            why = (
                "exists and was not written by this PushSecret"
                if recorded_version is None
                else f"was changed by someone else since Rotor pushed version {recorded_version} "
                f"(it is at version {current_version})"
            )
        else:
            why = "exists (Rotor pushed it), and the Secret has changed since"
        return KeyDecision(
            "conflict",
            message=f"remote key '{remote_key}' {why}; updatePolicy IfNotExists never overwrites an "
            "existing remote value: delete it at the store, or use updatePolicy Replace",
        )
    overwrites = current_version if recorded_version is not None and foreign else None
    return KeyDecision("write", cas=current_version, overwrites=overwrites)


def remaining_after_delete(
    group: Sequence[PushTarget], current: tuple[Mapping[str, Any] | None, bytes | None]
) -> dict[str, Any] | None:
    """What a remote key keeps once the pushed properties are removed; None when nothing is left
    (or it was pushed whole): the key is deleted."""
    if any(t.property is None for t in group):
        return None
    props = properties_of(*current)
    if props is None:
        return None
    rest = {k: v for k, v in props.items() if k not in {t.property for t in group}}
    return rest or None
