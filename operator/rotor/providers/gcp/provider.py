"""The Google Secret Manager provider: the protocol and its capabilities over one ``GcpClient``
per store, each verb in its own module (``client_read``, ``client_write``). Blocking: called from
Rotor's worker threads.

Capabilities: validate() gets a token (authentication) and lists one secret. When listing is
denied, the credentials may still read the secrets they were granted one by one (IAM on a
secret): the store is valid and reports PerPath, and each read or write says what is missing.
Otherwise it reports ReadWrite until a write is denied (then ReadOnly). There is no batch read
and no cheap change listing (a secret's listing does not name its latest version).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rotor.providers.base import (
    AccessDenied,
    CallObserver,
    Capabilities,
    ProviderError,
    RemoteRef,
    RemoteSecret,
    RolledBack,
    SecretMetadata,
    WriteResult,
)
from rotor.providers.gcp import client_read, client_write
from rotor.providers.gcp.client import GcpClient
from rotor.providers.gcp.config import GcpConfig


class GcpSecretManagerProvider:
    name = "gcp-secretmanager"

    def __init__(self, config: GcpConfig, observer: CallObserver | None = None) -> None:
        self.config = config
        self.client = GcpClient(config, observer)

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
        parent = self.client.parent()

        def first_page() -> None:
            pages = self.client.api.list_secrets(
                request={"parent": parent, "page_size": 1}, **self.client.options
            )
            next(iter(pages.pages), None)

        try:
            self.client.call("ListSecrets", None, first_page)
        except AccessDenied:
            return Capabilities.PER_PATH
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

    def __repr__(self) -> str:
        return f"GcpSecretManagerProvider(store={self.config.store_id!r}, project={self.config.project_id!r})"


def create(config: GcpConfig) -> GcpSecretManagerProvider:
    """Builds the clients only; no network call is made (tokens are fetched at the first call)."""
    return GcpSecretManagerProvider(config)
