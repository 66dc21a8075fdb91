"""What a ClusterManagedSecret wants (pure): which namespaces it selects, the ManagedSecret it
wants in each, which writes and deletions that takes, and the status that results.

Gather (services/fanout.py: the namespaces, the ManagedSecrets in the index), decide (here),
apply (services/fanout.py). Nothing here talks to a server or reads a clock.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rotor.api.clustermanagedsecret import MAX_FAILED_NAMESPACES, NAMESPACE_PLACEHOLDER
from rotor.api.names import API_VERSION, CLUSTER_MANAGED_BY_LABEL, TEMPLATE_HASH_ANNOTATION
from rotor.api.status import Reason
from rotor.conditions import STALLED_REASONS, get_condition, readiness_conditions
from rotor.tenancy import selector_matches

__all__ = [
    "Create",
    "Delete",
    "FanoutPlan",
    "NamespaceView",
    "Update",
    "covers",
    "desired_spec",
    "expand_namespace",
    "fanout_status",
    "managed_secret_name",
    "owned_by",
    "plan_fanout",
    "select_namespaces",
    "template_hash",
]

Body = dict[str, Any]


@dataclass(frozen=True)
class NamespaceView:
    name: str
    labels: Mapping[str, str]
    terminating: bool = False


@dataclass(frozen=True)
class Create:
    namespace: str
    body: Body


@dataclass(frozen=True)
class Update:
    namespace: str
    body: Body


@dataclass(frozen=True)
class Delete:
    namespace: str
    name: str
    #: the ManagedSecret's own uid (a precondition: never another object of that name)
    uid: str


@dataclass
class FanoutPlan:
    #: namespaces the CMS wants a ManagedSecret in (that exist and are not terminating)
    selected: list[str] = field(default_factory=list)
    #: namespaces named in spec.namespaces that do not exist
    missing: list[str] = field(default_factory=list)
    writes: list[Create | Update] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    #: namespace -> message: a ManagedSecret of that name that this CMS did not generate
    conflicts: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- selection
def select_namespaces(
    spec: Mapping[str, Any], namespaces: Mapping[str, NamespaceView]
) -> tuple[list[str], list[str]]:
    """(selected, missing): the namespaces the selector or the list picks that exist and are not
    terminating, and the listed ones that do not exist. Both sorted."""
    selector = spec.get("namespaceSelector")
    listed = set(spec.get("namespaces") or [])
    selected = {
        name
        for name, view in namespaces.items()
        if not view.terminating
        and (name in listed or (selector is not None and selector_matches(selector, view.labels)))
    }
    missing = sorted(n for n in listed if n not in namespaces)
    return sorted(selected), missing


# ---------------------------------------------------------------------------------------------- the copy
#: the remote-key fields of a ManagedSecret spec in which ``{namespace}`` is expanded
def _remote_key_fields(spec: Body) -> list[tuple[dict[str, Any], str]]:
    out: list[tuple[dict[str, Any], str]] = []
    for item in spec.get("data") or []:
        ref = item.get("remoteRef")
        if isinstance(ref, dict):
            out.append((ref, "key"))
    for entry in spec.get("dataFrom") or []:
        for kind, field_name in (("extract", "key"), ("find", "path"), ("vaultDynamic", "path")):
            sub = entry.get(kind)
            if isinstance(sub, dict):
                out.append((sub, field_name))
    return out


def expand_namespace(template: Mapping[str, Any], namespace: str) -> Body:
    """The template (a ManagedSecret spec, as on the wire) with ``{namespace}`` in its remote keys
    replaced by ``namespace``. Nothing else is expanded: a template's own ``{{ }}`` is untouched."""
    spec = copy.deepcopy(dict(template))
    for holder, name in _remote_key_fields(spec):
        value = holder.get(name)
        if isinstance(value, str):
            holder[name] = value.replace(NAMESPACE_PLACEHOLDER, namespace)
    return spec


def managed_secret_name(cms: Mapping[str, Any]) -> str:
    return str((cms.get("spec") or {}).get("managedSecretName") or cms["metadata"]["name"])


