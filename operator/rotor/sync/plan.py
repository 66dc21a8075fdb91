"""Compare the desired Secret with the one in the cluster and decide (pure):
Create, Patch, Recreate (type changed), Noop, or Conflict."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rotor.api.names import DATA_HASH_ANNOTATION as DATA_HASH
from rotor.api.names import MANAGED_BY_LABEL as MANAGED_BY
from rotor.api.names import MANAGED_KEYS_ANNOTATION as MANAGED_KEYS
from rotor.api.names import MANAGED_KEYS_PREFIX, WRITER_DATA_HASH_PREFIX, writer_annotation

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


def _keys(value: str | None) -> set[str]:
    return {k for k in (value or "").split(",") if k}


def merge_writers(annotations: Mapping[str, str]) -> dict[str, set[str]]:
    """Who owns which keys of a Merge Secret: writer (the ManagedSecret's name as its annotation
    spells it) -> keys, from the ``rotor.dev/managed-keys.<name>`` annotations."""
    return {
        name[len(MANAGED_KEYS_PREFIX) :]: _keys(value)
        for name, value in annotations.items()
        if name.startswith(MANAGED_KEYS_PREFIX)
    }


def _claimed_elsewhere(desired: Desired, annotations: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, other writer) for each key this writer wants that another Merge writer owns, where
    this one is the later claimant: it does not own the key yet, or (both recorded, which only a
    hand edit makes) its name sorts after the other's."""
    own_annotation = writer_annotation(MANAGED_KEYS_PREFIX, desired.managed_by)
    me = own_annotation[len(MANAGED_KEYS_PREFIX) :]
    mine = _keys(annotations.get(own_annotation))
    clashes: list[tuple[str, str]] = []
    for writer, keys in sorted(merge_writers(annotations).items()):
        if writer == me:
            continue
        for key in sorted(keys & set(desired.data)):
            if key not in mine or me > writer:
                clashes.append((key, writer))
    return clashes


def _plan_merge(desired: Desired, actual: Mapping[str, Any] | None) -> Plan:
    """Write this ManagedSecret's keys into someone else's Secret, beside other writers' keys.

    Each Merge writer records its keys and their data hash in annotations of its own
    (``rotor.dev/managed-keys.<name>``, ``rotor.dev/data-hash.<name>``), removes only keys it
    owns, and never takes a key another writer owns: that is a conflict for the later one. The
    patch is conditional on the resourceVersion read, so two writers cannot claim one key at once.
    The single ``rotor.dev/managed-keys`` annotation of earlier versions is migrated: each writer
    takes the keys it writes out of it, and it goes when it is empty (keys no writer takes stay)."""
    if actual is None:
        return Plan(
            "conflict",
            message=f"creationPolicy Merge writes into an existing Secret, and '{desired.name}' does not exist; "
            "create it first or use creationPolicy Owner",
        )
    meta = actual.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    clashes = _claimed_elsewhere(desired, annotations)
    if clashes:
        named = "; ".join(f"key '{key}' is written by ManagedSecret '{other}'" for key, other in clashes[:5])
        return Plan(
            "conflict",
            message=f"Secret '{desired.name}' (creationPolicy Merge): {named}. One key has one writer: "
            "remove the key from one ManagedSecret (or rename it with secretKey), or give one a target.name "
            "of its own",
        )
    keys_annotation = writer_annotation(MANAGED_KEYS_PREFIX, desired.managed_by)
    hash_annotation = writer_annotation(WRITER_DATA_HASH_PREFIX, desired.managed_by)
    others = set().union(*merge_writers(annotations).values()) - _keys(annotations.get(keys_annotation))
    mine = _keys(annotations.get(keys_annotation))
    legacy = _keys(annotations.get(MANAGED_KEYS))
    actual_data = actual.get("data") or {}
    wanted = _b64(desired.data)
    keys_list = ",".join(sorted(desired.data))
    same = all(actual_data.get(k) == v for k, v in wanted.items())
    stale = mine - set(wanted) - others
    legacy_left = legacy - set(wanted)
    if (
        same
        and not stale
        and legacy_left == legacy
        and annotations.get(hash_annotation) == desired.data_hash
        and annotations.get(keys_annotation) == keys_list
        and DATA_HASH not in annotations
    ):
        return Plan("noop")
    patch_data: dict[str, str | None] = dict(wanted)
    for gone in stale:
        patch_data[gone] = None
    patch_annotations: dict[str, str | None] = {
        keys_annotation: keys_list,
        hash_annotation: desired.data_hash,
    }
    if legacy:
        patch_annotations[MANAGED_KEYS] = ",".join(sorted(legacy_left)) or None
    if DATA_HASH in annotations:
        patch_annotations[DATA_HASH] = None  # one hash for all writers is nobody's
    patch_meta: dict[str, Any] = {"annotations": patch_annotations}
    if meta.get("resourceVersion"):
        patch_meta["resourceVersion"] = meta["resourceVersion"]  # the write fails if another came first
    return Plan(
        "patch",
        {"metadata": patch_meta, "data": patch_data},
        restored=annotations.get(hash_annotation) == desired.data_hash and not same,
    )


def merge_release(actual: Mapping[str, Any], managed_secret: str, *, delete_keys: bool) -> dict[str, Any]:
    """The patch that lets a Merge Secret go when its ManagedSecret is deleted: its own
    annotations removed and, with deletionPolicy Delete, its own keys; other writers' keys and
    annotations stay."""
    annotations = (actual.get("metadata") or {}).get("annotations") or {}
    keys_annotation = writer_annotation(MANAGED_KEYS_PREFIX, managed_secret)
    patch: dict[str, Any] = {
        "metadata": {
            "annotations": {
                keys_annotation: None,
                writer_annotation(WRITER_DATA_HASH_PREFIX, managed_secret): None,
            }
        }
    }
    mine = _keys(annotations.get(keys_annotation))
    if delete_keys and mine:
        patch["data"] = dict.fromkeys(sorted(mine))
    return patch


def refused_message(desired: Desired, detail: str) -> str:
    """Why the apiserver refused the Secret (422 Invalid: data its type does not accept, such as
    a kubernetes.io/tls Secret without tls.key), for a person: the spec must produce what the
    type requires. ``detail`` is the apiserver's message: it names fields and keys and redacts
    data, but a JSON error can quote a character of the value, so invalid values and quoted
    characters are cut out."""
    detail = re.sub(r'Invalid value: "[^"]*"', "Invalid value", detail)
    detail = re.sub(r"character '.{0,4}?'", "character", detail)
    return (
        f"the Kubernetes API refused Secret '{desired.name}' of type {desired.type} ({detail}); "
        "the keys and values the type requires must be produced by spec.data, dataFrom or "
        "spec.template (for example tls.crt and tls.key for kubernetes.io/tls), or set "
        "target.type to Opaque. The last good Secret is kept"
    )
