"""Vault KV v2 metadata (versions, timestamps) without values."""

from __future__ import annotations

from rotor.providers.base import RemoteRef, SecretMetadata
from rotor.providers.vault import client_read
from rotor.providers.vault.client import VaultClient, parse_time


def describe(client: VaultClient, key: str) -> SecretMetadata:
    path = key.strip("/")
    if client.config.kv_version != 2:
        client_read.read(client, RemoteRef(path))  # KV v1 keeps no metadata: prove it exists
        return SecretMetadata(key=path, current_version=None)
    resp = client.call(
        "metadata",
        path,
        client.hvac.secrets.kv.v2.read_secret_metadata,
        path=path,
        mount_point=client.config.kv_mount,
    )
    data = resp["data"]
    versions = {
        str(v): (["destroyed"] if info.get("destroyed") else ["deleted"] if info.get("deletion_time") else [])
        for v, info in (data.get("versions") or {}).items()
    }
    current = data.get("current_version")
    current_info = (data.get("versions") or {}).get(str(current), {})
    return SecretMetadata(
        key=path,
        current_version=str(current) if current is not None else None,
        created=parse_time(data.get("created_time")),
        updated=parse_time(current_info.get("created_time") or data.get("updated_time")),
        versions=versions,
    )
