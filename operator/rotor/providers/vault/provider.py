"""The Vault provider: the protocol and its capabilities, each verb in its own module
(``client_read``, ``client_write``, ``find``, ``describe``, ``database``, ``leases``, ``pki``,
``rollback``, ``validate``), over one ``VaultClient`` per store. Blocking: called from Rotor's worker threads."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rotor.providers.base import (
    Capabilities,
    LeasedValue,
    LeaseGrant,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    RolledBack,
    SecretMetadata,
    WriteResult,
)
from rotor.providers.vault import (
    client_read,
    client_write,
    database,
    describe,
    find,
    leases,
    pki,
    rollback,
    validate,
)
from rotor.providers.vault.client import VaultClient
from rotor.providers.vault.config import VaultConfig


class VaultProvider:
    name = "vault"
    #: KV holds maps of properties (``MapsOnly``)
    maps_only = True

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self.client = VaultClient(config)

    @property
    def calls(self) -> Counter[str]:
        return self.client.calls

    @property
    def logins(self) -> int:
        return self.client.logins

    # ------------------------------------------------------------------ the protocol
    def validate(self) -> Capabilities:
        return validate.validate(self.client)

    def read(self, ref: RemoteRef) -> RemoteSecret:
        return client_read.read(self.client, ref)

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        return client_read.read_many(self.client, refs)

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        return find.find(self.client, path, name_regexp)

    def describe(self, key: str) -> SecretMetadata:
        return describe.describe(self.client, key)

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        return client_write.write(self.client, key, value, cas)

    def create(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> WriteResult:
        """createIfMissing: KV v2 check-and-set 0 (``token`` is not needed: CAS 0 is the guard)."""
        return client_write.create(self.client, key, value)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ capabilities
    def missing_write(self, keys: list[str], *, creating: bool = False) -> dict[str, list[str]]:
        return validate.missing_write(self.client, keys, creating=creating)

    def describe_missing_write(self, missing: dict[str, list[str]]) -> str:
        return validate.describe_missing(self.config.store_id, missing)

    def delete_secret(self, key: str) -> None:
        client_write.delete(self.client, key)

    def read_version(self, key: str, version: str) -> RemoteSecret:
        """An earlier KV v2 version by number (the previous value of a rotation)."""
        return client_read.read_version(self.client, key, version)

    def read_database_credentials(self, mount: str, role: str) -> RemoteSecret:
        return database.read_credentials(self.client, mount, role)

    def rotate_database_role(self, mount: str, role: str) -> None:
        database.rotate_role(self.client, mount, role)

    def issue_leased(self, path: str) -> LeasedValue:
        return leases.issue(self.client, path)

    def renew_lease(self, lease_id: str, increment: int) -> LeaseGrant:
        return leases.renew(self.client, lease_id, increment)

    def revoke_lease(self, lease_id: str) -> None:
        leases.revoke(self.client, lease_id)

    def issue_certificate(
        self, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
    ) -> dict[str, str]:
        return pki.issue(self.client, mount, role, common_name, alt_names, ttl)

    def rollback(self, key: str) -> RolledBack:
        """Make the previous KV v2 version the new current one (a new version, CAS-protected)."""
        return rollback.rollback(self.client, key)

    def __repr__(self) -> str:
        return f"VaultProvider(store={self.config.store_id!r}, server={self.config.server!r})"


def create(config: VaultConfig) -> VaultProvider:
    """Builds the client only; no network call is made."""
    return VaultProvider(config)
