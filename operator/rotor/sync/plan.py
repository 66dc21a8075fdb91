"""Compare the desired Secret with the one in the cluster and decide (pure):
Create, Patch, Recreate (type changed), Noop, or Conflict."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rotor.api.names import DATA_HASH_ANNOTATION as DATA_HASH
from rotor.api.names import MANAGED_BY_LABEL as MANAGED_BY
from rotor.api.names import MANAGED_KEYS_ANNOTATION as MANAGED_KEYS

# Kubernetes fills these itself; Rotor never writes them (DESIGN §7)
FORBIDDEN_TYPES = frozenset({"kubernetes.io/service-account-token"})


@dataclass(frozen=True)
class Desired:
    namespace: str
    name: str
    type: str
    data: Mapping[str, bytes]
    data_hash: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    creation_policy: str  # Owner | Merge | Orphan
    owner: Mapping[str, Any] | None  # the ManagedSecret: apiVersion, kind, name, uid
    managed_by: str  # the ManagedSecret's name


@dataclass(frozen=True)
class Plan:
    action: Literal["create", "patch", "recreate", "noop", "conflict"]
    body: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    #: the Secret's data was changed by someone else and is being restored
    restored: bool = False


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["name"],
        "uid": owner["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _metadata(desired: Desired) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": desired.name,
        "namespace": desired.namespace,
        "labels": {**desired.labels, MANAGED_BY: desired.managed_by},
        "annotations": {**desired.annotations, DATA_HASH: desired.data_hash},
    }
    if desired.creation_policy == "Owner" and desired.owner is not None:
        meta["ownerReferences"] = [_owner_ref(desired.owner)]
    return meta


def is_ours(actual: Mapping[str, Any], desired: Desired) -> bool:
    meta = actual.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY) != desired.managed_by:
        return False
    owner_uid = desired.owner.get("uid") if desired.owner else None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") != owner_uid:
            return False  # labelled like ours, but controlled by something else
    return True


def plan(desired: Desired, actual: Mapping[str, Any] | None) -> Plan:
    if desired.type in FORBIDDEN_TYPES:
        return Plan("conflict", message=f"Secret type {desired.type} cannot be a target")
    if desired.creation_policy == "Merge":
        return _plan_merge(desired, actual)
    if actual is None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(desired),
            "type": desired.type,
            "data": _b64(desired.data),
        }
        return Plan("create", body)
    if not is_ours(actual, desired):
        return Plan(
            "conflict",
            message=f"Secret '{desired.name}' already exists and is not managed by this ManagedSecret; "
            "delete or rename it, choose another target.name, or set target.creationPolicy: Merge",
        )
    meta = actual.get("metadata") or {}
    actual_type = actual.get("type") or "Opaque"
    if actual_type != desired.type:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(desired),
            "type": desired.type,
            "data": _b64(desired.data),
        }
        return Plan("recreate", body, message=f"type changes from {actual_type} to {desired.type}")
    actual_data = actual.get("data") or {}
    wanted = _b64(desired.data)
    data_same = actual_data == wanted
    hash_same = (meta.get("annotations") or {}).get(DATA_HASH) == desired.data_hash
    want_meta = _metadata(desired)
    labels_ok = all((meta.get("labels") or {}).get(k) == v for k, v in want_meta["labels"].items())
    ann_ok = all((meta.get("annotations") or {}).get(k) == v for k, v in want_meta["annotations"].items())
    owner_ok = True
    if "ownerReferences" in want_meta:
        owner_ok = any(r.get("uid") == desired.owner["uid"] for r in meta.get("ownerReferences") or [])  # type: ignore[index]
    if data_same and hash_same and labels_ok and ann_ok and owner_ok:
        return Plan("noop")
    patch_data: dict[str, str | None] = dict(wanted)
    for gone in set(actual_data) - set(wanted):
        patch_data[gone] = None
    patch: dict[str, Any] = {
        "metadata": {"labels": want_meta["labels"], "annotations": want_meta["annotations"]},
        "data": patch_data,
    }
    if not owner_ok:
        others = [r for r in meta.get("ownerReferences") or [] if not r.get("controller")]
        patch["metadata"]["ownerReferences"] = [*others, *want_meta["ownerReferences"]]
    return Plan("patch", patch, restored=hash_same and not data_same)


def _plan_merge(desired: Desired, actual: Mapping[str, Any] | None) -> Plan:
    if actual is None:
        return Plan(
            "conflict",
            message=f"creationPolicy Merge writes into an existing Secret, and '{desired.name}' does not exist; "
            "create it first or use creationPolicy Owner",
        )
    meta = actual.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    previous_keys = {k for k in (annotations.get(MANAGED_KEYS) or "").split(",") if k}
    actual_data = actual.get("data") or {}
    wanted = _b64(desired.data)
    keys_list = ",".join(sorted(desired.data))
    same = all(actual_data.get(k) == v for k, v in wanted.items())
    stale = previous_keys - set(wanted)
    if (
        same
        and not stale
        and annotations.get(DATA_HASH) == desired.data_hash
        and annotations.get(MANAGED_KEYS) == keys_list
    ):
        return Plan("noop")
    patch_data: dict[str, str | None] = dict(wanted)
    for gone in stale:
        patch_data[gone] = None
    return Plan(
        "patch",
        {
            "metadata": {"annotations": {DATA_HASH: desired.data_hash, MANAGED_KEYS: keys_list}},
            "data": patch_data,
        },
        restored=annotations.get(DATA_HASH) == desired.data_hash and not same,
    )
