"""Vault database secrets engine, static roles: read the current credentials, rotate now."""

from __future__ import annotations

from rotor.providers.base import RemoteSecret
from rotor.providers.vault.client import VaultClient, parse_time


def read_credentials(client: VaultClient, mount: str, role: str) -> RemoteSecret:
    path = f"{mount}/static-creds/{role}"
    resp = client.call("read", path, client.hvac.adapter.get, f"/v1/{path}")
    data = resp.get("data", {})
    return RemoteSecret(
        key=path,
        version=data.get("last_vault_rotation"),
        data={"username": data.get("username"), "password": data.get("password")},
        created=parse_time(data.get("last_vault_rotation")),
        metadata={"ttl": data.get("ttl"), "rotation_period": data.get("rotation_period")},
    )


def rotate_role(client: VaultClient, mount: str, role: str) -> None:
    path = f"{mount}/rotate-role/{role}"
    client.call("rotate", path, client.hvac.adapter.post, f"/v1/{path}")
