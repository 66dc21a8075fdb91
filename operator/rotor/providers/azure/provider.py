"""The Azure Key Vault provider: the protocol and its capabilities over one ``AzureClient`` per
store, each verb in its own module (``client_read``, ``client_write``). Blocking: called from
Rotor's worker threads.

Capabilities: Key Vault has no dry-run write, and a probe write would add a version. So
validate() proves authentication and read access with one list call and reports ReadWrite,
until a write is denied (then ReadOnly, with the role to grant); a later successful write
reports ReadWrite again. There is no batch read and no cheap change listing (a list does not
name the current version), so every read is a GetSecret.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rotor.providers.azure import client_read, client_write
from rotor.providers.azure.client import AzureClient
from rotor.providers.azure.config import AzureConfig
from rotor.providers.base import (
    CallObserver,
    Capabilities,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    RolledBack,
    SecretMetadata,
    WriteResult,
)


class AzureKeyVaultProvider:
    name = "azure-keyvault"

    def __init__(self, config: AzureConfig, observer: CallObserver | None = None) -> None:
        self.config = config
        self.client = AzureClient(config, observer)

    @property
    def calls(self) -> Counter[str]:
        return self.client.calls

    @property
    def results(self) -> Counter[tuple[str, str]]:
        return self.client.results

    def observe_calls(self, observer: CallObserver) -> None:
        self.client.observe(observer)

    # ------------------------------------------------------------------ the protocol
    def validate(self) -> Capabilities:
        def first_page() -> None:
            next(iter(self.client.secrets.list_properties_of_secrets(max_page_size=1)), None)

        self.client.call("ListSecrets", None, first_page)
        return Capabilities.READ_ONLY if self.client.read_only else Capabilities.READ_WRITE

    def read(self, ref: RemoteRef) -> RemoteSecret:
        return client_read.read(self.client, ref)

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        return client_read.read_many(self.client, refs)

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        return client_read.find(self.client, path, name_regexp)

    def describe(self, key: str) -> SecretMetadata:
        return client_read.describe(self.client, key)

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        return client_write.write(self.client, key, value, cas)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ capabilities
    def rollback(self, key: str) -> RolledBack:
        return client_write.rollback(self.client, key)

    def find_tagged(self, path: str, name_regexp: str | None, tags: dict[str, str]) -> list[str]:
        return client_read.find(self.client, path, name_regexp, tags)

    def retire_version(self, key: str, version: str) -> bool:
        return client_write.retire_version(self.client, key, version)

    def __repr__(self) -> str:
        return f"AzureKeyVaultProvider(store={self.config.store_id!r}, vault={self.config.vault_url!r})"


def create(config: AzureConfig) -> AzureKeyVaultProvider:
    """Builds the clients only; no network call is made."""
    return AzureKeyVaultProvider(config)
