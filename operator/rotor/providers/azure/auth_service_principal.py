"""A service principal's client secret, read from a Secret key (``ClientSecretCredential``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.identity import ClientSecretCredential

from rotor.providers.base import StoreAccess


@dataclass(frozen=True)
class ServicePrincipalAuth:
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    name = "servicePrincipal"

    def credential(self, authority: str | None, **transport: Any) -> ClientSecretCredential:
        extra: dict[str, Any] = {"authority": authority} if authority else {}
        if authority:
            # MSAL asks Microsoft's instance discovery about any authority it does not know
            extra["disable_instance_discovery"] = True
        return ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret, **extra, **transport
        )


async def from_spec(spec: Any, access: StoreAccess) -> ServicePrincipalAuth:
    """``auth.servicePrincipal``: tenantID, clientID and ``clientSecretRef``."""
    return ServicePrincipalAuth(
        tenant_id=spec.tenant_id,
        client_id=spec.client_id,
        client_secret=await access.secret(spec.client_secret_ref),
    )
