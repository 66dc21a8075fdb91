"""google-api-core and google-auth errors mapped onto Rotor's provider errors, with what to do
about them. Messages name the secret and the status the service returned; never a value."""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    InvalidSpec,
    KeyNotFound,
    ProviderError,
    Unreachable,
    WriteConflict,
)

READ_ROLES = "roles/secretmanager.secretAccessor (values) and roles/secretmanager.viewer (find, metadata)"
WRITE_ROLE = "roles/secretmanager.secretVersionAdder (new versions; roles/secretmanager.secretVersionManager to re-enable one on rollback)"


def _short(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = str(message).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def to_provider_error(operation: str, key: str | None, exc: BaseException, write: bool) -> ProviderError:
    where = f"GCP Secret Manager {operation}" + (f" '{key}'" if key else "")
    if isinstance(exc, auth_exc.TransportError):
        return Unreachable(f"{where}: the token endpoint is unreachable ({_short(exc)})")
    if isinstance(exc, auth_exc.GoogleAuthError):  # RefreshError, OAuthError (the STS refused)
        return AuthFailed(
            f"{where}: cannot get a Google access token ({_short(exc)}); check the service account key, "
            "or the workload identity pool provider (audience, issuer, attribute mapping)"
        )
    if isinstance(exc, gexc.Unauthenticated):
        return AuthFailed(f"{where}: authentication failed ({_short(exc)})")
    if isinstance(exc, gexc.PermissionDenied):
        return AccessDenied(
            f"{where}: permission denied ({_short(exc)}); grant the store's principal "
            + (WRITE_ROLE if write else READ_ROLES)
        )
    if isinstance(exc, gexc.NotFound):
        return KeyNotFound(f"{where}: not found ({_short(exc)}); check the key, the version and projectID")
    if isinstance(exc, gexc.FailedPrecondition):
        text = _short(exc)
        if "etag" in text.lower():
            return WriteConflict(f"{where}: changed since it was read ({text})")
        # reading a DISABLED or DESTROYED version
        return KeyNotFound(f"{where}: the version cannot be read ({text}); enable it or pin another version")
    if isinstance(exc, gexc.Aborted):
        return WriteConflict(f"{where}: aborted by a concurrent change ({_short(exc)})")
    if isinstance(exc, gexc.InvalidArgument):
        return InvalidSpec(f"{where}: the request was refused ({_short(exc)})")
    if isinstance(exc, gexc.ResourceExhausted | gexc.TooManyRequests):
        error = Unreachable(
            f"{where}: quota exceeded ({_short(exc)}); lower the store's rateLimit or retry later"
        )
        error.throttled = True
        return error
    if isinstance(exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.RetryError):
        return Unreachable(
            f"{where}: the service is unreachable ({type(exc).__name__}); check endpoint and network"
        )
    if isinstance(exc, gexc.GoogleAPICallError):
        return ProviderError(f"{where}: {type(exc).__name__} ({_short(exc)})")
    return ProviderError(f"{where}: {type(exc).__name__}")
