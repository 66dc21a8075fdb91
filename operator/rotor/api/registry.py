"""The kind -> model registry, and parsers for object bodies as kopf or the API hands them over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from rotor.api.resources import (
    ClusterManagedSecret,
    ClusterRotationPolicy,
    ClusterSecretStore,
    ManagedSecret,
    PushSecret,
    Resource,
    RotationPolicy,
    SecretStore,
)

__all__ = [
    "KINDS",
    "describe_errors",
    "parse_cluster_managed_secret",
    "parse_cluster_rotation_policy",
    "parse_cluster_secret_store",
    "parse_managed_secret",
    "parse_resource",
    "parse_rotation_policy",
    "parse_secret_store",
]

#: Every kind Rotor serves, in the order CRDs and docs list them.
KINDS: dict[str, type[Resource]] = {
    "ManagedSecret": ManagedSecret,
    "SecretStore": SecretStore,
    "ClusterSecretStore": ClusterSecretStore,
    "RotationPolicy": RotationPolicy,
    "ClusterRotationPolicy": ClusterRotationPolicy,
    "PushSecret": PushSecret,
    "ClusterManagedSecret": ClusterManagedSecret,
}

ResourceT = TypeVar("ResourceT", bound=Resource)


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    # kopf hands over Body/Spec views; pydantic wants plain dicts.
    return {k: body[k] for k in body}


def _parse(model: type[ResourceT], body: Mapping[str, Any]) -> ResourceT:
    return model.model_validate(_plain(body))


def parse_resource(body: Mapping[str, Any]) -> Resource:
    """Parse any Rotor object by its ``kind``. Raises ``KeyError`` for a kind Rotor does not serve and
    ``pydantic.ValidationError`` (whose messages suit an InvalidSpec condition) for a bad spec."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise KeyError(f"not a Rotor kind: {kind!r}")
    return _parse(KINDS[kind], body)


def parse_managed_secret(body: Mapping[str, Any]) -> ManagedSecret:
    return _parse(ManagedSecret, body)


def parse_cluster_managed_secret(body: Mapping[str, Any]) -> ClusterManagedSecret:
    return _parse(ClusterManagedSecret, body)


def parse_secret_store(body: Mapping[str, Any]) -> SecretStore:
    return _parse(SecretStore, body)


def parse_cluster_secret_store(body: Mapping[str, Any]) -> ClusterSecretStore:
    return _parse(ClusterSecretStore, body)


def parse_rotation_policy(body: Mapping[str, Any]) -> RotationPolicy:
    return _parse(RotationPolicy, body)


def parse_cluster_rotation_policy(body: Mapping[str, Any]) -> ClusterRotationPolicy:
    return _parse(ClusterRotationPolicy, body)


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """The first few problems of a spec, by field path (``spec.data.0.remoteRef.key: ...``).
    pydantic's messages name the rule, never the input value."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{loc}: {err['msg']}")
    return "; ".join(parts)
