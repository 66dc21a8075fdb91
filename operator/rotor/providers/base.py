"""The one provider protocol every backend implements (Vault, AWS, the fake for unit tests).

Providers are plain blocking code: they are only ever called from the bounded thread pool in
``rotor.services.backend`` (never on kopf's event loop). They raise ``ProviderError`` subclasses,
whose ``reason`` is a documented condition reason and whose message never contains a value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class Capabilities(enum.StrEnum):
    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A backend failure. ``reason`` is a documented condition reason; the message is for people
    and must never contain a secret value."""

    reason = "ProviderError"
    #: would trying again later plausibly help (network, throttling, 5xx)?
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyNotFound(ProviderError):
    reason = "KeyNotFound"
    retryable = False


class AccessDenied(ProviderError):
    reason = "Forbidden"
    retryable = False


class AuthFailed(ProviderError):
    reason = "AuthFailed"
    retryable = False


class Unreachable(ProviderError):
    reason = "Unreachable"


class InvalidConfig(ProviderError):
    reason = "InvalidConfig"
    retryable = False


class WriteConflict(ProviderError):
    """Check-and-set failed: someone else wrote the path since we read it."""

    reason = "Conflict"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RemoteRef:
    """Where one remote secret lives. ``version`` is a provider version id (Vault KV version,
    AWS VersionId, SSM version number) or a stage/label (``AWSCURRENT``, ``AWSPREVIOUS``, an SSM
    label); ``None`` means the current one."""

    key: str
    version: str | None = None


@dataclass
class RemoteSecret:
    """One remote secret as the backend returned it.

    Exactly one of ``data`` (a map of properties: Vault KV data, or a JSON object stored in AWS)
    and ``raw`` (an opaque string or binary value) is meaningful. ``properties()`` gives the map
    view where there is one.
    """

    key: str
    version: str | None
    data: dict[str, Any] | None = None
    raw: bytes | None = None
    created: datetime | None = None
    #: provider metadata useful for expiry/rotation tracking, never values
    #: (e.g. ``stages``, ``last_rotated``, ``next_rotation``, ``updated``, ``versions``)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print values
        return f"RemoteSecret(key={self.key!r}, version={self.version!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretMetadata:
    """What a backend says about a secret without its value (for Observe, change detection)."""

    key: str
    current_version: str | None
    created: datetime | None = None
    updated: datetime | None = None
    last_rotated: datetime | None = None
    next_rotation: datetime | None = None
    #: AWS: version id -> stages; Vault KV v2: version -> {"created": iso, "deleted": bool}
    versions: dict[str, list[str]] = field(default_factory=dict)
    rotation_enabled: bool | None = None


@dataclass(frozen=True)
class WriteResult:
    key: str
    version: str | None


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Provider(Protocol):
    """A connection to one backend, as configured by one SecretStore. Blocking."""

    #: "vault" | "aws-secretsmanager" | "aws-parameterstore" | "fake"
    name: str

    def validate(self) -> Capabilities:
        """Really authenticate and read/list one thing; return what the credentials can do."""

    def read(self, ref: RemoteRef) -> RemoteSecret:
        """Read one secret. Raise KeyNotFound, AccessDenied, Unreachable, ..."""

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]:
        """Read several at once (AWS batches 20 per call); per-ref errors are returned, not raised."""

    def find(self, path: str, name_regexp: str | None) -> list[str]:
        """Keys under ``path`` whose last segment (or whole name) matches ``name_regexp``."""

    def describe(self, key: str) -> SecretMetadata:
        """Metadata only: versions, stages, timestamps."""

    def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        """Write a new version. ``cas`` is the version the caller read (Vault check-and-set);
        a mismatch raises WriteConflict."""

    def close(self) -> None:
        """Release clients and revoke what should be revoked."""


# --------------------------------------------------------------------------- capabilities
# Optional abilities beyond the protocol above. Callers check them with ``isinstance`` (through
# ``rotor.services.backend.Backend``), never by a provider's name or with ``getattr``.


@runtime_checkable
class BatchReader(Protocol):
    """Reads batched on the wire (AWS BatchGetSecretValue): ``read_many`` is one call per batch, so
    the backend gathers reads that arrive together."""

    def read_many(self, refs: list[RemoteRef]) -> dict[RemoteRef, RemoteSecret | ProviderError]: ...


@runtime_checkable
class SelfCounting(Protocol):
    """Counts every real API call in ``rotor_provider_requests_total`` itself (a batch is one
    call), so the backend does not count again."""

    counts_own_calls: bool


@runtime_checkable
class ChangeLister(Protocol):
    """Lists the current version id of many keys in one pass without reading values."""

    def list_changes(self, keys: list[str]) -> dict[str, str]: ...


@runtime_checkable
class StagedWriter(Protocol):
    """Writes a new version beside the current one (AWS AWSPENDING), verifies and promotes it.
    ``token`` is the idempotency token recorded before the write."""

    def stage(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> str: ...

    def verify(self, key: str, version_id: str, expected: dict[str, Any] | bytes | str) -> bool: ...

    def promote(self, key: str, version_id: str) -> None: ...


@runtime_checkable
class SelfRotating(Protocol):
    """The backend rotates the secret itself (AWS RotateSecret with a rotation function)."""

    def rotate(self, key: str, token: str | None = None) -> str | None: ...


@runtime_checkable
class DatabaseCredentials(Protocol):
    """Static database credentials that the backend rotates (Vault database static roles)."""

    def read_database_credentials(self, mount: str, role: str) -> RemoteSecret: ...

    def rotate_database_role(self, mount: str, role: str) -> None: ...


@runtime_checkable
class CertificateIssuer(Protocol):
    """Issues a certificate and key (Vault PKI)."""

    def issue_certificate(
        self, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
    ) -> dict[str, str]: ...


@runtime_checkable
class RollingBack(Protocol):
    """Makes the previous version current again (``rotor rollback``)."""

    def rollback(self, key: str) -> WriteResult: ...


@runtime_checkable
class PathReader(Protocol):
    """Reads every value under a path at once (SSM GetParametersByPath; ``rotor import``)."""

    def read_path(self, path: str) -> dict[str, bytes]: ...


class Unsupported(ProviderError):
    """The store's provider does not have the capability an object asks for."""

    reason = "InvalidConfig"
    retryable = False
