"""Status written by Rotor checked against the status models (rotor.api.status): every field is
one the models know, every value parses, and every condition reason is a member of Reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from rotor.api.status import ManagedSecretStatus, Reason, RotationPolicyStatus, SecretStoreStatus

MODELS: dict[str, type[BaseModel]] = {
    "managedsecrets": ManagedSecretStatus,
    "secretstores": SecretStoreStatus,
    "clustersecretstores": SecretStoreStatus,
    "rotationpolicies": RotationPolicyStatus,
    "clusterrotationpolicies": RotationPolicyStatus,
}
REASONS = {r.value for r in Reason}


def _unknown(model: type[BaseModel], value: Mapping[str, Any], where: str) -> list[str]:
    """Fields in ``value`` that the model (and its nested models) do not declare."""
    known: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        known[field.alias or name] = field.annotation
    out: list[str] = []
    for key, item in value.items():
        if key not in known:
            out.append(f"{where}.{key}")
            continue
        nested = _model_of(known[key])
        if nested is not None and isinstance(item, Mapping):
            out += _unknown(nested, item, f"{where}.{key}")
        elif nested is not None and isinstance(item, list):
            for i, element in enumerate(item):
                if isinstance(element, Mapping):
                    out += _unknown(nested, element, f"{where}.{key}[{i}]")
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def status_problems(plural: str, obj: Mapping[str, Any]) -> list[str]:
    """What is wrong with one object's status (empty: it matches the models)."""
    meta = obj.get("metadata") or {}
    who = f"{plural} {meta.get('namespace') or ''}/{meta.get('name')}"
    status = obj.get("status")
    if not status:
        return []
    model = MODELS[plural]
    problems: list[str] = []
    try:
        model.model_validate(status)
    except ValidationError as exc:
        problems.append(f"{who}: {exc.error_count()} invalid field(s): {[e['loc'] for e in exc.errors()]}")
    problems += [f"{who}: unknown field {f}" for f in _unknown(model, status, "status")]
    for cond in status.get("conditions") or []:
        if cond.get("reason") not in REASONS:
            problems.append(f"{who}: condition {cond.get('type')} has reason {cond.get('reason')!r}")
    return problems


async def cluster_status_problems(cluster: Any) -> tuple[int, list[str]]:
    """(objects checked, problems) over every Rotor object in the cluster."""
    checked, problems = 0, []
    for plural in MODELS:
        objs = await cluster.custom.list_cluster_custom_object("rotor.dev", "v1alpha1", plural)
        for obj in objs.get("items", []):
            checked += 1
            problems += status_problems(plural, obj)
    return checked, problems
