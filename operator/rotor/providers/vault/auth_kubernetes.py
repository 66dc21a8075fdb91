"""Vault Kubernetes auth: log in as a Vault role with a fresh token of the ServiceAccount the store
names (TokenRequest, through the store service's port). Rotor never presents its own identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hvac

from rotor.providers.base import StoreAccess


@dataclass(frozen=True)
class KubernetesAuth:
    role: str
    #: returns a fresh ServiceAccount JWT; blocking, called from a worker thread at each login
    jwt: Callable[[], str] = field(repr=False, compare=False)
    mount: str = "kubernetes"
    #: which ServiceAccount, for the credentials' fingerprint ("namespace/name")
    service_account: str = ""
    name = "kubernetes"
    issues_tokens = True

    def login(self, client: hvac.Client) -> int:
        resp = client.auth.kubernetes.login(
            role=self.role, jwt=self.jwt(), mount_point=self.mount, use_token=True
        )
        return int(resp["auth"].get("lease_duration") or 0)


async def from_spec(spec: Any, access: StoreAccess) -> KubernetesAuth:
    """``auth.kubernetes``: the role, the auth mount and ``serviceAccountRef`` (with audiences)."""
    ref = spec.service_account_ref
    namespace = ref.namespace_in(access.namespace)
    audiences = list(ref.audiences or [])
    name = ref.name

    def jwt() -> str:
        return access.service_account_token(namespace, name, audiences)

    return KubernetesAuth(role=spec.role, jwt=jwt, mount=spec.mount, service_account=f"{namespace}/{name}")
