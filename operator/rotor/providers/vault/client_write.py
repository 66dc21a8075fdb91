"""Vault KV writes: a new version, check-and-set on the version the caller read (KV v2)."""

from __future__ import annotations

from typing import Any

from rotor.providers.base import InvalidConfig, WriteResult
from rotor.providers.vault.client import VaultClient


def write(client: VaultClient, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
    path = key.strip("/")
    if not isinstance(value, dict):
        raise InvalidConfig(f"Vault write '{path}': Vault KV stores maps of properties")
    cfg = client.config
    if cfg.kv_version == 2:
        resp = client.call(
            "write",
            path,
            client.hvac.secrets.kv.v2.create_or_update_secret,
            path=path,
            secret=value,
            cas=int(cas) if cas is not None else None,
            mount_point=cfg.kv_mount,
        )
        return WriteResult(key=path, version=str(resp["data"]["version"]))
    client.call(
        "write",
        path,
        client.hvac.secrets.kv.v1.create_or_update_secret,
        path=path,
        secret=value,
        mount_point=cfg.kv_mount,
    )
    return WriteResult(key=path, version=None)
