"""What the services need from the layer above them, as small Protocols.

The controller owns the one in-memory index that every informer feeds and the work queue; the
services read the index and ask for work through these ports, never through the controller
itself. Keys are plain tuples so that every layer can spell them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

#: (namespace, name) of a ManagedSecret
ObjKey = tuple[str, str]
#: (kind, namespace or "" for cluster-scoped kinds, name) of a store
StoreKey = tuple[str, str, str]
#: (kind, namespace or "" for cluster-scoped kinds, name) of a rotation policy
PolicyKey = tuple[str, str, str]

Body = Mapping[str, Any]


def store_key_of(namespace: str, kind: str | None, name: str | None) -> StoreKey:
    """The store a namespaced object in ``namespace`` names with ``storeRef``."""
    kind = kind or "SecretStore"
    return (kind, "" if kind == "ClusterSecretStore" else namespace, name or "")


def policy_key_of(namespace: str, kind: str | None, name: str) -> PolicyKey:
    """The policy a namespaced object in ``namespace`` names with ``policyRef``."""
    kind = kind or "RotationPolicy"
    return (kind, "" if kind == "ClusterRotationPolicy" else namespace, name)


class ObjectIndex(Protocol):
    """Read-only view of the index: the newest body the watches delivered for each object."""

    def managed_secret(self, key: ObjKey) -> Body | None: ...

    def managed_secrets(self) -> Iterable[tuple[ObjKey, Body]]: ...

    def secret(self, namespace: str, name: str) -> Body | None:
        """A Secret that Rotor manages (label ``rotor.dev/managed-by``), as last seen."""

    def policy(self, key: PolicyKey) -> Body | None: ...

    def policies(self) -> Iterable[tuple[PolicyKey, Body]]: ...

    def policy_users(self, key: PolicyKey) -> set[ObjKey]:
        """ManagedSecrets whose ``rotation.policyRef`` names this policy."""

    def store_users(self, key: StoreKey) -> set[ObjKey]:
        """ManagedSecrets whose ``storeRef`` names this store."""


class ConfigMapCache(Protocol):
    """The ConfigMaps that ``template.from`` names, as the ConfigMap watch last delivered them. Only
    ConfigMaps some ManagedSecret uses are held; a miss is read from the apiserver and remembered."""

    def config_map(self, namespace: str, name: str) -> Body | None:
        """The ConfigMap as last seen, or None when it is not held (absent, or not seen yet)."""

    def remember_config_map(self, body: Mapping[str, Any]) -> None:
        """A ConfigMap just read: held if a ManagedSecret uses it (and it is not older than what is
        held)."""


class WorkScheduler(Protocol):
    """Asks the controller to reconcile an object again, and says whether this replica works now
    (holds the leader Lease, or runs without leader election)."""

    def requeue(self, key: ObjKey, *, urgent: bool) -> None: ...

    @property
    def leading(self) -> bool: ...


class SecretLedger(Protocol):
    """The services tell the index about the Secrets they have just written or released, so that
    the watch echo of Rotor's own write is recognised as such (and triggers no second sync)."""

    def wrote_secret(self, body: Mapping[str, Any]) -> None: ...

    def released_secret(self, namespace: str, name: str) -> None: ...
