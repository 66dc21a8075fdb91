"""Vault KV writes: a new version, check-and-set on the version the caller read (KV v2). A denied
write says which capability the path lacks (asked of ``sys/capabilities-self``)."""

from __future__ import annotations

from typing import Any

from rotor.providers.base import (
    AccessDenied,
    InvalidConfig,
    KeyNotFound,
    ProviderError,
    Unsupported,
    WriteDenied,
    WriteResult,
)
from rotor.providers.vault import validate
from rotor.providers.vault.client import VaultClient


def write(client: VaultClient, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
    path = key.strip("/")
    if not isinstance(value, dict):
        raise InvalidConfig(f"Vault write '{path}': Vault KV stores maps of properties")
    try:
        return _write(client, path, value, cas)
    except WriteDenied:
        raise
    except AccessDenied as denied:
        try:
            missing = validate.missing_write(client, [path])
        except ProviderError:
            missing = {}
        if not missing:
            raise denied from None
        raise WriteDenied(validate.describe_missing(client.config.store_id, missing), missing) from None


def create(client: VaultClient, key: str, value: dict[str, Any] | bytes | str) -> WriteResult:
    """Create a KV v2 path that does not exist: check-and-set 0, so a path that exists (any
    version, even deleted) refuses the write (``WriteConflict``). KV v1 cannot refuse an
    overwrite: ``Unsupported``."""
    if client.config.kv_version != 2:
        raise Unsupported(
            f"Vault store {client.config.store_id}: KV v1 has no check-and-set, so a missing key cannot be "
            "created without the risk of overwriting one; createIfMissing needs a KV v2 mount"
        )
    return write(client, key, value, "0")


def _write(client: VaultClient, path: str, value: dict[str, Any], cas: str | None) -> WriteResult:
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


def delete(client: VaultClient, key: str) -> None:
    """Delete a KV secret: on KV v2 its metadata and every version; gone already is fine."""
    path = key.strip("/")
    cfg = client.config
    fn = (
        client.hvac.secrets.kv.v2.delete_metadata_and_all_versions
        if cfg.kv_version == 2
        else client.hvac.secrets.kv.v1.delete_secret
    )
    try:
        client.call("delete", path, fn, path=path, mount_point=cfg.kv_mount)
    except KeyNotFound:
        return
