"""Azure SDK errors mapped onto Rotor's provider errors, with what to do about them. Messages name
the vault, the secret and the error code the service returned; never a value."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    InvalidConfig,
    InvalidSpec,
    KeyNotFound,
    ProviderError,
    Unreachable,
)

READ_ROLE = "Key Vault Secrets User"
WRITE_ROLE = "Key Vault Secrets Officer"


def _error_body(exc: HttpResponseError) -> tuple[str, str, str]:
    """(code, inner code, message) from Key Vault's ``{"error": {...}}`` body."""
    try:
        body: Any = json.loads(exc.response.text()) if exc.response is not None else {}
    except (ValueError, TypeError):
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", ""
    inner = error.get("innererror")
    inner_code = str(inner.get("code") or "") if isinstance(inner, dict) else ""
    return str(error.get("code") or ""), inner_code, str(error.get("message") or "")[:200]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def to_provider_error(
    operation: str, key: str | None, exc: BaseException, vault: str, write: bool
) -> ProviderError:
    where = f"Azure Key Vault {vault} {operation}" + (f" '{key}'" if key else "")
    role = WRITE_ROLE if write else READ_ROLE
    if isinstance(exc, ClientAuthenticationError):
        # a 401 from the vault, or the credential could not get a Microsoft Entra token
        status = getattr(exc, "status_code", None)
        what = _error_body(exc)[2] if status == 401 else _first_line(exc)
        return AuthFailed(
            f"{where}: authentication failed ({what}); check the store's tenantID, clientID and its "
            "client secret or federated credential (issuer, subject system:serviceaccount:<namespace>:<name>)"
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        code, inner, message = _error_body(exc)
        label = "/".join(c for c in (code, inner) if c) or str(status)
        if status == 404:
            return KeyNotFound(f"{where}: no such secret or version ({label}); check the key and the version")
        if status == 403 and inner == "SecretDisabled":
            return KeyNotFound(
                f"{where}: the version is disabled ({label}); enable it in the vault or pin another version"
            )
        if status == 403 and inner in ("SecretExpired", "SecretNotYetValid"):
            return KeyNotFound(
                f"{where}: the version is outside its validity (exp/nbf) ({label}); write a new version "
                "or change its dates"
            )
        if status == 403:
            return AccessDenied(
                f"{where}: access denied ({label}: {message}); grant the store's identity the Azure role "
                f"'{role}' on the vault (RBAC), or the matching access policy"
            )
        if status == 409:
            return ProviderError(
                f"{where}: conflict ({label}: {message}); a deleted secret of this name may be waiting "
                "to be purged or recovered"
            )
        if status == 400:
            return InvalidSpec(f"{where}: the request was refused ({label}: {message})")
        if status == 429 or status >= 500:
            error = Unreachable(
                f"{where}: the vault answered {status} ({label}); "
                + ("lower the store's rateLimit or retry later" if status == 429 else "retry later")
            )
            error.throttled = status in (429, 503)
            error.backend_code = code or str(status)
            return error
        return ProviderError(f"{where}: HTTP {status} ({label}: {message})")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return Unreachable(
            f"{where}: the vault is unreachable ({type(exc).__name__}); check vaultURL and the network"
        )
    if isinstance(exc, ValueError):
        # the SDK refuses a challenge whose resource does not match the vault's domain, a non-https URL
        return InvalidConfig(f"{where}: {_first_line(exc)}")
    if isinstance(exc, AzureError):
        return ProviderError(f"{where}: {type(exc).__name__} ({_first_line(exc)})")
    return ProviderError(f"{where}: {type(exc).__name__}")
