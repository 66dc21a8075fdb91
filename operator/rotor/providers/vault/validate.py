"""What a Vault store's credentials can do.

Store validation proves that the credentials authenticate (a login, or a lookup of the given
token). Write access is not judged there: Vault policies grant it path by path, so a probe path
says nothing about the paths a rotation writes (a least-privilege policy granting create/update on
exactly those paths would look read-only). ``missing_write`` asks Vault's
``sys/capabilities-self`` about the exact paths instead, when a rotation is about to write them.
"""

from __future__ import annotations

from rotor.providers.base import AccessDenied, AuthFailed, Capabilities
from rotor.providers.vault.client import VaultClient

#: what writing a new version of an existing KV secret needs (Vault checks "create" only for a
#: path that does not exist yet; rotations write paths they have read)
WRITE_NEEDS = ("update",)
#: what creating a KV secret where none exists needs (createIfMissing)
CREATE_NEEDS = ("create",)


def validate(client: VaultClient) -> Capabilities:
    """Authenticate (and look the token up): ReadWrite for a root token, else PerPath."""
    client.ensure_token()
    try:
        info = client.call("lookup", "token", client.hvac.auth.token.lookup_self)
    except AccessDenied:
        # every token may look itself up (Vault's default policy): a denial means the token itself
        # is revoked or expired
        raise AuthFailed(
            f"Vault rejected the store's {client.auth.name} credentials (the token is revoked or expired); "
            "check the token, role or secret_id"
        ) from None
    policies = set((info.get("data") or {}).get("policies") or [])
    return Capabilities.READ_WRITE if "root" in policies else Capabilities.PER_PATH


def missing_write(client: VaultClient, keys: list[str], *, creating: bool = False) -> dict[str, list[str]]:
    """For each KV key whose API path the token cannot write, the missing capabilities, keyed by
    that path (``secret/data/app/db`` for KV v2). One ``sys/capabilities-self`` call."""
    paths = list(dict.fromkeys(client.config.kv_path(k) for k in keys))
    if not paths:
        return {}
    resp = client.call("capabilities", ", ".join(paths), client.hvac.sys.get_capabilities, paths=paths)
    data = resp.get("data", resp) if isinstance(resp, dict) else {}
    missing: dict[str, list[str]] = {}
    for path in paths:
        granted = set(data.get(path) or (data.get("capabilities") if len(paths) == 1 else None) or [])
        if "root" in granted:
            continue
        needs = CREATE_NEEDS if creating else WRITE_NEEDS
        lacking = [c for c in needs if c not in granted or "deny" in granted]
        if lacking:
            missing[path] = lacking
    return missing


def describe_missing(store_id: str, missing: dict[str, list[str]]) -> str:
    """A message a person can act on: which path lacks which capability, and where to grant it."""
    parts = [
        f"Vault token lacks {', '.join(repr(c) for c in caps)} on {path}" for path, caps in missing.items()
    ]
    return (
        "; ".join(parts)
        + f"; the store {store_id}'s credentials are read-only there and rotation needs write access: "
        "grant it in the store's Vault policy"
    )
