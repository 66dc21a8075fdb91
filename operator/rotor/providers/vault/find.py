"""Vault KV list, and ``dataFrom.find`` as a walk of the folders under a path."""

from __future__ import annotations

from rotor.providers.base import KeyNotFound
from rotor.providers.find import compile_name_regexp
from rotor.providers.vault.client import VaultClient

MAX_FOUND = 10_000


def list_folder(client: VaultClient, path: str) -> list[str]:
    """The entries of one folder (sub-folders end in "/"); a missing folder is empty."""
    cfg = client.config
    kv = client.hvac.secrets.kv
    lister = kv.v2.list_secrets if cfg.kv_version == 2 else kv.v1.list_secrets
    try:
        resp = client.call("list", path or "/", lister, path=path, mount_point=cfg.kv_mount)
    except KeyNotFound:
        return []
    return list(resp.get("data", {}).get("keys", []))


def find(client: VaultClient, path: str, name_regexp: str | None) -> list[str]:
    pattern = compile_name_regexp(name_regexp)
    prefix = path.strip("/")
    found: list[str] = []
    pending = [prefix + "/" if prefix else ""]
    while pending and len(found) < MAX_FOUND:
        folder = pending.pop()
        for entry in list_folder(client, folder.rstrip("/")):
            full = f"{folder}{entry}"
            if entry.endswith("/"):
                pending.append(full)
            elif pattern is None or pattern.search(full[len(prefix) :].lstrip("/")) or pattern.search(full):
                found.append(full)
    return sorted(found)
