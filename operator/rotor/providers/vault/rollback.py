"""``rotor rollback`` on Vault KV v2: the newest earlier version that is neither deleted nor
destroyed is written again as a new version, check-and-set on the version that was current."""

from __future__ import annotations

from rotor.providers.base import KeyNotFound, RemoteRef, RolledBack
from rotor.providers.vault import client_read, client_write, describe
from rotor.providers.vault.client import VaultClient


def restorable(current: str, versions: dict[str, list[str]]) -> str | None:
    """The version a rollback copies: the newest one before ``current`` not deleted or destroyed."""
    previous = int(current) - 1
    while previous > 0 and versions.get(str(previous)):
        previous -= 1
    return str(previous) if previous > 0 else None


def rollback(client: VaultClient, key: str) -> RolledBack:
    if client.config.kv_version != 2:
        raise KeyNotFound(
            f"Vault KV v1 (mount '{client.config.kv_mount}') keeps no versions of '{key}': there is "
            "no previous version to roll back to"
        )
    meta = describe.describe(client, key)
    if meta.current_version is None or int(meta.current_version) < 2:
        raise KeyNotFound(f"Vault '{key}': no previous version to roll back to")
    previous = restorable(meta.current_version, meta.versions)
    if previous is None:
        raise KeyNotFound(f"Vault '{key}': every earlier version is deleted or destroyed")
    old = client_read.read(client, RemoteRef(key, previous))
    written = client_write.write(client, key, old.data or {}, cas=meta.current_version)
    return RolledBack(
        key=written.key, version=written.version, before=meta.current_version, restored=previous
    )
