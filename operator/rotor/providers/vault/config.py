"""What a Vault provider needs, built from the store spec's ``provider.vault`` section (the
credentials read through the store service's port), one auth method per module."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from rotor.providers.base import InvalidConfig, StoreAccess
from rotor.providers.vault import auth_approle, auth_kubernetes, auth_token
from rotor.providers.vault.auth_approle import AppRoleAuth
from rotor.providers.vault.auth_kubernetes import KubernetesAuth
from rotor.providers.vault.auth_token import TokenAuth

VaultAuth = TokenAuth | AppRoleAuth | KubernetesAuth


@dataclass(frozen=True)
class VaultConfig:
    server: str
    store_id: str  # "<kind>/<namespace>/<name>", for messages and metrics
    auth: VaultAuth | None = None
    kv_mount: str = "secret"
    kv_version: int = 2
    namespace: str | None = None
    ca_pem: bytes | None = None
    timeout: float = 10.0

    @property
    def auth_method(self) -> str:
        return self.auth.name if self.auth is not None else "none"

    def kv_path(self, key: str) -> str:
        """The API path of a KV key under this mount (``secret/data/app`` for KV v2)."""
        key = key.strip("/")
        return f"{self.kv_mount}/data/{key}" if self.kv_version == 2 else f"{self.kv_mount}/{key}"


async def _auth(spec: Any, access: StoreAccess) -> VaultAuth:
    if spec.token is not None:
        return await auth_token.from_spec(spec.token, access)
    if spec.app_role is not None:
        return await auth_approle.from_spec(spec.app_role, access)
    if spec.kubernetes is not None:
        return await auth_kubernetes.from_spec(spec.kubernetes, access)
    raise InvalidConfig("Vault store has no auth method (token, appRole or kubernetes)")


async def configure(spec: Any, access: StoreAccess) -> VaultConfig:
    """``spec`` is the store's ``provider.vault`` (``rotor.api.secretstore.VaultProvider``)."""
    ca: bytes | None = None
    if spec.ca_bundle:
        ca = base64.b64decode(spec.ca_bundle)
    elif spec.ca_secret_ref is not None:
        ca = (await access.secret(spec.ca_secret_ref)).encode()
    return VaultConfig(
        server=spec.server,
        store_id=access.store_id,
        auth=await _auth(spec.auth, access),
        kv_mount=spec.kv.mount,
        kv_version=spec.kv.version,
        namespace=spec.namespace,
        ca_pem=ca,
    )
