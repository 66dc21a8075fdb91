"""Reads: one secret (current or a pinned version), ``find`` by name, and metadata (versions,
timestamps, expiry) without values."""

from __future__ import annotations

from datetime import datetime

from azure.keyvault.secrets import KeyVaultSecret, SecretProperties

from rotor.providers.azure.client import AzureClient
from rotor.providers.azure.names import secret_name, version_id
from rotor.providers.azure.payload import json_object
from rotor.providers.base import KeyNotFound, ProviderError, RemoteRef, RemoteSecret, SecretMetadata
from rotor.providers.find import compile_name_regexp, has_tags

#: ``SecretMetadata.versions`` flag of a disabled version (enabled versions have none)
DISABLED = "Disabled"


def to_remote(key: str, secret: KeyVaultSecret) -> RemoteSecret:
    props = secret.properties
    remote = RemoteSecret(
        key=key,
        version=props.version,
        created=props.created_on,
        expires=props.expires_on,
        metadata={"updated": props.updated_on, "content_type": props.content_type},
    )
    text = secret.value
    if text is not None:
        remote.raw = text.encode("utf-8")
        remote.data = json_object(text)
    return remote


def read(client: AzureClient, ref: RemoteRef) -> RemoteSecret:
    name, version = secret_name(ref.key), version_id(ref.version)
    secret = client.call("GetSecret", ref.key, lambda: client.secrets.get_secret(name, version))
    return to_remote(ref.key, secret)


def read_many(client: AzureClient, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
    """Key Vault has no batch read: one GetSecret per ref, errors returned per ref."""
    out: dict[RemoteRef, RemoteSecret | ProviderError] = {}
    for ref in refs:
        try:
            out[ref] = read(client, ref)
        except ProviderError as err:
            out[ref] = err
    return out


def find(
    client: AzureClient, path: str, name_regexp: str | None, tags: dict[str, str] | None = None
) -> list[str]:
    """Enabled secrets whose name starts with ``path``, matches ``name_regexp`` (``re.search``)
    and carries every one of ``tags`` (the listing holds each secret's tags: no extra call).
    Secrets Key Vault manages for certificates are left out."""
    pattern = compile_name_regexp(name_regexp)

    def names() -> list[str]:
        return [
            str(p.name)
            for p in client.secrets.list_properties_of_secrets()
            if p.name and p.enabled is not False and not p.managed and has_tags(p.tags, tags)
        ]

    found = client.call("ListSecrets", path or None, names)
    return sorted(n for n in found if n.startswith(path) and (pattern is None or pattern.search(n)))


def versions(client: AzureClient, key: str) -> list[SecretProperties]:
    """Every version's properties, oldest first (Key Vault lists them unordered)."""
    name = secret_name(key)
    listed = client.call(
        "ListSecretVersions", key, lambda: list(client.secrets.list_properties_of_secret_versions(name))
    )
    if not listed:
        raise KeyNotFound(f"Azure Key Vault {client.config.vault_url}: no secret '{key}'")
    return sorted(listed, key=lambda p: (p.created_on or datetime.min, p.version or ""))


def current(client: AzureClient, key: str) -> KeyVaultSecret | None:
    """The current version (None when the secret does not exist); its value is not kept."""
    name = secret_name(key)
    try:
        secret = client.call("GetSecret", key, lambda: client.secrets.get_secret(name))
    except KeyNotFound:
        return None
    return KeyVaultSecret(properties=secret.properties, value=None)


def describe(client: AzureClient, key: str) -> SecretMetadata:
    """The current version is the newest one (what a read without a version returns). Key Vault's
    times are whole seconds: when several versions share the newest second, a read tells which."""
    listed = versions(client, key)
    newest = listed[-1]
    if sum(1 for p in listed if p.created_on == newest.created_on) > 1:
        now = current(client, key)
        newest = next((p for p in listed if now is not None and p.version == now.properties.version), newest)
    return SecretMetadata(
        key=key,
        current_version=newest.version,
        created=listed[0].created_on,
        updated=newest.updated_on,
        versions={str(p.version): ([] if p.enabled is not False else [DISABLED]) for p in listed},
    )
