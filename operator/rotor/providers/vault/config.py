"""What a Vault provider needs, resolved from a store spec (credentials already read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VaultConfig:
    server: str
    store_id: str  # "<kind>/<namespace>/<name>", for messages and metrics
    kv_mount: str = "secret"
    kv_version: int = 2
    namespace: str | None = None
    ca_pem: bytes | None = None
    # exactly one auth method
    token: str | None = None
    approle_mount: str = "approle"
    approle_role_id: str | None = None
    approle_secret_id: str | None = None
    kubernetes_mount: str = "kubernetes"
    kubernetes_role: str | None = None
    #: returns a fresh ServiceAccount JWT (TokenRequest); called from a worker thread
    kubernetes_jwt: Callable[[], str] | None = field(default=None, compare=False)
    timeout: float = 10.0

    @property
    def auth_method(self) -> str:
        if self.token is not None:
            return "token"
        if self.approle_role_id is not None:
            return "appRole"
        if self.kubernetes_role is not None:
            return "kubernetes"
        return "none"
