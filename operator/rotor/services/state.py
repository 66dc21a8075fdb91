"""State shared by the reconcile services: what one reconcile read from the backend, and keeping
an in-memory ManagedSecret in step with the status just written. (Its own module so that sync,
rotation and rollout depend on it and not on each other.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rotor.providers.base import RemoteRef, RemoteSecret

if TYPE_CHECKING:
    from rotor.services.leases import Gathered


@dataclass
class Fetched:
    """The backend values one reconcile read."""

    refs: dict[RemoteRef, RemoteSecret] = field(default_factory=dict)
    #: dataFrom index of a find -> remote name relative to its path -> value
    found: dict[int, dict[str, RemoteSecret]] = field(default_factory=dict)
    databases: dict[tuple[str, str], RemoteSecret] = field(default_factory=dict)
    #: the dynamic source (dataFrom.vaultDynamic): its credentials and lease
    lease: Gathered | None = None
    #: remote keys read as KeyNotFound that the rotation policy may create (createIfMissing);
    #: they join ``refs`` once created
    missing: set[RemoteRef] = field(default_factory=set)

    def provider_expiry(self) -> datetime | None:
        """The earliest expiry the backend gave any of the values read (``RemoteSecret.expires``)."""
        found = [v for entry in self.found.values() for v in entry.values()]
        values = [*self.refs.values(), *found, *self.databases.values()]
        return min((v.expires for v in values if v.expires is not None), default=None)


def absorb(body: dict[str, Any], stored: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> None:
    """Keep the in-memory object in step with what was just written, so that older watch events
    arriving afterwards are recognised as older and never acted on."""
    if stored is not None:
        body["status"] = stored.get("status") or {}
        body["metadata"]["resourceVersion"] = stored["metadata"].get("resourceVersion")
    else:
        body["status"] = {**(body.get("status") or {}), **patch}


def object_id(body: Mapping[str, Any]) -> str:
    """``namespace/name`` of a namespaced object, as logs and audit lines name it."""
    meta = body["metadata"]
    return f"{meta.get('namespace')}/{meta['name']}"
