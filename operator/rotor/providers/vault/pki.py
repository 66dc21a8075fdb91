"""Vault PKI: issue a certificate and its key from a role."""

from __future__ import annotations

from typing import Any

from rotor.providers.vault.client import VaultClient


def issue(
    client: VaultClient, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
) -> dict[str, str]:
    params: dict[str, Any] = {}
    if alt_names:
        params["alt_names"] = ",".join(alt_names)
    if ttl:
        params["ttl"] = ttl
    resp = client.call(
        "issue",
        f"{mount}/issue/{role}",
        client.hvac.secrets.pki.generate_certificate,
        name=role,
        common_name=common_name,
        extra_params=params,
        mount_point=mount,
    )
    data = resp["data"]
    chain = data.get("ca_chain") or [data.get("issuing_ca", "")]
    return {
        "certificate": data["certificate"],
        "private_key": data["private_key"],
        "ca": "\n".join(c for c in chain if c),
    }
