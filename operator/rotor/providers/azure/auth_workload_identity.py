"""Workload identity, as AKS does it: a short-lived token of the store's ServiceAccount (audience
``api://AzureADTokenExchange``, from TokenRequest through the store service's port) is the client
assertion of a federated credential (``ClientAssertionCredential``). Rotor never presents its own
identity on a store's behalf, and no token file is needed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.identity import ClientAssertionCredential

from rotor.providers.base import StoreAccess

#: the audience Microsoft Entra expects of a federated Kubernetes token
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class WorkloadIdentityAuth:
    tenant_id: str
    client_id: str
    #: returns a fresh ServiceAccount JWT; blocking, called from a worker thread at each token request
    assertion: Callable[[], str] = field(repr=False, compare=False)
    #: which ServiceAccount ("namespace/name")
    service_account: str = ""
    name = "workloadIdentity"

    def credential(self, authority: str | None, **transport: Any) -> ClientAssertionCredential:
        extra: dict[str, Any] = {"authority": authority} if authority else {}
        return ClientAssertionCredential(self.tenant_id, self.client_id, self.assertion, **extra, **transport)


def from_spec(spec: Any, access: StoreAccess) -> WorkloadIdentityAuth:
    """``auth.workloadIdentity``: tenantID, clientID and ``serviceAccountRef`` (audiences default
    to ``api://AzureADTokenExchange``)."""
    ref = spec.service_account_ref
    namespace = ref.namespace_in(access.namespace)
    audiences = list(ref.audiences or [TOKEN_EXCHANGE_AUDIENCE])
    name = ref.name

    def assertion() -> str:
        return access.service_account_token(namespace, name, audiences)

    return WorkloadIdentityAuth(
        tenant_id=spec.tenant_id,
        client_id=spec.client_id,
        assertion=assertion,
        service_account=f"{namespace}/{name}",
    )
