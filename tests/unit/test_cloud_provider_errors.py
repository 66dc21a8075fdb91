"""Azure Key Vault and Google Secret Manager: names and versions are checked before a request,
and SDK errors map to Rotor's reasons with actionable messages (never a value)."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from rotor.providers.azure import errors as azure_errors
from rotor.providers.azure.names import secret_name, version_id
from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    InvalidSpec,
    KeyNotFound,
    Unreachable,
    WriteConflict,
)
from rotor.providers.gcp import errors as gcp_errors
from rotor.providers.gcp.names import secret_path, version_segment


class _Response:
    """The part of azure-core's HttpResponse the mapping reads."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self.status_code = status
        self.reason = "x"
        self.request = HttpRequest("GET", "https://v.vault.azure.net/secrets/db")
        self._body = json.dumps(body)
        self.headers: dict[str, str] = {}
        self.content_type = "application/json"

    def text(self, encoding: str | None = None) -> str:
        return self._body


def _kv_error(status: int, code: str, inner: str | None = None) -> HttpResponseError:
    error: dict[str, object] = {"code": code, "message": "m"}
    if inner:
        error["innererror"] = {"code": inner}
    return HttpResponseError(response=_Response(status, {"error": error}))  # type: ignore[arg-type]


def test_azure_names_and_versions() -> None:
    assert secret_name("orders-db") == "orders-db"
    with pytest.raises(InvalidSpec, match="no folders"):
        secret_name("apps/db")
    assert version_id(None) is None and version_id("latest") is None
    assert version_id("A" * 32) == "a" * 32
    with pytest.raises(InvalidSpec, match="32 hex"):
        version_id("AWSCURRENT")


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (_kv_error(404, "SecretNotFound"), KeyNotFound, "SecretNotFound"),
        (_kv_error(403, "Forbidden", "SecretDisabled"), KeyNotFound, "disabled"),
        (_kv_error(403, "Forbidden", "ForbiddenByRbac"), AccessDenied, "Key Vault Secrets User"),
        (_kv_error(429, "Throttled"), Unreachable, "rateLimit"),
        (
            ClientAuthenticationError("AADSTS7000215: Invalid client secret provided."),
            AuthFailed,
            "AADSTS7000215",
        ),
        (ServiceRequestError("connection refused"), Unreachable, "unreachable"),
    ],
)
def test_azure_errors_map_to_reasons(exc: Exception, kind: type, words: str) -> None:
    error = azure_errors.to_provider_error("GetSecret", "db", exc, "https://v.vault.azure.net", write=False)
    assert type(error) is kind and words in error.message
    assert error.throttled == (words == "rateLimit")


def test_azure_denied_write_names_the_officer_role() -> None:
    error = azure_errors.to_provider_error(
        "SetSecret", "db", _kv_error(403, "Forbidden", "ForbiddenByRbac"), "https://v", write=True
    )
    assert isinstance(error, AccessDenied) and "Key Vault Secrets Officer" in error.message


def test_gcp_names_and_versions() -> None:
    assert secret_path("p", "db") == "projects/p/secrets/db"
    assert secret_path("p", "projects/q/secrets/db") == "projects/q/secrets/db"
    with pytest.raises(InvalidSpec):
        secret_path("p", "apps/db")
    assert [version_segment(v) for v in (None, "LATEST", "007", "prod")] == ["latest", "latest", "7", "prod"]
    with pytest.raises(InvalidSpec):
        version_segment("0")


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (gexc.NotFound("Secret [projects/p/secrets/db] not found"), KeyNotFound, "not found"),
        (gexc.FailedPrecondition("Secret Version [...] is in DISABLED state."), KeyNotFound, "DISABLED"),
        (gexc.FailedPrecondition("The etag provided does not match"), WriteConflict, "etag"),
        (
            gexc.PermissionDenied("Permission 'secretmanager.versions.access' denied"),
            AccessDenied,
            "secretAccessor",
        ),
        (gexc.Unauthenticated("invalid authentication credentials"), AuthFailed, "authentication"),
        (gexc.ResourceExhausted("Quota exceeded"), Unreachable, "rateLimit"),
        (gexc.ServiceUnavailable("down"), Unreachable, "unreachable"),
        (auth_exc.RefreshError("invalid_grant: Invalid JWT Signature."), AuthFailed, "Invalid JWT"),
    ],
)
def test_gcp_errors_map_to_reasons(exc: Exception, kind: type, words: str) -> None:
    error = gcp_errors.to_provider_error("AccessSecretVersion", "db", exc, write=False)
    assert type(error) is kind and words in error.message
    assert error.throttled == (words == "rateLimit")
