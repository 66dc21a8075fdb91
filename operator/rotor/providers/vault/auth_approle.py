"""Vault AppRole auth: log in with a role_id (in the spec) and a secret_id (a Secret key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hvac

from rotor.providers.base import StoreAccess


@dataclass(frozen=True)
class AppRoleAuth:
    role_id: str
    secret_id: str = field(repr=False)
    mount: str = "approle"
    name = "appRole"
    #: each login issues a token Rotor owns: revoked on close, obtained again when it is gone
    issues_tokens = True

    def login(self, client: hvac.Client) -> int:
        resp = client.auth.approle.login(
            role_id=self.role_id, secret_id=self.secret_id, mount_point=self.mount, use_token=True
        )
        return int(resp["auth"].get("lease_duration") or 0)


async def from_spec(spec: Any, access: StoreAccess) -> AppRoleAuth:
    """``auth.appRole``: ``roleId``, ``secretIdRef`` and the auth mount."""
    return AppRoleAuth(
        role_id=spec.role_id, secret_id=await access.secret(spec.secret_id_ref), mount=spec.mount
    )