def template_hash(spec: Mapping[str, Any]) -> str:
    """A digest of a generated spec (not secret: a spec holds key names, never values)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def desired_spec(cms: Mapping[str, Any], namespace: str) -> Body:
    return expand_namespace((cms.get("spec") or {}).get("template") or {}, namespace)


def owned_by(body: Mapping[str, Any] | None, uid: str) -> bool:
    """Whether ``body`` is a ManagedSecret this ClusterManagedSecret (by uid) generated."""
    if body is None:
        return False
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("kind") == "ClusterManagedSecret" for r in refs)


def covers(stored: Any, wanted: Any) -> bool:
    """Whether ``stored`` holds everything ``wanted`` sets (the API server may add defaults)."""
    if isinstance(wanted, Mapping):
        return isinstance(stored, Mapping) and all(
            k in stored and covers(stored[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(covers(s, w) for s, w in zip(stored, wanted, strict=True))
        )
    return bool(stored == wanted)


def _owner_ref(cms: Mapping[str, Any]) -> dict[str, Any]:
    meta = cms["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterManagedSecret",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        # True would need permission on the CMS's finalizers, and blocks nothing Rotor needs
        "blockOwnerDeletion": False,
    }


def _new_body(cms: Mapping[str, Any], namespace: str, name: str, spec: Body) -> Body:
    return {
        "apiVersion": API_VERSION,
        "kind": "ManagedSecret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {CLUSTER_MANAGED_BY_LABEL: cms["metadata"]["name"]},
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(spec)},
            "ownerReferences": [_owner_ref(cms)],
        },
        "spec": spec,
    }


def _updated_body(cms: Mapping[str, Any], stored: Mapping[str, Any], spec: Body) -> Body:
    meta = copy.deepcopy(dict(stored.get("metadata") or {}))
    meta.setdefault("labels", {})[CLUSTER_MANAGED_BY_LABEL] = cms["metadata"]["name"]
    meta.setdefault("annotations", {})[TEMPLATE_HASH_ANNOTATION] = template_hash(spec)
    return {"apiVersion": API_VERSION, "kind": "ManagedSecret", "metadata": meta, "spec": spec}


def _current(cms: Mapping[str, Any], stored: Mapping[str, Any], spec: Body) -> bool:
    meta = stored.get("metadata") or {}
    return (
        (meta.get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION) == template_hash(spec)
        and (meta.get("labels") or {}).get(CLUSTER_MANAGED_BY_LABEL) == cms["metadata"]["name"]
        and covers(stored.get("spec"), spec)
    )


# ---------------------------------------------------------------------------------------------- the plan
def plan_fanout(
    cms: Mapping[str, Any],
    namespaces: Mapping[str, NamespaceView],
    lookup: Callable[[str, str], Body | None],
    generated: list[Body],
) -> FanoutPlan:
    """The writes and deletions that make the cluster what ``cms`` wants.

    ``lookup(namespace, name)`` is the ManagedSecret there now (None: none); ``generated`` are the
    ManagedSecrets labelled for this CMS (any name, any namespace). A ManagedSecret this CMS did
    not generate (by ownerReference uid) is never written: NameConflict. Generated ones in
    namespaces no longer selected, or under a previous managedSecretName, are deleted."""
    uid = cms["metadata"]["uid"]
    name = managed_secret_name(cms)
    selected, missing = select_namespaces(cms.get("spec") or {}, namespaces)
    plan = FanoutPlan(selected=selected, missing=missing)
    for namespace in selected:
        spec = desired_spec(cms, namespace)
        stored = lookup(namespace, name)
        if stored is None:
            plan.writes.append(Create(namespace, _new_body(cms, namespace, name, spec)))
        elif not owned_by(stored, uid):
            plan.conflicts[namespace] = (
                f"a ManagedSecret {namespace}/{name} exists that this ClusterManagedSecret did not "
                "generate; it is left as it is: rename or delete it, or set managedSecretName"
            )
        elif not _current(cms, stored, spec):
            plan.writes.append(Update(namespace, _updated_body(cms, stored, spec)))
    wanted = set(selected)
    for body in generated:
        meta = body.get("metadata") or {}
        if not owned_by(body, uid) or meta.get("deletionTimestamp"):
            continue
        if meta.get("namespace") not in wanted or meta.get("name") != name:
            plan.deletes.append(
                Delete(str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid") or ""))
            )
    return plan


# ---------------------------------------------------------------------------------------------- status
def _copy_state(body: Body | None) -> tuple[str, str, str, bool]:
    """(state, reason, message, stalled) of a generated ManagedSecret: ready, failed or pending.
    Its Ready condition counts only once it was computed for the spec it holds."""
    if body is None:
        return "pending", "", "", False
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    ready = get_condition(status.get("conditions"), "Ready")
    if ready is None or ready.get("observedGeneration", status.get("observedGeneration")) != generation:
        return "pending", "", "", False
    if ready.get("status") == "True":
        return "ready", "", "", False
    reason = str(ready.get("reason") or "")
    stalled = (get_condition(status.get("conditions"), "Stalled") or {}).get("status") == "True"
    return "failed", reason, str(ready.get("message") or ""), stalled


def fanout_status(
    cms: Mapping[str, Any],
    plan: FanoutPlan,
    copies: Mapping[str, Body | None],
    write_failures: Mapping[str, str],
    now: dt.datetime,
) -> Body:
    """The CMS's status after ``plan``: ``copies`` maps each selected namespace to its ManagedSecret
    as last seen (or written); ``write_failures`` maps namespaces whose write was refused to why."""
    failed: list[dict[str, str]] = []
    stalled = False
    ready = 0
    for namespace in plan.missing:
        failed.append(
            {
                "namespace": namespace,
                "reason": Reason.NAMESPACE_NOT_FOUND,
                "message": f"namespace {namespace} is listed in spec.namespaces but does not exist",
            }
        )
    for namespace in plan.selected:
        if namespace in plan.conflicts:
            failed.append(
                {"namespace": namespace, "reason": Reason.NAME_CONFLICT, "message": plan.conflicts[namespace]}
            )
            stalled = True
            continue
        if namespace in write_failures:
            failed.append(
                {"namespace": namespace, "reason": Reason.WRITE_FAILED, "message": write_failures[namespace]}
            )
            continue
        state, reason, message, copy_stalled = _copy_state(copies.get(namespace))
        if state == "ready":
            ready += 1
        elif state == "failed":
            failed.append({"namespace": namespace, "reason": reason, "message": message[:512]})
            stalled = stalled or copy_stalled or reason in STALLED_REASONS
    failed.sort(key=lambda f: f["namespace"])
    total = len(plan.selected) + len(plan.missing)
    generation = int(cms["metadata"].get("generation") or 0)
    if failed:
        shown = ", ".join(f"{f['namespace']} ({f['reason']})" for f in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        reason = Reason.NAMESPACES_FAILED if stalled else Reason.PROGRESSING
        message = (
            f"{len(failed)} of {total} namespaces failed: {shown}{more}; {ready} Ready "
            "(see status.failedNamespaces)"
        )
    elif ready == total:
        reason = Reason.SYNCED
        message = f"{total} namespaces Ready" if total else "no namespace is selected"
    else:
        reason = Reason.PROGRESSING
        message = f"{ready} of {total} namespaces Ready; waiting for the others"
    current = cms.get("status") or {}
    conditions = readiness_conditions(
        current.get("conditions") or [],
        ready=not failed and ready == total,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "namespaces": {"selected": total, "ready": ready, "failed": len(failed)},
        "failedNamespaces": failed[:MAX_FAILED_NAMESPACES],
    }


def invalid_status(cms: Mapping[str, Any], message: str, now: dt.datetime) -> Body:
    """InvalidSpec: the generated ManagedSecrets stay as they are (the last good state)."""
    current = dict(cms.get("status") or {})
    generation = int(cms["metadata"].get("generation") or 0)
    current["observedGeneration"] = generation
    current["conditions"] = readiness_conditions(
        current.get("conditions") or [],
        ready=False,
        reason=Reason.INVALID_SPEC,
        message=message,
        generation=generation,
        now=now,
    )
    return current
