"""What Rotor manages, as rows for people (pure): ManagedSecret objects (and the stores and policies
they name) in, ``rotor status`` and ``rotor report`` rows out.

Everything here comes from specs and statuses, which never hold secret values: the keys listed are
Secret key names and dataFrom sources, never data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rotor.api.secretstore import StoreProvider
from rotor.clock import parse_time
from rotor.conditions import get_condition

#: (kind, namespace or "" for cluster-scoped kinds, name)
ObjectKey = tuple[str, str, str]
ObjectIndex = Mapping[ObjectKey, Mapping[str, Any]]

CLUSTER_KINDS = frozenset({"ClusterSecretStore", "ClusterRotationPolicy"})
DEFAULT_STRATEGY = "Generate"  # RotationPolicySpec.strategy's default

RISK_EXPIRED = "expired"
RISK_EXPIRING = "expiring"
RISK_NOT_READY = "not-ready"
RISK_ROTATION_FAILED = "rotation-failed"
RISK_NO_ROTATION = "no-rotation"
RISK_OK = "ok"


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _rotation_status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _status(obj).get("rotation") or {}


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return get_condition(_status(obj).get("conditions"), type_) or {}


def object_key(kind: str, namespace: str, name: str) -> ObjectKey:
    return (kind, "" if kind in CLUSTER_KINDS else namespace, name)


# --------------------------------------------------------------------------- rotor status


@dataclass(frozen=True)
class StatusRow:
    namespace: str
    name: str
    ready: str  # True | False | Unknown
    reason: str
    message: str
    secret: str
    store: str
    not_after: dt.datetime | None
    renewal_time: dt.datetime | None
    next_rotation: dt.datetime | None
    rotation_phase: str
    last_sync: dt.datetime | None
    created: dt.datetime | None
    rotation: str = ""  # the Rotating condition's reason; "" when the ManagedSecret does not rotate
    rotation_message: str = ""


def rotation_health(ms: Mapping[str, Any]) -> tuple[str, str]:
    """(reason, message) of the Rotating condition: ``Failed`` when the last rotation failed,
    ``Succeeded``/``Scheduled`` at rest, the trigger while one runs; ("", "") without spec.rotation."""
    if not (ms.get("spec") or {}).get("rotation"):
        return "", ""
    rotating = _condition(ms, "Rotating")
    return str(rotating.get("reason") or ""), str(rotating.get("message") or "")


def rotation_failed(ms: Mapping[str, Any]) -> bool:
    rotating = _condition(ms, "Rotating")
    return (
        bool((ms.get("spec") or {}).get("rotation"))
        and rotating.get("status") == "False"
        and rotating.get("reason") == "Failed"
    )


def status_row(ms: Mapping[str, Any]) -> StatusRow:
    meta = ms.get("metadata") or {}
    spec = ms.get("spec") or {}
    status = _status(ms)
    ready = _condition(ms, "Ready")
    expiry = status.get("expiry") or {}
    rotation, rotation_message = rotation_health(ms)
    return StatusRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        ready=str(ready.get("status") or "Unknown"),
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
        secret=str(status.get("secretName") or (spec.get("target") or {}).get("name") or meta.get("name")),
        store=store_ref(spec),
        not_after=parse_time(expiry.get("notAfter")),
        renewal_time=parse_time(expiry.get("renewalTime")),
        next_rotation=parse_time(_rotation_status(ms).get("nextRotationTime")),
        rotation_phase=str(_rotation_status(ms).get("phase") or ""),
        last_sync=parse_time(status.get("lastSyncTime")),
        created=parse_time(meta.get("creationTimestamp")),
        rotation=rotation,
        rotation_message=rotation_message,
    )


def store_ref(spec: Mapping[str, Any]) -> str:
    ref = spec.get("storeRef") or {}
    return f"{ref.get('kind') or 'SecretStore'}/{ref.get('name') or ''}"


# --------------------------------------------------------------------------- rotor report


@dataclass(frozen=True)
class ReportRow:
    namespace: str
    name: str
    store: str  # kind/name
    provider: str  # vault | aws | "" when the store cannot be read
    keys: tuple[str, ...]
    source_versions: Mapping[str, str] = field(default_factory=dict)
    last_sync: dt.datetime | None = None
    last_rotation: dt.datetime | None = None
    rotation_policy: str = ""  # kind/name
    strategy: str = ""  # Generate | Provider | Observe | "" when unknown
    not_after: dt.datetime | None = None
    renewal_time: dt.datetime | None = None
    next_rotation: dt.datetime | None = None
    ready: str = "Unknown"
    reason: str = ""
    risk: str = RISK_OK
    rotation: str = ""  # the Rotating condition's reason; "" when the ManagedSecret does not rotate


def secret_keys(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The Secret's key names as the spec declares them; a dataFrom source, whose keys are known
    only once read, appears as a marker (``extract:apps/db``)."""
    keys: list[str] = [str(item.get("secretKey")) for item in spec.get("data") or []]
    for source in spec.get("dataFrom") or []:
        if source.get("extract"):
            keys.append(f"extract:{source['extract'].get('key')}")
        elif source.get("find"):
            find = source["find"]
            regexp = (find.get("name") or {}).get("regexp")
            keys.append(f"find:{find.get('path')}" + (f" ({regexp})" if regexp else ""))
        elif source.get("vaultDatabase"):
            db = source["vaultDatabase"]
            keys.append(f"vaultDatabase:{db.get('mount') or 'database'}/{db.get('role')}")
    template = spec.get("template") or {}
    names = list(template.get("data") or {})
    config_map = (template.get("from") or {}).get("configMap") or {}
    if config_map.get("key"):
        names.append(config_map.get("secretKey") or config_map["key"])
    for name in names:
        if name not in keys:
            keys.append(str(name))
    return tuple(keys)


