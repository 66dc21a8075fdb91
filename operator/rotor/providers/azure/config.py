"""Plain configuration of one Azure Key Vault store, built from the store spec's
``provider.azureKeyVault`` section, one auth method per module (``auth_service_principal``,
``auth_workload_identity``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from rotor.providers.azure import auth_service_principal, auth_workload_identity
from rotor.providers.azure.auth_service_principal import ServicePrincipalAuth
from rotor.providers.azure.auth_workload_identity import WorkloadIdentityAuth
from rotor.providers.base import InvalidConfig, StoreAccess

AzureAuth = ServicePrincipalAuth | WorkloadIdentityAuth

#: the hosts of Key Vault's own clouds (public, China, US Government, managed HSM)
AZURE_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
)


@dataclass(frozen=True)
class AzureConfig:
    vault_url: str
    store_id: str  # "<kind>/<namespace>/<name>", for messages and metrics
    auth: AzureAuth
    #: Microsoft Entra authority; None: the SDK's default (login.microsoftonline.com)
    authority_host: str | None = None
    #: Key Vault REST api-version; None: the SDK's default
    api_version: str | None = None
    #: HTTP retries of the SDK itself on 429/5xx/connection errors (azure-core RetryPolicy)
    retry_total: int = 2
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    @property
    def verify_challenge_resource(self) -> bool:
        """The SDK checks that the bearer challenge's resource matches the vault's domain; that
        only holds for Azure's own hosts (a private endpoint keeps them; a test server does not)."""
        host = (urlparse(self.vault_url).hostname or "").lower()
        return host.endswith(AZURE_VAULT_SUFFIXES)


async def _auth(spec: Any, access: StoreAccess) -> AzureAuth:
    if spec.service_principal is not None:
        return await auth_service_principal.from_spec(spec.service_principal, access)
    if spec.workload_identity is not None:
        return auth_workload_identity.from_spec(spec.workload_identity, access)
    raise InvalidConfig("Azure Key Vault store has no auth method (workloadIdentity or servicePrincipal)")


async def configure(spec: Any, access: StoreAccess) -> AzureConfig:
    """``spec`` is the store's ``provider.azureKeyVault`` (``rotor.api.secretstore.AzureKeyVaultProvider``)."""
    return AzureConfig(
        vault_url=spec.vault_url.rstrip("/"),
        store_id=access.store_id,
        auth=await _auth(spec.auth, access),
        authority_host=spec.authority_host,
    )
