"""Vault KV reads (v1 and v2, a pinned v2 version by number, an earlier version by its number)."""

from __future__ import annotations

from rotor.providers.base import InvalidSpec, KeyNotFound, ProviderError, RemoteRef, RemoteSecret
from rotor.providers.vault.client import VaultClient, parse_time


def kv2_version(ref: RemoteRef) -> int | None:
    """The KV v2 version a ref pins (None: the current one). Versions are numbers; anything else
    is a mistake in the object's spec, named with its ref (InvalidSpec: retrying cannot help)."""
    if ref.version is None or ref.version == "":
        return None
    if ref.version.isdigit():
        return int(ref.version)
    raise InvalidSpec(
        f"remoteRef '{ref.key}' pins version {ref.version!r}, but Vault KV v2 versions are numbers "
        "(1, 2, ...); fix remoteRef.version"
    )


def read(client: VaultClient, ref: RemoteRef) -> RemoteSecret:
    cfg = client.config
    path = ref.key.strip("/")
    if cfg.kv_version == 2:
        version = kv2_version(ref)
        resp = client.call(
            "read",
            path,
            client.hvac.secrets.kv.v2.read_secret_version,
            path=path,
            version=version,
            mount_point=cfg.kv_mount,
            raise_on_deleted_version=True,
        )
        meta = resp["data"]["metadata"] or {}
        data = resp["data"]["data"]
        if data is None:
            raise KeyNotFound(f"Vault read '{path}': the version is deleted or destroyed")
        return RemoteSecret(
            key=path,
            version=str(meta.get("version")) if meta.get("version") is not None else None,
            data=dict(data),
            created=parse_time(meta.get("created_time")),
            metadata={"custom": meta.get("custom_metadata")},
        )
    resp = client.call(
        "read", path, client.hvac.secrets.kv.v1.read_secret, path=path, mount_point=cfg.kv_mount
    )
    return RemoteSecret(key=path, version=None, data=dict(resp.get("data") or {}))


def read_version(client: VaultClient, key: str, version: str) -> RemoteSecret:
    """Exactly KV v2 version ``version`` of ``key`` (``VersionReader``). KV v1 keeps no earlier
    versions; a deleted or destroyed version, or a number the path never had, is KeyNotFound."""
    path = key.strip("/")
    if client.config.kv_version != 2:
        raise KeyNotFound(f"Vault KV v1 '{path}' keeps no earlier versions (version {version} was asked for)")
    if not version.isdigit():
        raise KeyNotFound(f"Vault read '{path}': {version!r} is not a KV v2 version number")
    secret = read(client, RemoteRef(path, version))
    if secret.version != version:
        raise KeyNotFound(f"Vault read '{path}': version {version} was asked for, {secret.version} answered")
    return secret


def read_many(client: VaultClient, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
    """One read per ref (Vault has no batch read); per-ref errors are returned."""
    out: dict[RemoteRef, RemoteSecret | ProviderError] = {}
    for ref in refs:
        try:
            out[ref] = read(client, ref)
        except ProviderError as err:
            out[ref] = err
    return out