#: the store spec's provider fields as spelled on the wire (vault, aws, azureKeyVault, ...)
PROVIDER_KINDS = tuple(f.alias or n for n, f in StoreProvider.model_fields.items())


def provider_of(store: Mapping[str, Any] | None) -> str:
    provider = ((store or {}).get("spec") or {}).get("provider") or {}
    for kind in PROVIDER_KINDS:
        if provider.get(kind) is not None:
            return kind
    return ""


def strategy_of(policy: Mapping[str, Any] | None) -> str:
    if policy is None:
        return ""
    return str((policy.get("spec") or {}).get("strategy") or DEFAULT_STRATEGY)


def risk_of(ms: Mapping[str, Any], now: dt.datetime) -> str:
    """The one word a reviewer sorts by, most urgent first: expired, expiring, not-ready,
    rotation-failed, no-rotation, ok."""
    expiring = _condition(ms, "Expiring")
    not_after = parse_time((_status(ms).get("expiry") or {}).get("notAfter"))
    if expiring.get("reason") == "Expired" or (not_after is not None and not_after <= now):
        return RISK_EXPIRED
    if expiring.get("status") == "True":
        return RISK_EXPIRING
    if _condition(ms, "Ready").get("status") != "True":
        return RISK_NOT_READY
    if rotation_failed(ms):
        return RISK_ROTATION_FAILED
    if not (ms.get("spec") or {}).get("rotation"):
        return RISK_NO_ROTATION
    return RISK_OK


def report_row(ms: Mapping[str, Any], objects: ObjectIndex, now: dt.datetime) -> ReportRow:
    meta = ms.get("metadata") or {}
    spec = ms.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    status = _status(ms)
    ref = spec.get("storeRef") or {}
    store_kind = str(ref.get("kind") or "SecretStore")
    store = objects.get(object_key(store_kind, namespace, str(ref.get("name") or "")))
    policy_ref = (spec.get("rotation") or {}).get("policyRef") or {}
    policy_kind = str(policy_ref.get("kind") or "RotationPolicy")
    policy_key = object_key(policy_kind, namespace, str(policy_ref.get("name") or ""))
    policy = objects.get(policy_key) if policy_ref else None
    expiry = status.get("expiry") or {}
    rotation = _rotation_status(ms)
    ready = _condition(ms, "Ready")
    return ReportRow(
        namespace=namespace,
        name=str(meta.get("name") or ""),
        store=store_ref(spec),
        provider=provider_of(store),
        keys=secret_keys(spec),
        source_versions={str(k): str(v) for k, v in sorted((status.get("sourceVersions") or {}).items())},
        last_sync=parse_time(status.get("lastSyncTime")),
        last_rotation=parse_time(rotation.get("lastRotationTime")),
        rotation_policy=f"{policy_kind}/{policy_ref.get('name')}" if policy_ref else "",
        strategy=strategy_of(policy) if policy_ref else "",
        not_after=parse_time(expiry.get("notAfter")),
        renewal_time=parse_time(expiry.get("renewalTime")),
        next_rotation=parse_time(rotation.get("nextRotationTime")),
        ready=str(ready.get("status") or "Unknown"),
        reason=str(ready.get("reason") or ""),
        risk=risk_of(ms, now),
        rotation=rotation_health(ms)[0],
    )


def report_rows(
    managed_secrets: Iterable[Mapping[str, Any]], objects: ObjectIndex, now: dt.datetime
) -> list[ReportRow]:
    rows = [report_row(ms, objects, now) for ms in managed_secrets]
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def index_objects(kind: str, items: Iterable[Mapping[str, Any]]) -> dict[ObjectKey, Mapping[str, Any]]:
    out: dict[ObjectKey, Mapping[str, Any]] = {}
    for item in items:
        meta = item.get("metadata") or {}
        out[object_key(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = item
    return out
