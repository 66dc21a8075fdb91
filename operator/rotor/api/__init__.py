"""Rotor's API (group rotor.dev, version v1alpha1): the pydantic models are the one source of truth.

``python -m rotor.api.crdgen`` renders them into ``crds/`` and ``docs/reference/``.
"""

from rotor.api.duration import format_duration, parse_duration
from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import API_VERSION, GROUP, VERSION
from rotor.api.registry import (
    KINDS,
    parse_cluster_rotation_policy,
    parse_cluster_secret_store,
    parse_managed_secret,
    parse_resource,
    parse_rotation_policy,
    parse_secret_store,
)
from rotor.api.resources import (
    ClusterRotationPolicy,
    ClusterSecretStore,
    ManagedSecret,
    Resource,
    RotationPolicy,
    SecretStore,
)
from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.api.secretstore import ClusterSecretStoreSpec, SecretStoreSpec
from rotor.api.status import (
    Condition,
    ConditionType,
    ManagedSecretStatus,
    Reason,
    RotationPolicyStatus,
    SecretStoreStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "ClusterRotationPolicy",
    "ClusterSecretStore",
    "ClusterSecretStoreSpec",
    "Condition",
    "ConditionType",
    "ManagedSecret",
    "ManagedSecretSpec",
    "ManagedSecretStatus",
    "Reason",
    "Resource",
    "RotationPolicy",
    "RotationPolicySpec",
    "RotationPolicyStatus",
    "SecretStore",
    "SecretStoreSpec",
    "SecretStoreStatus",
    "format_duration",
    "parse_cluster_rotation_policy",
    "parse_cluster_secret_store",
    "parse_duration",
    "parse_managed_secret",
    "parse_resource",
    "parse_rotation_policy",
    "parse_secret_store",
]
