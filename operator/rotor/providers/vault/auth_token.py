"""Vault token auth: the store gives a token (a Secret key); Rotor uses it as it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hvac

from rotor.providers.base import StoreAccess


@dataclass(frozen=True)
class TokenAuth:
    token: str = field(repr=False)
    name = "token"
    #: the token is the store's own: it is never revoked, and cannot be obtained again by a login
    issues_tokens = False

    def login(self, client: hvac.Client) -> int:
        """Use the token; returns its remaining TTL in seconds (0: no TTL)."""
        client.token = self.token
        info = client.auth.token.lookup_self()["data"]
        return int(info.get("ttl") or 0)


async def from_spec(spec: Any, access: StoreAccess) -> TokenAuth:
    """``auth.token``: ``secretRef`` holds the token."""
    return TokenAuth(token=await access.secret(spec.secret_ref))
