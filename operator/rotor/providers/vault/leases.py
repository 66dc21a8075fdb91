"""Vault dynamic secrets: read a path that issues credentials with a lease, renew the lease
(``sys/leases/renew/<lease id>``), revoke it (``sys/leases/revoke/<lease id>``). The lease id is
in the URL, so a policy can grant exactly the leases of one path:
``path "sys/leases/renew/database/creds/app/*" { capabilities = ["update"] }``."""

from __future__ import annotations

from rotor.providers.base import (
    InvalidConfig,
    InvalidSpec,
    KeyNotFound,
    LeasedValue,
    LeaseGrant,
    LeaseRefused,
)
from rotor.providers.vault.client import VaultClient


def issue(client: VaultClient, path: str) -> LeasedValue:
    resp = client.call("issue", path, client.hvac.adapter.get, f"/v1/{path}") or {}
    lease_id = str(resp.get("lease_id") or "")
    data = resp.get("data")
    if not lease_id or not isinstance(data, dict):
        raise InvalidSpec(
            f"Vault path '{path}' returned no lease: vaultDynamic is for paths that issue credentials "
            "(database/creds/<role>, aws/creds/<role>, ...); read KV secrets with data or dataFrom.extract"
        )
    return LeasedValue(
        path=path,
        lease_id=lease_id,
        duration=int(resp.get("lease_duration") or 0),
        renewable=bool(resp.get("renewable")),
        data=dict(data),
    )


def renew(client: VaultClient, lease_id: str, increment: int) -> LeaseGrant:
    try:
        resp = client.call(
            "renew",
            f"sys/leases/renew/{lease_id}",
            client.hvac.adapter.put,
            f"/v1/sys/leases/renew/{lease_id}",
            json={"increment": increment},
        )
    except (InvalidConfig, KeyNotFound) as err:  # 400 "lease not found", "lease is not renewable"
        raise LeaseRefused(f"Vault refused to renew lease {lease_id}: {err.message}") from None
    resp = resp or {}
    return LeaseGrant(duration=int(resp.get("lease_duration") or 0), renewable=bool(resp.get("renewable")))


def revoke(client: VaultClient, lease_id: str) -> None:
    client.call(
        "revoke",
        f"sys/leases/revoke/{lease_id}",
        client.hvac.adapter.put,
        f"/v1/sys/leases/revoke/{lease_id}",
    )
